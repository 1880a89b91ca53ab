"""Base of the sample-level models (SampleCLR, PopulationJEPA, POPPY): cells as sets per sample."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager

from cellpop.data import (
    SampleSetDataModule,
    SampleSets,
    check_min_samples,
    inference_cells,
    is_on_disk,
    split_samples,
)
from cellpop.data._samples import rows_by_code

from ._base import CellpopModel, seed


class SampleModel(CellpopModel):
    """Base of models whose unit is a sample (donor): the sample key is a registered field.

    Adds to :class:`CellpopModel`: ``sample_key``, ``sample_order_`` (training samples in
    registry order), :attr:`sample_info`, the minimum number of cells per sample, the sample-set
    data module (split by sample, optionally grouped by batch and stratified by a label), fixed
    cell sets for inference, and :meth:`get_sample_representation` writing ``.uns[key_added]``.
    A model implements ``_sample_vectors(manager, **kwargs) -> DataFrame``.
    """

    _default_batch_size = 32
    _default_patience = 150

    def __init__(self, adata: AnnData | None = None):
        super().__init__(adata)
        if adata is not None:
            self.sample_order_ = self._samples(self.adata_manager)[1].tolist()

    @classmethod
    def _check_samples(cls, adata: AnnData, sample_key: str, min_cells_per_sample: int) -> None:
        """At least 2 samples and ``min_cells_per_sample`` cells in each (setup-time check).

        Raises
        ------
        KeyError, ValueError
            Missing ``sample_key`` or NaN in it, fewer than 2 samples, a small sample (named).
        """
        from cellpop.data import check_categorical_obs

        check_categorical_obs(adata, sample_key, "sample_key")
        counts = adata.obs[sample_key].astype(str).value_counts()
        check_min_samples(len(counts), sample_key)
        small = counts[counts < min_cells_per_sample]
        if len(small):
            raise ValueError(
                f"{len(small)} sample(s) have fewer than min_cells_per_sample="
                f"{min_cells_per_sample} cells: {small.index[:10].tolist()} (cells: "
                f"{small.to_numpy()[:10].tolist()}). Remove them or lower min_cells_per_sample."
            )

    @property
    def sample_key(self) -> str:
        """The ``adata.obs`` column naming each cell's sample (donor)."""
        return self._setup_args["sample_key"]

    @property
    def sample_info(self) -> pd.DataFrame:
        """One row per sample: the obs columns constant within each sample, plus ``n_cells``."""
        from cellpop.tl import sample_metadata

        return sample_metadata(self.adata, self.sample_key)

    # ------------------------------------------------------------------ data
    def _sample_sets(self, manager: AnnDataManager) -> tuple[SampleSets, np.ndarray, pd.Index]:
        codes, names = self._samples(manager)
        return SampleSets(self._input(manager), codes, len(names)), codes, names

    def _sample_split(
        self, codes: np.ndarray, n: int, train_size: float, group_by_batch: bool, stratify
    ) -> tuple[np.ndarray, np.ndarray]:
        """Split samples: by batch group (when asked and registered) and label strata."""
        groups = None
        if group_by_batch and self._setup_args.get("batch_key") is not None:
            batch = self._codes(self.adata_manager, REGISTRY_KEYS.BATCH_KEY)
            groups = pd.Series(batch).groupby(codes).agg(lambda s: s.mode().iloc[0])
            groups = groups.reindex(range(n)).to_numpy()
        return split_samples(n, train_size, seed=seed(), groups=groups, stratify=stratify)

    def _set_datamodule(
        self,
        batch_size: int,
        train_size: float,
        load_to_device,
        n_cells: tuple[int, int],
        n_views: int = 2,
        small_sample: Literal["replace", "mask"] = "replace",
        sample_targets: dict[str, torch.Tensor] | None = None,
        group_by_batch: bool = True,
        stratify: np.ndarray | None = None,
        **views,
    ) -> SampleSetDataModule:
        """The sample-set data module of the training AnnData (split stored on the model)."""
        sets, codes, names = self._sample_sets(self.adata_manager)
        train_s, val_s = self._sample_split(codes, len(names), train_size, group_by_batch, stratify)
        self.train_samples_ = names[train_s].tolist()
        self.validation_samples_ = names[val_s].tolist()
        return SampleSetDataModule(
            sets, train_s, val_s, batch_size=batch_size, n_cells=tuple(n_cells), n_views=n_views,
            small_sample=small_sample, sample_targets=sample_targets,
            load_to_device=load_to_device, seed=seed(), **views,
        )  # fmt: skip

    def _all_cell_sets(
        self, codes: np.ndarray, n_samples: int, set_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every cell of every sample in sets of at most ``set_size`` (seeded, deterministic).

        Each sample's cells are shuffled with ``scvi.settings.seed`` and split into
        ``ceil(n / set_size)`` sets of near-equal size.

        Returns
        -------
        cells
            int64 ``(n_sets, L)`` cell rows (padding repeats a real cell).
        mask
            bool ``(n_sets, L)``, ``True`` for real cells.
        owner
            int64 ``(n_sets,)`` sample code of each set.
        """
        rng = np.random.default_rng(seed())
        groups, owner = [], []
        for s, rows in enumerate(rows_by_code(codes, n_samples)):
            cells = rng.permutation(rows)
            parts = np.array_split(cells, max(1, -(-len(cells) // set_size)))
            groups.extend(parts)
            owner.extend([s] * len(parts))
        width = max(len(g) for g in groups)
        out = np.zeros((len(groups), width), dtype=np.int64)
        mask = np.zeros((len(groups), width), dtype=bool)
        for i, g in enumerate(groups):
            out[i, : len(g)], out[i, len(g) :] = g, g[0]
            mask[i, : len(g)] = True
        return out, mask, np.asarray(owner, dtype=np.int64)

    def _fixed_sets(
        self,
        manager: AnnDataManager,
        n_cells: int,
        cell_selection: Literal["centrality", "random"],
    ) -> tuple[SampleSets, np.ndarray, pd.Index]:
        """A fixed ``(n_samples, n_cells)`` cell set per sample (cached per input and seed)."""
        import zlib

        from scipy import sparse

        X = self._input(manager)
        codes, names = self._samples(manager)
        if is_on_disk(X):  # no content hash (it would read the file): never cached
            key = None
        else:
            parts = (X.data, X.indices, X.indptr) if sparse.issparse(X) else (np.asarray(X),)
            key = (
                zlib.crc32(codes.tobytes()),
                *(zlib.crc32(np.ascontiguousarray(p).tobytes()) for p in parts),
            )
            key = (*key, n_cells, cell_selection, seed())
        cache = self.__dict__.setdefault("_inference_cache", {})
        if key is None or key not in cache:
            cache.clear()
            cache[key] = inference_cells(
                X, codes, len(names), n_cells=n_cells, method=cell_selection, seed=seed()
            )
        return SampleSets(X, codes, len(names)), cache[key], names
