"""Device-resident minibatch loading for cell-level models.

:class:`CellDataModule` is a Lightning data module (usable wherever scvi-tools expects a
``DataSplitter``: it exposes ``train_idx``/``val_idx``/``test_idx``, ``n_train`` and ``n_val``)
that keeps the whole cell matrix on the training device and draws minibatches there with an
on-device ``randperm``: no per-cell Python work, no ``DataLoader`` workers, no host-to-device
copy per step. Sparse CSR matrices stay sparse on the device and are densified one minibatch at
a time with vectorised gathers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS, settings

from ._device import DeviceMatrix, storage_device
from ._lazy import LazyRows, as_lazy, prefetch
from ._sample_sets import split_samples
from ._trainer_state import TrainerState

__all__ = [
    "CellDataModule",
    "iter_row_batches",
    "split_cells",
    "PARTNER_X_KEY",
    "PARTNER_BATCH_KEY",
]

PARTNER_X_KEY = "X_pos"
"""Batch key of the augmentation partners' rows (see ``CellDataModule(partners=...)``)."""
PARTNER_BATCH_KEY = "batch_pos"
"""Batch key of the partners' batch codes."""


def split_cells(
    n_cells: int,
    validation_size: float = 0.1,
    sample: Sequence | np.ndarray | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split cell indices into train and validation sets.

    Parameters
    ----------
    n_cells
        Number of cells.
    validation_size
        Fraction in [0, 1) held out for validation: a fraction of the cells, or, when
        ``sample`` is given, of the samples (at least one sample when ``validation_size > 0``).
    sample
        Optional per-cell sample/donor labels, shape (n_cells,). When given, whole samples
        are held out (no sample contributes cells to both sets).
    seed
        Seed of the numpy generator; ``None`` uses ``scvi.settings.seed``.

    Returns
    -------
    train_idx, val_idx
        Sorted int64 index arrays, disjoint, together covering ``range(n_cells)``.

    Raises
    ------
    ValueError
        If ``validation_size`` is outside [0, 1), ``sample`` has the wrong length, or a
        by-sample split would leave no training sample.
    """
    if not 0.0 <= validation_size < 1.0:
        raise ValueError(f"validation_size must be in [0, 1), got {validation_size}.")
    if seed is None:
        seed = settings.seed if settings.seed is not None else 0
    rng = np.random.default_rng(seed)
    if sample is None:
        n_val = int(round(n_cells * validation_size))
        if validation_size > 0 and n_cells > 1:
            n_val = min(max(n_val, 1), n_cells - 1)
        perm = rng.permutation(n_cells)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    else:
        sample = np.asarray(sample)
        if sample.shape[0] != n_cells:
            raise ValueError(f"sample has {sample.shape[0]} entries for {n_cells} cells.")
        codes, uniq = pd.factorize(sample, sort=True)
        n_val_s = int(round(len(uniq) * validation_size))
        if validation_size > 0:
            n_val_s = max(n_val_s, 1)
        if n_val_s >= len(uniq) and validation_size > 0:
            raise ValueError(
                f"Only {len(uniq)} sample(s): cannot hold out whole samples for validation "
                "and keep at least one for training; lower validation_size or pass sample=None."
            )
        if n_val_s == 0:
            return np.arange(n_cells, dtype=np.int64), np.array([], dtype=np.int64)
        _, val_s = split_samples(len(uniq), 1.0 - n_val_s / len(uniq), seed=seed, min_validation=1)
        is_val = np.isin(codes, val_s)
        val_idx, train_idx = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    return np.sort(train_idx).astype(np.int64), np.sort(val_idx).astype(np.int64)


class _MinibatchIterable:
    """Re-iterable sequence of minibatch dicts over ``indices`` (one pass per ``iter``)."""

    def __init__(self, module: CellDataModule, indices: np.ndarray, shuffle: bool, drop_last: bool):
        self.dm = module
        self.indices = indices
        self.shuffle = shuffle
        self.drop_last = drop_last

    def _n_local(self) -> int:
        _, world = self.dm._rank_world()
        return math.ceil(len(self.indices) / world)

    def __len__(self) -> int:
        n = self._n_local()
        bs = self.dm.batch_size
        return n // bs if (self.drop_last and n >= bs) else math.ceil(n / bs)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.dm.lazy is not None:  # read from disk one step ahead, in a thread
            return prefetch(self._batches())
        return self._batches()

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        dm = self.dm
        dm._materialise()
        store = dm._store_device
        idx = torch.as_tensor(self.indices, device=store)
        epoch = dm._epoch() if self.shuffle else -1
        if self.shuffle:
            gen = torch.Generator(device=store)
            gen.manual_seed(dm.seed + epoch)
            idx = idx[torch.randperm(idx.shape[0], generator=gen, device=store)]
        rank, world = dm._rank_world()
        if world > 1:  # pad by wrapping so every rank gets the same number of cells
            n_local = math.ceil(idx.shape[0] / world)
            pad = n_local * world - idx.shape[0]
            if pad:
                idx = torch.cat([idx, idx[:pad]])
            idx = idx[rank::world]
        bs = dm.batch_size
        n = idx.shape[0]
        stop = (n // bs) * bs if (self.drop_last and n >= bs) else n
        gen = None
        if dm.partners is not None:
            gen = torch.Generator(device=store)
            gen.manual_seed(dm.seed + 7_919 * (epoch + 2) + 104_729 * rank)  # epoch -1: validation
        for s in range(0, stop, bs):
            batch = dm.gather(idx[s : s + bs])
            if gen is not None:
                batch.update(dm.draw_partners(idx[s : s + bs], gen))
            yield batch


class CellDataModule(TrainerState, pl.LightningDataModule):
    """Train/validation minibatches of single cells, resident on the training device.

    Models hand it the matrix their registry fields give (see
    :meth:`cellpop.model.base.CellpopModel._registered_input`) and the per-cell integer covariates.

    Parameters
    ----------
    X
        Cell matrix, shape (n_cells, n_features), dense or scipy sparse (any units; values are
        copied as float32 on the device; sparse rows stay sparse until gathered), or on disk
        (a backed sparse dataset, an h5py/zarr array or a :class:`cellpop.data.LazyRows`):
        then only each minibatch's rows are read, in a background thread one step ahead, and
        ``load_to_device`` does not apply.
    batch, labels
        Optional per-cell integer codes, shape (n_cells,) or (n_cells, 1).
    sample
        Optional per-cell sample/donor ids, shape (n_cells,). With ``split_by_sample=True``
        whole samples are held out for validation (see :func:`split_cells`).
    validation_size
        Fraction of cells (or of samples) held out for validation. Default 0.1.
    split_by_sample
        Hold out whole samples (requires ``sample``). Default ``True`` when ``sample`` is given.
    external_indexing
        ``[train_idx, val_idx]`` or ``[train_idx, val_idx, test_idx]`` to use instead of a
        random split (scvi-tools ``DataSplitter`` convention).
    batch_size
        Cells per minibatch (per rank under DDP). Default 128.
    drop_last
        Drop the last incomplete training minibatch (kept when the training set is smaller
        than one batch). Default ``False``.
    load_to_device
        ``True``: copy the matrix to the training device; ``False``: keep it in host memory and
        copy each densified minibatch; ``"auto"`` (default): copy when it needs less than
        ``max_device_fraction`` of the device's free memory (always on CPU).
    max_device_fraction
        Memory threshold used by ``load_to_device="auto"``. Default 0.5.
    seed
        Seed of the split and of the per-epoch permutations (epoch ``e`` uses ``seed + e``);
        ``None`` uses ``scvi.settings.seed``.
    partners
        Optional int ``(n_cells, k)`` augmentation partners of every cell (e.g. its kNN). Each
        minibatch then also holds, for every cell, one partner drawn at random on the device
        (seeded): its row under ``PARTNER_X_KEY`` (``"X_pos"``) and its batch code under
        ``PARTNER_BATCH_KEY`` (``"batch_pos"``). Partners are restricted to the cell's own split
        (a training cell never pairs with a validation cell); a cell with no partner in its split
        pairs with itself.
    device
        Device to use outside a trainer (inference); default: the trainer's, else CPU.

    Notes
    -----
    Minibatches are dicts with keys ``REGISTRY_KEYS.X_KEY`` (``"X"``, float32, shape
    (b, n_features)), ``"batch"`` and ``"labels"`` (int64, shape (b, 1), zeros when not
    given) and ``"indices"`` (int64, shape (b, 1), row numbers in the full matrix; also under
    scvi's ``REGISTRY_KEYS.INDICES_KEY``, ``"ind_x"``). Under DDP
    each rank takes every ``world_size``-th cell of the shared permutation (``global_rank``
    offset), padded by wrapping so all ranks run the same number of steps.

    Raises
    ------
    ValueError
        If neither ``adata_manager`` nor ``X`` is given, covariates have the wrong length, or
        ``split_by_sample=True`` without ``sample``.
    """

    def __init__(
        self,
        X=None,
        *,
        batch=None,
        labels=None,
        sample=None,
        validation_size: float = 0.1,
        split_by_sample: bool | None = None,
        external_indexing: Sequence[np.ndarray] | None = None,
        batch_size: int = 128,
        drop_last: bool = False,
        load_to_device: bool | str = "auto",
        max_device_fraction: float = 0.5,
        seed: int | None = None,
        partners: np.ndarray | None = None,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        self._device_override = None if device is None else torch.device(device)
        if X is None:
            raise ValueError("Give the cell matrix X=.")
        if load_to_device not in (True, False, "auto"):
            raise ValueError(
                f"load_to_device must be True, False or 'auto', got {load_to_device!r}"
            )
        self.X_host = X
        self.lazy: LazyRows | None = as_lazy(X)
        self.n_cells = X.shape[0]
        self.batch = self._codes(batch, "batch")
        self.labels = self._codes(labels, "labels")
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.load_to_device = load_to_device
        self.max_device_fraction = max_device_fraction
        base = settings.seed if seed is None else seed
        self.seed = int(base) if base is not None else 0
        if split_by_sample is None:
            split_by_sample = sample is not None
        if split_by_sample and sample is None:
            raise ValueError("split_by_sample=True needs sample= (per-cell sample/donor ids).")
        if external_indexing is not None:
            parts = [np.asarray(i, dtype=np.int64) for i in external_indexing]
            self.train_idx, self.val_idx = parts[0], parts[1]
            self.test_idx = parts[2] if len(parts) > 2 else np.array([], dtype=np.int64)
        else:
            self.train_idx, self.val_idx = split_cells(
                self.n_cells,
                validation_size,
                sample=sample if split_by_sample else None,
                seed=self.seed,
            )
            self.test_idx = np.array([], dtype=np.int64)
        self.n_train, self.n_val = len(self.train_idx), len(self.val_idx)
        self.partners, self.partner_ok = self._restrict_partners(partners)
        self._matrix: DeviceMatrix | None = None
        self._own_epoch = -1

    def _restrict_partners(self, partners):
        """Partners and a mask of those in the cell's own split (self where none is)."""
        if partners is None:
            return None, None
        partners = np.asarray(partners, dtype=np.int64)
        if partners.ndim != 2 or partners.shape[0] != self.n_cells:
            raise ValueError(
                f"partners must have shape (n_cells={self.n_cells}, k), got {partners.shape}."
            )
        split = np.full(self.n_cells, 2, dtype=np.int8)
        split[self.train_idx], split[self.val_idx] = 0, 1
        ok = split[partners] == split[:, None]
        lonely = ~ok.any(1)
        partners = partners.copy()
        partners[lonely, 0] = np.flatnonzero(lonely)
        ok[lonely, 0] = True
        return partners, ok

    def _codes(self, v, name) -> np.ndarray:
        if v is None:
            return np.zeros(self.n_cells, dtype=np.int64)
        v = np.asarray(v).reshape(-1)
        if v.shape[0] != self.n_cells:
            raise ValueError(f"{name} has {v.shape[0]} entries for {self.n_cells} cells.")
        return v.astype(np.int64)

    # -- device handling ------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The training device: ``trainer.strategy.root_device`` when attached, else CPU."""
        if self._device_override is not None:
            return self._device_override
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _materialise(self) -> None:
        device = self.device
        if self._matrix is not None and self._compute_device == device:
            return
        if self.lazy is not None:  # rows come from disk to the host, then to the device
            store = torch.device("cpu")
            self._matrix = self.lazy
        else:
            nbytes = DeviceMatrix.nbytes(self.X_host)
            store = storage_device(device, nbytes, self.load_to_device, self.max_device_fraction)
            self._matrix = DeviceMatrix(self.X_host, store)
        self._batch_t = torch.as_tensor(self.batch, device=store)
        self._labels_t = torch.as_tensor(self.labels, device=store)
        if self.partners is not None:
            self._partners_t = torch.as_tensor(self.partners, device=store)
            self._partner_ok_t = torch.as_tensor(self.partner_ok, device=store)
        self._store_device, self._compute_device = store, device

    def gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Minibatch dict of the cells ``idx`` (row numbers of the registered AnnData).

        Keys are scvi's ``REGISTRY_KEYS`` (``X`` ``(n, n_genes)`` dense float32 counts,
        ``batch``/``labels``/``ind_x`` ``(n, 1)``) plus ``indices``; tensors are on the
        training device. Models use it to fetch extra cells inside a step (ScProto's kNN
        partners). Needs the matrix in place (after ``setup``).
        """
        dev = self._compute_device
        idx = idx.to(self._store_device)
        if self.lazy is not None:
            x = torch.from_numpy(self.lazy.rows(idx.numpy()))
        else:
            x = self._matrix.rows(idx)
        out = {
            REGISTRY_KEYS.X_KEY: x,
            REGISTRY_KEYS.BATCH_KEY: self._batch_t.index_select(0, idx)[:, None],
            REGISTRY_KEYS.LABELS_KEY: self._labels_t.index_select(0, idx)[:, None],
            REGISTRY_KEYS.INDICES_KEY: idx[:, None],
        }
        out["indices"] = out[REGISTRY_KEYS.INDICES_KEY]
        if self._store_device != dev:
            out = {k: v.to(dev, non_blocking=True) for k, v in out.items()}
        return out

    def draw_partners(self, idx: torch.Tensor, generator: torch.Generator) -> dict:
        """One random same-split partner of each cell ``idx``: ``{"X_pos", "batch_pos"}``."""
        keys = torch.rand(self._partners_t[idx].shape, generator=generator, device=idx.device)
        pick = keys.masked_fill(~self._partner_ok_t[idx], -1.0).argmax(1)
        partner = self._partners_t[idx, pick]
        got = self.gather(partner)
        return {
            PARTNER_X_KEY: got[REGISTRY_KEYS.X_KEY],
            PARTNER_BATCH_KEY: got[REGISTRY_KEYS.BATCH_KEY],
        }

    # -- Lightning hooks --------------------------------------------------------------------
    def train_dataloader(self) -> _MinibatchIterable:
        """Shuffled training minibatches (a fresh seeded permutation every epoch)."""
        return _MinibatchIterable(self, self.train_idx, shuffle=True, drop_last=self.drop_last)

    def inference_dataloader(self) -> _MinibatchIterable:
        """Minibatches of the ``external_indexing`` training cells, in the order given."""
        return _MinibatchIterable(self, self.train_idx, shuffle=False, drop_last=False)

    def val_dataloader(self) -> _MinibatchIterable | list:
        """Validation minibatches in index order (empty list when there is no validation set)."""
        if self.n_val == 0:
            return []
        return _MinibatchIterable(self, self.val_idx, shuffle=False, drop_last=False)


def iter_row_batches(X, batch_size: int, device=None) -> Iterator[torch.Tensor]:
    """Yield dense float32 row blocks of ``X`` (dense or sparse) on ``device``, in order.

    For inference: the matrix is copied to ``device`` once (sparse stays sparse) and each block
    of at most ``batch_size`` rows, shape (b, n_features), is densified there. An on-disk ``X``
    (see :class:`CellDataModule`) is read block by block, one block ahead, in a thread.
    """
    device = torch.device(device or "cpu")
    lazy = as_lazy(X)
    if lazy is not None:
        for _, block in prefetch(lazy.blocks(batch_size, dense=True)):
            yield torch.from_numpy(block).to(device)
        return
    mat = DeviceMatrix(X, device)
    for s in range(0, X.shape[0], batch_size):
        yield mat.rows(torch.arange(s, min(s + batch_size, X.shape[0]), device=mat.device))
