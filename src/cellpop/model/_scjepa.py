"""ScJEPA: dual-space self-supervised cell representations (Zhai et al., scJEPA)."""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data._constants import _SETUP_ARGS_KEY
from scvi.data.fields import CategoricalObsField, LayerField
from scvi.model._utils import get_max_epochs_heuristic
from scvi.model.base import BaseModelClass
from scvi.train import TrainingPlan, TrainRunner
from scvi.utils import setup_anndata_dsp

from cellpop.data import (
    CellDataModule,
    check_counts,
    check_finite,
    check_obs_key,
    get_input_matrix,
    iter_row_batches,
)
from cellpop.model.base import per_sample_mean
from cellpop.module._scjepa import ScJEPAModule

logger = logging.getLogger(__name__)

__all__ = ["ScJEPA"]

MAX_MISSING_GENE_FRACTION = 0.5
"""A query may miss at most this fraction of the model's genes (zero-filled, with a warning)."""


def _check_expression(X, is_count_data: bool, what: str) -> None:
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


class _ScJEPATrainingPlan(TrainingPlan):
    """scvi ``TrainingPlan`` with AdamW + StepLR (paper §3.1) and step-seeded SIGReg."""

    def __init__(self, module, lr=1e-3, weight_decay=0.05, lr_step_size=50, lr_gamma=0.5, **kw):
        super().__init__(module, lr=lr, weight_decay=weight_decay, **kw)
        self.lr_step_size, self.lr_gamma = lr_step_size, lr_gamma

    def training_step(self, batch, batch_idx):
        self.loss_kwargs["step"] = int(self.global_step)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.loss_kwargs["step"] = None
        return super().validation_step(batch, batch_idx)

    def configure_optimizers(self):
        params = [p for p in self.module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, self.lr_step_size, gamma=self.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class _ClassifierPlan(pl.LightningModule):
    """Fine-tuning: encoder (optionally frozen) + linear cell-type head, cross-entropy."""

    def __init__(self, module: ScJEPAModule, n_classes: int, lr: float, freeze_encoder: bool):
        super().__init__()
        self.module = module
        self.head = torch.nn.Linear(module.encoder[-1].out_features, n_classes)
        self.lr, self.freeze = lr, freeze_encoder
        for p in module.parameters():
            p.requires_grad_(not freeze_encoder)

    def _loss(self, batch):
        z = self.module.encoder(self.module.preprocess(batch[REGISTRY_KEYS.X_KEY]))
        return torch.nn.functional.cross_entropy(
            self.head(z), batch[REGISTRY_KEYS.LABELS_KEY][:, 0]
        )

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("validation_loss", self._loss(batch), on_epoch=True, on_step=False)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=0.05)


