"""ScJEPA: dual-space self-supervised cell representations (Zhai et al., scJEPA)."""

from __future__ import annotations

import functools
import logging
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse
from scvi import REGISTRY_KEYS
from scvi.model._utils import get_max_epochs_heuristic

from cellpop.data import CellDataModule, check_categorical_obs, check_counts, check_finite
from cellpop.model.base import CellpopModel, seed
from cellpop.model.base._docs import doc
from cellpop.module._scjepa import ScJEPAModule
from cellpop.module._scjepa_classifier import ScJEPAClassifierModule

logger = logging.getLogger(__name__)

__all__ = ["ScJEPA"]


def _check_expression(X, what: str, is_count_data: bool) -> None:
    """Input checks: finite, counts or log-normalised as declared, no all-zero cells."""
    check_finite(X, what)
    if is_count_data:
        check_counts(X, what)
    else:
        vals = X.data if sparse.issparse(X) else np.asarray(X)
        if vals.size and (vals.min() < 0):
            raise ValueError(f"{what} has negative values: log1p-normalised data are >= 0.")
        vmax = float(vals.max()) if vals.size else 0.0
        if vmax > 30 or (vmax > 1 and np.all(np.mod(vals[:100_000], 1) == 0)):
            raise ValueError(
                f"{what} was declared log-normalised (is_count_data=False) but looks like raw "
                f"counts (max {vmax:g}, integer values): pass is_count_data=True."
            )
    row_sums = np.asarray(X.sum(axis=1)).ravel()
    if (row_sums == 0).any():
        raise ValueError(
            f"{what} has {int((row_sums == 0).sum())} empty cell(s) (all-zero rows, e.g. row "
            f"{int(np.flatnonzero(row_sums == 0)[0])}): filter them (sc.pp.filter_cells "
            "min_counts=1) first."
        )


