"""PopulationJEPA: SC-JEPA population (donor) representations by predicting target-subset tokens.

Paper: "SC-JEPA: learning population-level representations with joint embedding predictive
architectures" (``/shared/papers/000``), Section 3; the paper calls the method SC-JEPA, the class
name avoids the clash with :class:`~cellpop.model.ScJEPA` (a cell-level method).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi.data import AnnDataManager

from cellpop.model.base import SampleModel
from cellpop.model.base._docs import doc
from cellpop.module import PopulationJEPAModule
from cellpop.train import EMATeacher

logger = logging.getLogger(__name__)

DATASET_KEY = "dataset"
"""Registry key of the dataset field (``setup_anndata(dataset_key=...)``)."""


class PopulationJEPA(SampleModel):
    """SC-JEPA: per-cell contextual tokens and population (donor) embeddings.

    Every training step takes ``B`` samples, draws ``n`` cells from each and splits them 20:80
    into target and context (:class:`cellpop.data.SampleSetDataModule` with
    ``views="context_target"``); a context encoder (per-cell two-layer MLP + 8-layer set
    Transformer, no positional encoding) encodes the context, its EMA (the target encoder) the
    target; a 4-layer predictor reads the context tokens (plus dataset tokens) and pointer
    tokens and predicts the target tokens; loss = L1 + a variance term
    (:class:`cellpop.module.PopulationJEPAModule`). The population embedding is the mean of the
    context encoder's tokens over all of a sample's cells (§3, "Population embedding").

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    objective
        ``"jepa"`` (SC-JEPA) or ``"jea"`` (the paper's DINOv2-like JEA baseline, §4: the student
        sees a 20 % local and an 80 % global view, EMA teacher, no predictor).
    d_model, n_heads, n_layers, predictor_layers
        Token width (ours: 128), heads (ours: 4), encoder depth (§3: 8), predictor depth (§3: 4).
    target_fraction
        Target share of each set (§3: 0.2).
    var_removed
        Share of the target cells' variance removed for the pointer tokens (§3: 0.7).
    variance_weight
        Weight of the variance term (the paper gives none: 1.0).
    n_datasets
        Dataset tokens (default: the ``dataset_key`` categories; recorded for ``load``).
    **module_kwargs
        Other :class:`~cellpop.module.PopulationJEPAModule` options (``n_hidden``, ``dropout``,
        ``variance_statistic``, DINO head sizes, ...).

    Notes
    -----
    :meth:`train` defaults: ``max_epochs`` 200, ``batch_size`` 16 samples, patience 50,
    ``plan_kwargs`` AdamW lr 1e-4, weight decay 0.05, 10 warm-up epochs then cosine;
    ``datasplitter_kwargs`` ``n_cells=(256, 256)`` cells per set, ``small_sample="replace"``,
    ``group_by_batch``. The EMA teacher follows 0.996 -> 1 linearly (I-JEPA).

    Examples
    --------
    >>> cellpop.model.PopulationJEPA.setup_anndata(adata, sample_key="donor_id", obsm_key="X_pca")
    >>> model = cellpop.model.PopulationJEPA(adata)
    >>> model.train()
    >>> donors = model.get_sample_representation(key_added="X_popjepa")
    """

    _module_cls = PopulationJEPAModule
    _default_batch_size = 16
    _default_patience = 50

    def __init__(
        self,
        adata: AnnData,
        objective: Literal["jepa", "jea"] = "jepa",
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 8,
        predictor_layers: int = 4,
        target_fraction: float = 0.2,
        var_removed: float = 0.7,
        variance_weight: float = 1.0,
        n_datasets: int | None = None,
        **module_kwargs,
    ):
        super().__init__(adata)
        if n_datasets is None:
            n_datasets = len(self._dataset_names())
        self.target_fraction = target_fraction
        self.set_size_ = 256  # cells per set at inference: the training set size
        self.module = self._module_cls(
            n_input=self._input(check=False).shape[1],
            n_datasets=n_datasets,
            objective=objective,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_layers,
            predictor_layers=predictor_layers,
            var_removed=var_removed,
            variance_weight=variance_weight,
            **module_kwargs,
        )
        self._model_summary_string = (
            f"PopulationJEPA ({objective}): {len(self.sample_order_)} samples, {n_datasets} "
            f"dataset(s), d_model={d_model}, {n_layers}+{predictor_layers} layers"
        )
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    @doc.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        *,
        sample_key: str,
        layer: str | None = None,
        obsm_key: str | None = None,
        dataset_key: str | None = None,
        min_cells_per_sample: int = 10,
        **kwargs,
    ):
        """Register ``adata`` for PopulationJEPA.

        Parameters
        ----------
        adata
            AnnData, one row per cell.
        %(param_sample_key)s
        layer
            Expression layer used as given: pass log1p-normalised values (e.g.
            ``sc.pp.normalize_total`` + ``sc.pp.log1p``; the model does not normalise). Genes
            are matched by name on queries and ``load``.
        obsm_key
            Per-cell embedding in ``adata.obsm`` (e.g. ``"X_pca"``); exclusive with ``layer``.
        dataset_key
            ``adata.obs`` column of the source dataset (constant within a sample): one learned
            dataset token each, added to the context tokens (§3).
        min_cells_per_sample
            Samples with fewer cells raise an error; samples smaller than a training set are
            resampled with replacement (``small_sample="replace"``).

        Raises
        ------
        KeyError, ValueError, TypeError
            Missing keys, NaN values or categories, fewer than 2 samples, a small sample, a
            dataset key that varies within a sample, an unknown keyword.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        cls._check_samples(adata, sample_key, min_cells_per_sample)
        if dataset_key is not None:
            from cellpop.data import check_constant_within_samples

            check_constant_within_samples(
                adata, dataset_key, sample_key, "dataset_key",
                ": a sample comes from one dataset.",
            )  # fmt: skip
        from scvi import REGISTRY_KEYS

        cls._register(
            adata, setup_method_args, layer=layer, obsm_key=obsm_key,
            categorical={
                REGISTRY_KEYS.SAMPLE_KEY: (sample_key, "sample_key"),
                DATASET_KEY: (dataset_key, "dataset_key"),
            },
            transfer_kwargs=kwargs,
        )  # fmt: skip

    # ------------------------------------------------------------------ data
    def _dataset_names(self) -> list[str]:
        if DATASET_KEY not in self.adata_manager.data_registry:
            return ["all"]
        return list(self.adata_manager.get_state_registry(DATASET_KEY).categorical_mapping)

    def _sample_datasets(self, codes: np.ndarray, n: int) -> torch.Tensor:
        """Dataset code of every sample ``(n,)`` (0 without ``dataset_key``).

        Raises
        ------
        ValueError
            If a dataset is unknown to the model (more datasets than dataset tokens).
        """
        per_cell = self._codes(self.adata_manager, DATASET_KEY)
        if per_cell is None:
            return torch.zeros(n, dtype=torch.long)
        per_sample = pd.Series(per_cell).groupby(codes).first().reindex(range(n)).to_numpy()
        if per_sample.max() >= self.module.n_datasets:
            names = self._dataset_names()[self.module.n_datasets :]
            raise ValueError(
                f"dataset_key categories {names[:5]} were unseen when the model was built "
                f"({self.module.n_datasets} dataset tokens): train a new model."
            )
        return torch.as_tensor(per_sample, dtype=torch.long)

    def _default_max_epochs(self) -> int:
        """200 epochs (an epoch = every training sample once)."""
        return 200

    def _datamodule(
        self,
        batch_size,
        train_size,
        load_to_device,
        n_cells: tuple[int, int] = (256, 256),
        small_sample: Literal["replace", "mask"] = "replace",
        group_by_batch: bool = True,
    ):
        """Context/target sets; ``datasplitter_kwargs``: ``n_cells`` (``(min, max)`` cells
        per set, default 256: the paper gives no size; attention grows with it),
        ``small_sample``, ``group_by_batch``."""
        codes, names = self._samples(self.adata_manager)
        self.set_size_ = int(n_cells[1])
        return self._set_datamodule(
            batch_size, train_size, load_to_device, n_cells=n_cells, small_sample=small_sample,
            views="context_target", target_fraction=self.target_fraction,
            sample_targets={"dataset": self._sample_datasets(codes, len(names))},
            group_by_batch=group_by_batch,
        )  # fmt: skip

    def _plan_defaults(self, max_epochs: int) -> dict:
        """AdamW lr 1e-4, weight decay 0.05 (I-JEPA-like; the paper gives none), 10 warm-up
        epochs then cosine decay."""
        return dict(
            optimizer="AdamW", lr=1e-4, weight_decay=0.05, scheduler="warmup_cosine",
            warmup_epochs=10,
        )  # fmt: skip

    def _callbacks(self) -> list:
        """The EMA teacher, momentum 0.996 -> 1 linearly (I-JEPA, METHODS.md)."""
        return [EMATeacher()]

    # ------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def _tokens(self, manager: AnnDataManager, set_size: int | None, batch_size: int | None):
        """Context-encoder tokens of every cell ``(n_cells, d_model)``, computed in sets of the
        training size within each sample (seeded), and the cells' sample codes and names."""
        sets, codes, names = self._sample_sets(manager)
        cells, mask, _ = self._all_cell_sets(codes, len(names), set_size or self.set_size_)
        sets.to(self.device)
        self.module.eval()
        out = torch.zeros(len(codes), self.module.d_model)
        step = batch_size or 32
        for i in range(0, len(cells), step):
            c = torch.as_tensor(cells[i : i + step])
            m = torch.as_tensor(mask[i : i + step])
            tok = self.module.embed_tokens(sets.gather(c), m.to(self.device))
            out[c[m]] = tok[m.to(tok.device)].float().cpu()
        return out.numpy(), codes, names

    def _latent(self, manager: AnnDataManager, indices, batch_size, fn=None) -> np.ndarray:
        """Per-cell contextual tokens (``batch_size``: sets per forward pass, default 32)."""
        tokens, _, _ = self._tokens(manager, None, batch_size)
        return tokens if indices is None else tokens[np.asarray(indices)]

    def _sample_vectors(self, manager: AnnDataManager, set_size: int | None = None) -> pd.DataFrame:
        """Population embeddings ``(n_samples, d_model)``, columns ``latent_i``: the mean token
        over all of a sample's cells, in sets of ``set_size`` (default: the training set size,
        ``set_size_``)."""
        from cellpop.data import per_sample_mean

        tokens, codes, names = self._tokens(manager, set_size, None)
        return per_sample_mean(tokens, codes, names)