class ScJEPA(BaseModelClass):
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

    Examples
    --------
    >>> ScJEPA.setup_anndata(adata, layer="counts", sample_key="donor_id")
    >>> model = ScJEPA(adata)
    >>> model.train(max_epochs=50)
    >>> adata.obsm["X_scjepa"] = model.get_latent_representation()
    """

    _training_plan_cls = _ScJEPATrainingPlan

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
            n_input=self.summary_stats.n_vars,
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
        self.var_names_ = np.asarray(adata.var_names, dtype=object)
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
    @setup_anndata_dsp.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
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
        layer
            Layer with the expression (``None``: ``adata.X``).
        batch_key, labels_key
            Optional ``adata.obs`` columns (registered; not used by the SSL loss).
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
            empty cells (all-zero rows).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        for key, what in (
            (batch_key, "batch_key"),
            (labels_key, "labels_key"),
            (sample_key, "sample_key"),
        ):
            check_obs_key(adata, key, what)
        X = get_input_matrix(adata, layer=layer)
        _check_expression(X, is_count_data, f"layer={layer!r}" if layer else "adata.X")
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=is_count_data),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            CategoricalObsField(REGISTRY_KEYS.LABELS_KEY, labels_key),
        ]
        if sample_key is not None:
            fields.append(CategoricalObsField(REGISTRY_KEYS.SAMPLE_KEY, sample_key))
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    @property
    def _setup_args(self) -> dict:
        return self.adata_manager.registry[_SETUP_ARGS_KEY]

    # ---------------------------------------------------------------- training
    def train(
        self,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        batch_size: int = 1024,
        validation_size: float = 0.1,
        split_by_sample: bool = False,
        early_stopping: bool = True,
        early_stopping_patience: int = 20,
        load_to_device: bool | str = "auto",
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Self-supervised training (AdamW lr 1e-3, weight decay 0.05, StepLR; paper §3.1).

        Parameters
        ----------
        max_epochs
            ``None``: scvi-tools' heuristic (400 for ≤ 20k cells, fewer above).
        accelerator, devices
            Lightning device selection (``"auto"``: GPU when present).
        batch_size
            Cells per step (paper: 1024). The last incomplete batch is dropped (SIGReg's
            statistic depends on the batch size).
        validation_size
            Held-out fraction of cells (of samples with ``split_by_sample``). Default 0.1.
        split_by_sample
            Hold out whole samples (needs ``sample_key`` in setup).
        early_stopping
            Stop when ``validation_loss`` (the full objective with fixed masks/directions)
            has not improved for ``early_stopping_patience`` epochs.
        load_to_device
            Keep the matrix on the training device (see :class:`cellpop.data.CellDataModule`).
        plan_kwargs
            ``lr`` (1e-3), ``weight_decay`` (0.05), ``lr_step_size`` (epochs between
            decays; default a third of ``max_epochs``), ``lr_gamma`` (0.5).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (``benchmark=False`` by default for
            reproducibility).
        """
        if max_epochs is None:
            max_epochs = get_max_epochs_heuristic(self.adata.n_obs)
        sample = None
        if split_by_sample:
            if self._setup_args.get("sample_key") is None:
                raise ValueError("split_by_sample=True needs sample_key in setup_anndata.")
            sample = self.adata_manager.get_from_registry(REGISTRY_KEYS.SAMPLE_KEY).ravel()
        dm = CellDataModule(
            self.adata_manager,
            sample=sample,
            validation_size=validation_size,
            batch_size=batch_size,
            drop_last=True,
            load_to_device=load_to_device,
        )
        plan_kwargs = {"lr_step_size": max(1, max_epochs // 3), **(plan_kwargs or {})}
        plan = self._training_plan_cls(self.module, **plan_kwargs)
        if early_stopping and dm.n_val > 0:
            trainer_kwargs.setdefault("early_stopping", True)
            trainer_kwargs.setdefault("early_stopping_monitor", "validation_loss")
            trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
        trainer_kwargs.setdefault("benchmark", False)
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1 if dm.n_val > 0 else None)
        runner = TrainRunner(
            self,
            training_plan=plan,
            data_splitter=dm,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            **trainer_kwargs,
        )
        return runner()

    # ---------------------------------------------------------------- inputs
    def _check_trained(self):
        if not self.is_trained_:
            raise RuntimeError("ScJEPA is not trained yet: call model.train() first.")

    def _matrix(self, adata: AnnData | None, indices=None):
        """Model-ready matrix of ``adata`` (genes aligned to the model), rows ``indices``."""
        adata = self.adata if adata is None else adata
        X = get_input_matrix(adata, layer=self._setup_args["layer"])
        if adata is not self.adata:
            X = self._align_genes(adata, X)
        if indices is not None:
            X = X[np.asarray(indices)]
        is_counts = self._setup_args["is_count_data"]
        _check_expression(X, is_counts, "query" if adata is not self.adata else "adata")
        return X

    def _align_genes(self, adata: AnnData, X):
        """Columns of ``X`` reordered to the model's genes; missing ones zero-filled (a copy)."""
        model_genes = pd.Index(self.var_names_)
        if model_genes.equals(adata.var_names):
            return X
        if not adata.var_names.is_unique:
            raise ValueError("The query's var_names are not unique: make them unique first.")
        pos = adata.var_names.get_indexer(model_genes)
        n_missing = int((pos < 0).sum())
        frac = n_missing / len(model_genes)
        if frac > MAX_MISSING_GENE_FRACTION:
            raise ValueError(
                f"{n_missing} of the model's {len(model_genes)} genes ({frac:.0%}) are missing "
                f"from the query (tolerance {MAX_MISSING_GENE_FRACTION:.0%}); first missing: "
                f"{list(model_genes[pos < 0][:5])}. Is var_names the same gene naming?"
            )
        if n_missing:
            warnings.warn(
                f"{n_missing} of the model's {len(model_genes)} genes are missing from the query "
                "and set to 0.",
                UserWarning,
                stacklevel=3,
            )
        n_extra = adata.n_vars - (len(model_genes) - n_missing)
        if n_extra:
            logger.info("Dropping %d query genes unknown to the model.", n_extra)
        X = sparse.csr_matrix(X)
        sel = np.where(pos < 0, 0, pos)
        out = X[:, sel]
        if n_missing:
            keep = sparse.diags((pos >= 0).astype(np.float32))
            out = sparse.csr_matrix(out @ keep)
            out.eliminate_zeros()
        return out

    @property
    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _embed(self, X, fn, batch_size: int | None) -> np.ndarray:
        self.module.eval()
        out = [fn(xb).cpu().numpy() for xb in iter_row_batches(X, batch_size or 1024, self._device)]
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    # ---------------------------------------------------------------- outputs
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices=None,
        batch_size: int | None = None,
        representation: Literal["latent", "projection"] = "latent",
    ) -> np.ndarray:
        """Embedding of the unmasked cells.

        Parameters
        ----------
        adata
            ``None``: the training AnnData. Another AnnData (query) is read, never modified:
            its genes are matched to the model's by name, missing genes are set to 0 with a
            warning (error above ``MAX_MISSING_GENE_FRACTION`` = 50 % missing), extra genes
            are dropped (zero-shot transfer).
        indices
            Optional cell indices into ``adata``.
        batch_size
            Cells per forward pass (default 1024).
        representation
            ``"latent"`` (encoder output, used downstream, default) or ``"projection"``
            (projection-head output, where the JEPA/SIGReg losses act).

        Returns
        -------
        numpy.ndarray
            Shape (n_cells, n_latent) (or (n_cells, n_projection)), float32.

        Raises
        ------
        RuntimeError
            Before training.
        ValueError
            Bad representation name, invalid query values (see :meth:`setup_anndata`) or
            too many missing genes.
        """
        self._check_trained()
        if representation not in ("latent", "projection"):
            raise ValueError(
                f"representation must be 'latent' or 'projection', got {representation!r}"
            )
        X = self._matrix(adata, indices)
        return self._embed(X, lambda x: self.module.embed(x, representation), batch_size)

    def get_denoised_expression(
        self, adata: AnnData | None = None, indices=None, batch_size: int | None = None
    ) -> pd.DataFrame:
        """Decoder output for the unmasked cells (same gene alignment as the latent getter).

        Returns
        -------
        pandas.DataFrame
            Shape (n_cells, n_model_genes), index = obs names, columns = the model's genes, in
            log1p(counts / total · 10,000) units (the reconstruction target, paper §3.1).
        """
        self._check_trained()
        ad = self.adata if adata is None else adata
        X = self._matrix(adata, indices)
        obs = ad.obs_names if indices is None else ad.obs_names[np.asarray(indices)]
        vals = self._embed(X, self.module.denoise, batch_size)
        return pd.DataFrame(vals, index=obs, columns=pd.Index(self.var_names_))

    def get_sample_representation(
        self, adata: AnnData | None = None, key_added: str | None = None
    ) -> pd.DataFrame:
        """Mean latent per sample.

        Returns
        -------
        pandas.DataFrame
            Shape (n_samples, n_latent), index = sample ids (``sample_key`` values). Also
            stored in ``adata.uns[key_added]`` when ``key_added`` is given.

        Raises
        ------
        ValueError
            If ``sample_key`` was not registered in :meth:`setup_anndata`.
        RuntimeError
            Before training.
        """
        key = self._setup_args.get("sample_key")
        if key is None:
            raise ValueError("get_sample_representation needs sample_key in setup_anndata.")
        self._check_trained()
        ad = self.adata if adata is None else adata
        df = per_sample_mean(self.get_latent_representation(adata), ad, key, prefix="latent")
        if key_added is not None:
            ad.uns[key_added] = df
        return df

    # ---------------------------------------------------------------- fine-tuning
    def train_classifier(
        self,
        labels_key: str,
        adata: AnnData | None = None,
        max_epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 1024,
        freeze_encoder: bool = False,
        validation_size: float = 0.1,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
    ) -> None:
        """Fine-tune the encoder with a linear cell-type head (the paper's "fine-tuned" setting).

        Parameters
        ----------
        labels_key
            ``adata.obs`` column with the cell types to learn (missing values not allowed).
        adata
            Labelled reference cells (default: the training AnnData; genes aligned as in
            :meth:`get_latent_representation`).
        max_epochs, lr, batch_size
            Cross-entropy training with AdamW (weight decay 0.05); defaults are ours.
        freeze_encoder
            ``True``: train only the head (a linear probe); ``False`` updates the encoder
            too, which changes later :meth:`get_latent_representation` outputs.
        validation_size
            Held-out fraction of cells (early stopping on its cross-entropy, patience 5).

        Raises
        ------
        RuntimeError
            Before self-supervised training.
        KeyError, ValueError
            Missing labels column or missing label values.
        """
        self._check_trained()
        ad = self.adata if adata is None else adata
        check_obs_key(ad, labels_key, "labels_key")
        col = ad.obs[labels_key]
        if col.isna().any():
            raise ValueError(
                f"labels_key={labels_key!r} has {int(col.isna().sum())} missing labels."
            )
        cat = pd.Categorical(col.astype(str))
        dm = CellDataModule(
            X=self._matrix(adata),
            labels=cat.codes.astype(np.int64),
            validation_size=validation_size,
            batch_size=batch_size,
        )
        plan = _ClassifierPlan(self.module, len(cat.categories), lr, freeze_encoder)
        callbacks = []
        if dm.n_val > 0:
            callbacks.append(pl.callbacks.EarlyStopping("validation_loss", patience=5))
        trainer = pl.Trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            benchmark=False,
            callbacks=callbacks,
        )
        self.module.train()
        trainer.fit(plan, dm)
        for p in self.module.parameters():
            p.requires_grad_(True)
        self.module.eval()
        self.classes_ = np.asarray(cat.categories, dtype=object)
        self.classifier_weight_ = plan.head.weight.detach().cpu().numpy()
        self.classifier_bias_ = plan.head.bias.detach().cpu().numpy()
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