class ScJEPA(CellpopModel):
    """scJEPA: masked-view JEPA + SIGReg in embedding space, denoising in expression space.

    An MLP autoencoder encodes the unmasked cell (global view) and ``n_views`` Bernoulli-masked
    copies (local views) in one batched pass; the loss is
    (1 − λ)·L_sim + λ·L_SIGReg + γ·L_recon (paper eq. 9, Algorithm 1).

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_hidden
        Encoder hidden sizes, decoder mirrored (paper §3.1: [512, 512, 256, 256]).
    n_latent
        Latent size (paper: 64).
    n_projection
        Projection-head size (paper: 64).
    n_views
        Masked local views per cell (paper §2.2: 8).
    mask_prob
        Bernoulli masking probability (paper §2.2: 0.5).
    lambda_sigreg
        λ of eq. 9. The paper gives no value; 0.05 was chosen by a small sweep on kang2018_ctrl
        reference donors (λ ∈ {0.05, 0.2} × γ ∈ {1, 10, 50}; ``docs/benchmarks.md``).
    gamma_recon
        γ of eq. 9 (paper: no value); 10 from the same sweep. 0 = "w/o reconstruction".
    use_jepa
        ``False``: reconstruction only ("w/o LeJEPA" ablation, Table 4).
    num_directions
        SIGReg random directions M (LeJEPA: 256–1024; 256 here).

    Notes
    -----
    :meth:`train` defaults: ``max_epochs`` scvi-tools' heuristic (400 for <= 20k cells),
    ``batch_size`` 1024 cells (paper §3.1; the last incomplete batch is dropped),
    ``early_stopping_patience`` 20, ``plan_kwargs`` AdamW lr 1e-3, weight decay 0.05, StepLR
    x0.5 every 50 epochs (paper §3.1; the step is ours), ``datasplitter_kwargs``
    ``split_by_sample=False`` (``True`` holds out whole samples).

    Examples
    --------
    >>> ScJEPA.setup_anndata(adata, layer="counts", sample_key="donor_id")
    >>> model = ScJEPA(adata)
    >>> model.train(max_epochs=50)
    >>> adata.obsm["X_scjepa"] = model.get_latent_representation()
    """

    _default_batch_size = 1024
    _default_patience = 20

    def __init__(
        self,
        adata: AnnData,
        n_hidden: tuple[int, ...] = (512, 512, 256, 256),
        n_latent: int = 64,
        n_projection: int = 64,
        n_views: int = 8,
        mask_prob: float = 0.5,
        lambda_sigreg: float = 0.05,
        gamma_recon: float = 10.0,
        use_jepa: bool = True,
        num_directions: int = 256,
    ):
        super().__init__(adata)
        self.module = ScJEPAModule(
            n_input=len(self.var_names_),
            n_hidden=tuple(n_hidden),
            n_latent=n_latent,
            n_projection=n_projection,
            n_views=n_views,
            mask_prob=mask_prob,
            lambda_sigreg=lambda_sigreg,
            gamma_recon=gamma_recon,
            use_jepa=use_jepa,
            num_directions=num_directions,
            normalize_counts=self._setup_args["is_count_data"],
        )
        self.classes_ = None
        self.classifier_weight_ = None
        self.classifier_bias_ = None
        self._model_summary_string = (
            f"ScJEPA: {n_views} views (p={mask_prob}), latent {n_latent}, "
            f"lambda={lambda_sigreg}, gamma={gamma_recon}, jepa={use_jepa}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ---------------------------------------------------------------- setup
    @classmethod
    @doc.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        *,
        layer: str | None = None,
        batch_key: str | None = None,
        labels_key: str | None = None,
        sample_key: str | None = None,
        is_count_data: bool = True,
        **kwargs,
    ):
        """Register an AnnData for ScJEPA and check its expression values.

        Parameters
        ----------
        adata
            Cells × genes AnnData.
        %(param_layer)s
        %(param_batch_key)s Registered; not used by the SSL loss.
        %(param_labels_key)s
        sample_key
            Optional ``adata.obs`` column with each cell's sample/donor; needed by
            :meth:`get_sample_representation` and for by-donor validation splits.
        is_count_data
            ``True`` (default): raw integer counts, normalised inside the model to 10,000 per
            cell and log1p (paper §3.1). ``False``: values are already log1p-normalised.

        Raises
        ------
        KeyError
            If ``layer`` or an obs key is missing.
        ValueError
            NaN/inf values; non-integer or negative values with ``is_count_data=True``;
            count-like values (integers > 1 or max > 30) with ``is_count_data=False``;
            empty cells (all-zero rows); missing values in an obs key.
        TypeError
            On an unknown keyword (e.g. ``obsm_key``: ScJEPA reads expression).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        cls._register(
            adata, setup_method_args, layer=layer,
            check_input=functools.partial(_check_expression, is_count_data=is_count_data),
            categorical={
                REGISTRY_KEYS.BATCH_KEY: (batch_key, "batch_key"),
                REGISTRY_KEYS.LABELS_KEY: (labels_key, "labels_key"),
                REGISTRY_KEYS.SAMPLE_KEY: (sample_key, "sample_key"),
            },
            transfer_kwargs=kwargs,
        )  # fmt: skip

    def _check_input(self, X, what: str) -> None:
        _check_expression(X, what, self._setup_args["is_count_data"])

    # ---------------------------------------------------------------- training
    def _default_max_epochs(self) -> int:
        """scvi-tools' heuristic (400 for ≤ 20k cells, fewer above)."""
        return get_max_epochs_heuristic(self.adata.n_obs)

    def _datamodule(self, batch_size, train_size, load_to_device, split_by_sample: bool = False):
        """Cells on the device; ``datasplitter_kwargs``: ``split_by_sample`` holds out whole
        samples (needs ``sample_key``). The last incomplete batch is dropped (SIGReg's statistic
        depends on the batch size)."""
        sample = self._samples(self.adata_manager)[0] if split_by_sample else None
        return CellDataModule(
            self._input(),
            sample=sample,
            validation_size=1.0 - train_size,
            batch_size=batch_size,
            drop_last=True,
            load_to_device=load_to_device,
            seed=seed(),
        )

    def _plan_defaults(self, max_epochs: int) -> dict:
        """AdamW lr 1e-3, weight decay 0.05, StepLR ×0.5 (paper §3.1) every 50 epochs (a fixed
        step: the old ``max_epochs // 3`` halved the rate every epoch of a 5-epoch run); SIGReg
        directions seeded by the step."""
        return dict(
            optimizer="AdamW", lr=1e-3, weight_decay=0.05, scheduler="step", lr_step_size=50,
            lr_gamma=0.5, step_seeded=True,
        )  # fmt: skip

    # ---------------------------------------------------------------- outputs
    def _embed_batch(self, batch: dict, representation: str = "latent"):
        return self.module.embed(batch[REGISTRY_KEYS.X_KEY], representation)

    @doc.dedent
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices=None,
        batch_size: int | None = None,
        key_added: str | None = None,
        representation: Literal["latent", "projection"] = "latent",
    ) -> np.ndarray:
        """Embedding of the unmasked cells, ``(n_cells, n_latent)`` (or ``n_projection``) float32.

        Parameters
        ----------
        %(param_adata)s
        %(param_indices)s
        %(param_batch_size_inference)s
        %(param_key_added_obsm)s
        representation
            ``"latent"`` (encoder output, used downstream, default) or ``"projection"``
            (projection-head output, where the JEPA/SIGReg losses act).

        Raises
        ------
        RuntimeError
            Before training.
        ValueError
            Bad representation name, invalid query values (see :meth:`setup_anndata`) or
            too many missing genes.
        """
        if representation not in ("latent", "projection"):
            raise ValueError(
                f"representation must be 'latent' or 'projection', got {representation!r}"
            )
        return super().get_latent_representation(
            adata, indices, batch_size, key_added, representation=representation
        )

    def _frozen_encoder_spec(self) -> dict:
        """The trained encoder as POPPY's frozen bulk backbone: layer ``sizes``, ``target_sum``
        (library size of the count normalisation), ``genes`` and a CPU copy of ``state``.
        Raises ``TypeError`` without expression input and ``ValueError`` when the model does not
        normalise counts itself."""
        if not self._uses_genes:
            raise TypeError("bulk_encoder must be a trained ScJEPA with expression input.")
        self._check_trained()
        linears = [m for m in self.module.encoder if isinstance(m, torch.nn.Linear)]
        sizes = [m.in_features for m in linears] + [linears[-1].out_features]
        state = {k: v.detach().cpu().clone() for k, v in self.module.encoder.state_dict().items()}
        lib = self.module.library_size if self.module.normalize_counts else None
        if lib is None:
            raise ValueError("the ScJEPA must normalise counts itself (normalize_counts=True).")
        return {"sizes": sizes, "target_sum": float(lib), "genes": list(self.var_names_),
                "state": state}  # fmt: skip

    @doc.dedent
    def get_denoised_expression(
        self, adata: AnnData | None = None, indices=None, batch_size: int | None = None
    ) -> pd.DataFrame:
        """Decoder output for the unmasked cells (same gene policy as the latent getter).

        Parameters
        ----------
        %(param_adata)s
        %(param_indices)s
        %(param_batch_size_inference)s

        Returns
        -------
        pandas.DataFrame
            Shape (n_cells, n_model_genes), index = obs names, columns = the model's genes, in
            log1p(counts / total · 10,000) units (the reconstruction target, paper §3.1).

        Raises
        ------
        RuntimeError
            Before training.
        """
        self._check_trained()
        ad = self.adata if adata is None else adata
        fn = functools.partial(_denoise, self.module)
        vals = self._latent(self._manager(adata), indices, batch_size, fn=fn)
        obs = ad.obs_names if indices is None else ad.obs_names[np.asarray(indices)]
        return pd.DataFrame(vals, index=obs, columns=pd.Index(self.var_names_))

    # ---------------------------------------------------------------- fine-tuning
    def train_classifier(
        self,
        labels_key: str,
        adata: AnnData | None = None,
        max_epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 1024,
        freeze_encoder: bool = False,
        train_size: float = 0.9,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        **trainer_kwargs,
    ) -> None:
        """Fine-tune the encoder with a linear cell-type head (the paper's "fine-tuned" setting).

        Runs through scvi-tools' ``TrainRunner`` like every training; its curves are in
        ``classifier_history_`` (``history`` keeps the self-supervised run).

        Parameters
        ----------
        labels_key
            ``adata.obs`` column with the cell types to learn (missing values not allowed).
        adata
            Labelled reference cells (default: the training AnnData; gene policy as in
            :meth:`get_latent_representation`).
        max_epochs, lr, batch_size
            Cross-entropy training with AdamW (weight decay 0.05, constant lr); defaults ours.
        freeze_encoder
            ``True``: train only the head (a linear probe); ``False`` updates the encoder
            too, which changes later :meth:`get_latent_representation` outputs.
        train_size
            Fraction of cells for training (early stopping on the rest, patience 5).
        accelerator, devices, **trainer_kwargs
            As in :meth:`train`.

        Raises
        ------
        RuntimeError
            Before self-supervised training.
        KeyError, ValueError
            Missing labels column or missing label values; ``max_epochs < 1``.
        """
        self._check_trained()
        max_epochs = self._check_epochs(max_epochs)
        ad = self.adata if adata is None else adata
        check_categorical_obs(ad, labels_key, "labels_key")
        cat = pd.Categorical(ad.obs[labels_key].astype(str))
        dm = CellDataModule(
            self._input(self._manager(adata)),
            labels=cat.codes.astype(np.int64),
            validation_size=1.0 - train_size,
            batch_size=batch_size,
            seed=seed(),
        )
        head = ScJEPAClassifierModule(self.module, len(cat.categories))
        plan = dict(optimizer="AdamW", lr=lr, weight_decay=0.05, scheduler=None)
        if freeze_encoder:
            plan.update(frozen=("jepa",), frozen_epochs=max_epochs)
        ssl_history = self.history_
        self.history_ = None
        self.is_trained_ = False
        try:
            self._run_stage(
                dm, plan, max_epochs, accelerator, devices, True, 5, trainer_kwargs, module=head
            )
        finally:
            self.is_trained_ = True
            self.classifier_history_, self.history_ = self.history_, ssl_history
        self.classes_ = np.asarray(cat.categories, dtype=object)
        self.classifier_weight_ = head.head.weight.detach().cpu().numpy()
        self.classifier_bias_ = head.head.bias.detach().cpu().numpy()
        self.labels_key_ = labels_key

    def predict(
        self,
        adata: AnnData | None = None,
        indices=None,
        batch_size: int | None = None,
        soft: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Cell-type predictions of the fine-tuned head.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            Labels, shape (n_cells,), or with ``soft=True`` class probabilities
            (n_cells, n_classes) with the class names as columns.

        Raises
        ------
        RuntimeError
            Before :meth:`train_classifier`.
        """
        if self.classifier_weight_ is None:
            raise RuntimeError("No classifier: call model.train_classifier(labels_key=...) first.")
        z = self.get_latent_representation(adata, indices, batch_size)
        logits = z @ self.classifier_weight_.T + self.classifier_bias_
        if soft:
            p = np.exp(logits - logits.max(1, keepdims=True))
            return pd.DataFrame(p / p.sum(1, keepdims=True), columns=self.classes_)
        return self.classes_[logits.argmax(1)]


def _denoise(module: ScJEPAModule, batch: dict):
    return module.denoise(batch[REGISTRY_KEYS.X_KEY])
