"""Sample-set data layer: batches of ``B`` samples x ``n`` cells, drawn on the training device.

Used by the sample-level models (SampleCLR, PopulationJEPA, POPPY). The cell matrix is held on
the training device when it fits and every draw is a handful of tensor operations on that
device: no per-cell Python work in a training step.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule

from ._device import DeviceMatrix, storage_device
from ._lazy import as_lazy, prefetch
from ._trainer_state import TrainerState

SmallSample = Literal["replace", "mask"]


class SampleSets:
    """Cells grouped by sample, held as one tensor, with seeded on-device set sampling.

    Parameters
    ----------
    X
        ``(n_cells, n_features)`` float matrix, dense or scipy sparse (kept sparse: rows are
        densified only when a set is gathered, on the device that holds them), or on disk (a
        backed sparse dataset, an h5py/zarr array or a :class:`cellpop.data.LazyRows`): then
        each gather reads only the set's rows (host memory) and everything stays on the CPU.
    sample_codes
        ``(n_cells,)`` integer sample index of each cell, ``0 .. n_samples - 1``.
    n_samples
        Number of samples (codes must lie below it).

    Notes
    -----
    Cells are sorted by sample once (``order``) so that the cells of sample ``s`` are
    ``order[offsets[s] : offsets[s] + counts[s]]``.
    """

    def __init__(self, X, sample_codes: np.ndarray, n_samples: int):
        codes = np.asarray(sample_codes, dtype=np.int64)
        if codes.ndim != 1 or len(codes) != X.shape[0]:
            raise ValueError("sample_codes must have one entry per row of X")
        if codes.min(initial=0) < 0 or codes.max(initial=0) >= n_samples:
            raise ValueError("sample_codes must lie in [0, n_samples)")
        counts = np.bincount(codes, minlength=n_samples)
        self.n_samples = n_samples
        self.lazy = as_lazy(X)
        self.matrix = self.lazy if self.lazy is not None else DeviceMatrix(X, torch.device("cpu"))
        self.order = torch.as_tensor(np.argsort(codes, kind="stable"))
        self.counts = torch.as_tensor(counts)
        self.counts_np = counts  # host copy: per-step decisions need no device sync
        self.offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]))
        self.device = torch.device("cpu")

    @property
    def n_features(self) -> int:
        """Number of features per cell."""
        return int(self.matrix.shape[1])

    def gather(self, cell_index: torch.Tensor) -> torch.Tensor:
        """Dense float32 cells ``(*cell_index.shape, n_features)`` of row indices ``cell_index``
        (on this object's device)."""
        if self.lazy is not None:
            flat = cell_index.reshape(-1).cpu().numpy()
            rows = torch.from_numpy(self.lazy.rows(flat)).to(self.device)
        else:
            rows = self.matrix.rows(cell_index.reshape(-1).to(self.device))
        return rows.view(*cell_index.shape, -1)

    def to(self, device: torch.device | str) -> SampleSets:
        """Move the cell matrix and the index tensors to ``device`` (in place)."""
        device = torch.device(device)
        if self.lazy is not None:
            device = torch.device("cpu")  # rows are read to the host; Lightning moves batches
        else:
            self.matrix.to(device)
        self.order = self.order.to(device)
        self.counts = self.counts.to(device)
        self.offsets = self.offsets.to(device)
        self.device = device
        return self

    def _without_replacement(
        self,
        cnt: torch.Tensor,
        width: int,
        n_cells: int,
        generator: torch.Generator,
        full: bool = False,
    ) -> torch.Tensor:
        """``(len(cnt), n_cells)`` positions without replacement: the ``n_cells`` smallest of
        ``width`` random keys, keys at positions ``>= cnt`` pushed beyond every real one
        (``full``: every ``cnt >= width``, nothing to push)."""
        keys = torch.rand(len(cnt), width, generator=generator, device=self.device)
        if not full:
            invalid = torch.arange(width, device=self.device)[None, :] >= cnt[:, None]
            keys = keys.masked_fill(invalid, 2.0)
        return torch.topk(keys, n_cells, dim=1, largest=False, sorted=False).indices

    def draw(
        self,
        samples: torch.Tensor,
        n_cells: int,
        generator: torch.Generator,
        small_sample: SmallSample = "replace",
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw one set of ``n_cells`` cells for each of ``samples``.

        Samples with at least ``n_cells`` cells are subsampled without replacement; smaller ones
        are resampled with replacement (``small_sample="replace"``, the paper's choice) or padded
        and masked (``"mask"``).

        Parameters
        ----------
        samples
            ``(B,)`` sample indices (host array or tensor; per-step decisions are made on the
            host so a GPU draw needs no synchronisation).
        n_cells
            Cells per set.
        generator
            Seeded ``torch.Generator`` on this object's device.
        small_sample
            ``"replace"`` or ``"mask"``.

        Returns
        -------
        x
            ``(B, n_cells, n_features)`` cells.
        mask
            ``(B, n_cells)`` boolean, ``True`` for real cells.
        cell_index
            ``(B, n_cells)`` row indices into ``X`` (padding rows point at a real cell).
        """
        dev = self.device
        s_np = np.asarray(samples.cpu() if torch.is_tensor(samples) else samples, dtype=np.int64)
        cnt_np = self.counts_np[s_np]
        b = len(s_np)
        samples = torch.as_tensor(s_np, device=dev)
        cnt = torch.as_tensor(cnt_np, device=dev)
        if small_sample == "replace":
            mask = torch.ones(b, n_cells, dtype=torch.bool, device=dev)
            # drawn in every case, so that the generator's stream does not depend on the sizes
            uniform = torch.rand(b, n_cells, generator=generator, device=dev)
            big = np.flatnonzero(cnt_np >= n_cells)
            if len(big) == b:  # every set without replacement
                width = int(cnt_np.max())
                full = bool(cnt_np.min() == width)
                pos = self._without_replacement(cnt, width, n_cells, generator, full)
                return self._sets(samples, pos, mask)
            pos = (uniform * cnt[:, None]).long()
            if len(big):  # subsample without replacement: n smallest of random keys
                big_t = torch.as_tensor(big, device=dev)
                width = int(cnt_np[big].max())
                pos[big_t] = self._without_replacement(cnt[big_t], width, n_cells, generator)
        elif small_sample == "mask":
            width = max(int(cnt_np.max()), n_cells)
            full = bool(cnt_np.min() >= width)
            pos = self._without_replacement(cnt, width, n_cells, generator, full)
            mask = pos < cnt[:, None]  # the first cnt keys are the real cells
            pos = torch.where(mask, pos, torch.zeros_like(pos))
        else:
            raise ValueError(f"small_sample must be 'replace' or 'mask', got {small_sample!r}")
        return self._sets(samples, pos, mask)

    def _sets(self, samples: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor):
        """``(x, mask, cell_index)`` of positions ``pos`` within each sample's cells."""
        cell_index = self.order[self.offsets[samples][:, None] + pos]
        return self.gather(cell_index), mask, cell_index


def split_samples(
    n_samples: int,
    train_size: float = 0.9,
    seed: int = 0,
    min_validation: int = 2,
    groups: np.ndarray | None = None,
    stratify: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of sample indices into train and validation: the one by-sample splitter.

    Parameters
    ----------
    n_samples
        Number of samples.
    train_size
        Fraction of samples used for training. The validation set is used only if it would hold
        at least ``min_validation`` samples and leave 2 for training; otherwise all samples train.
    seed
        Seed of the permutation.
    min_validation
        Smallest useful validation set (a contrastive loss needs 2 samples).
    groups
        Optional ``(n_samples,)`` group of each sample (e.g. its technical batch): a group goes
        wholly to one side (SampleCLR App. A.6.1).
    stratify
        Optional ``(n_samples,)`` label of each sample (e.g. a supervised target): the split keeps
        the label proportions as far as the groups allow. Missing values (NaN) form their own
        stratum. With ``groups`` or ``stratify`` the split is scikit-learn's
        :class:`~sklearn.model_selection.StratifiedGroupKFold` with ``round(1 / (1 - train_size))``
        folds, the first fold being the validation set.

    Returns
    -------
    ``(train, validation)`` sorted int64 arrays.

    Raises
    ------
    ValueError
        If ``train_size`` is outside ``(0, 1]`` or ``groups``/``stratify`` have the wrong length.
    """
    if not 0.0 < train_size <= 1.0:
        raise ValueError(f"train_size must be in (0, 1], got {train_size}")
    everything = (np.arange(n_samples), np.array([], dtype=np.int64))
    n_val = int(round(n_samples * (1.0 - train_size)))
    if n_val < min_validation or n_samples - n_val < 2:
        return everything
    if groups is None and stratify is None:
        perm = np.random.default_rng(seed).permutation(n_samples)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    from sklearn.model_selection import StratifiedGroupKFold

    for name, v in (("groups", groups), ("stratify", stratify)):
        if v is not None and len(v) != n_samples:
            raise ValueError(f"{name} has {len(v)} entries for {n_samples} samples.")
    g = np.arange(n_samples) if groups is None else pd.factorize(np.asarray(groups))[0]
    y = np.zeros(n_samples) if stratify is None else pd.factorize(np.asarray(stratify))[0]
    n_folds = int(min(max(2, round(1.0 / (1.0 - train_size))), len(np.unique(g))))
    if n_folds < 2:
        return everything
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, val = next(folds.split(np.zeros(n_samples), y, g))
    if len(val) < min_validation or len(train) < 2:
        return everything
    return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)


def split_target(mask: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Mark a random ``fraction`` of each set's real cells as target (the rest is context).

    Parameters
    ----------
    mask
        ``(B, n)`` bool, ``True`` for real cells.
    fraction
        Target share (SC-JEPA §3: 0.2, a 20:80 target:context split).
    generator
        Seeded generator on ``mask``'s device.

    Returns
    -------
    ``(B, n)`` bool: ``round(fraction * n_real)`` target cells per set (at least 1 and at most
    ``n_real - 1``), never padding.
    """
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    keys = keys.masked_fill(~mask, 2.0)
    rank = keys.argsort(dim=1).argsort(dim=1)
    n_real = mask.sum(1, keepdim=True)
    n_target = (n_real * fraction).round().clamp(min=1).minimum((n_real - 1).clamp(min=1))
    return (rank < n_target) & mask


class _SetBatches:
    """Iterable over one epoch of set batches (created per epoch by the data module)."""

    def __init__(self, dm: SampleSetDataModule, samples: np.ndarray, train: bool):
        self.dm, self.samples, self.train = dm, samples, train

    def _n_local(self) -> int:
        _, world = self.dm._rank_world()
        return math.ceil(len(self.samples) / world)

    def __len__(self) -> int:
        n = self._n_local()
        return max(1, n // self.dm.batch_size) if n >= 2 else 0

    def __iter__(self):
        if self.dm.sets.lazy is not None:  # read sets from disk one step ahead, in a thread
            return prefetch(self._batches())
        return self._batches()

    def _batches(self):
        dm = self.dm
        sets = dm.sets
        rank, world = self.dm._rank_world()
        if self.train:
            epoch_seed = dm.seed + 1_000_003 * dm._epoch() + 7_777 * dm._fits
        else:  # fixed views: validation loss comparable across epochs
            epoch_seed = dm.seed + 424_242
        n_steps = len(self)
        if n_steps == 0:
            return
        # one permutation shared by every rank (same seed), padded by wrapping so that every
        # rank gets ceil(n / world) samples and the same number of steps, then interleaved;
        # the set sizes come from the same stream, so every rank draws the same n per step
        rng = np.random.default_rng(epoch_seed)  # sample order and set sizes (host)
        perm = rng.permutation(self.samples)
        if world > 1:
            pad = self._n_local() * world - len(perm)
            perm = np.concatenate([perm, perm[:pad]])[rank::world]
        # cell draws (device): one stream per rank
        gen = torch.Generator(device=sets.device).manual_seed(epoch_seed + 7919 * rank)
        # spread leftovers over the batches so no batch has a single sample
        chunks = np.array_split(perm, n_steps)
        if dm.batch_sampler is not None and self.train:  # model-defined (POPPY §2.2.4)
            chunks = dm.batch_sampler(self.samples, n_steps, dm.batch_size, rng)
            chunks = [c[rank::world] for c in chunks] if world > 1 else chunks
        lo, hi = dm.n_cells
        v = dm.n_views
        for chunk in chunks:
            n = int(rng.integers(lo, hi + 1))
            # all views in one draw and one gather: rows are [view 0 samples, view 1 samples, ...]
            x, m, _ = sets.draw(np.tile(chunk, v), n, gen, dm.small_sample)
            b = len(chunk)
            chunk_t = torch.as_tensor(chunk, device=sets.device)
            if dm.views == "context_target":
                batch = {"x": x, "mask": m, "sample": chunk_t}
                batch["target"] = split_target(m, dm.target_fraction, gen)
            else:
                batch = {"x": x.view(v, b, n, -1), "mask": m.view(v, b, n), "sample": chunk_t}
            for key, tensor in dm.sample_targets.items():
                batch[key] = tensor[chunk_t]
            yield batch


class SampleSetDataModule(TrainerState, LightningDataModule):
    """Lightning data module yielding sets of cells per sample, split by sample.

    Each step yields ``{"x": (V, B, n, d), "mask": (V, B, n), "sample": (B,), <target>: (B,)}``
    with ``V`` views of ``B`` samples of ``n`` cells (``n`` drawn per step from ``n_cells``).
    The cell matrix is moved to the trainer's device when it fits (``load_to_device``).

    Parameters
    ----------
    sets
        The cells grouped by sample.
    train_samples, validation_samples
        Sample indices of the two splits (see :func:`split_samples`).
    batch_size
        Samples per step ``B``; capped to the number of training samples (SampleCLR's reference
        code with a batch larger than the training set takes zero steps: we never do).
    n_cells
        ``(min, max)`` cells per set, inclusive (SampleCLR App. A: 1000-2000).
    n_views
        Views per sample per step (2 for contrastive training) with ``views="independent"``.
    views
        View strategy: ``"independent"`` (``n_views`` independent subsets per sample, batch
        ``x`` ``(V, B, n, d)``) or ``"context_target"`` (one subset per sample split into
        disjoint target and context parts, batch ``x`` ``(B, n, d)``, ``mask`` ``(B, n)`` and
        ``target`` ``(B, n)`` bool, see :func:`split_target`).
    target_fraction
        Target share of ``"context_target"`` views (SC-JEPA §3: 0.2).
    small_sample
        How samples with fewer than ``n`` cells are handled: ``"replace"`` or ``"mask"``.
    sample_targets
        Per-sample tensors (e.g. supervised targets) added to each batch, indexed by sample.
    load_to_device
        ``"auto"``: move the matrix to the accelerator if it takes less than
        ``max_device_fraction`` of its free memory; ``True``/``False`` force it.
    batch_sampler
        Optional ``batch_sampler(samples, n_batches, batch_size, rng) -> list of sample arrays``
        deciding which samples share each step (e.g. :class:`cellpop.data.CrossCohortSampler`);
        ``rng`` is the epoch's seeded numpy generator. Under DDP rank ``r`` takes every
        ``world_size``-th sample of each batch. Validation batches stay a fixed partition.
        ``None``: a shuffled partition (default).
    seed
        Seed of all draws; epoch ``e`` (the trainer's ``current_epoch``) of the ``k``-th fit uses
        ``seed + f(e, k)`` for the sample order and set sizes
        and ``seed + f(e) + g(rank)`` for the cell draws, so runs are reproducible.

    Notes
    -----
    Under DDP (a trainer with ``world_size > 1`` attached) every rank shuffles the samples of a
    split with the same seed each epoch (a new permutation per training epoch), pads the
    permutation by wrapping around to a multiple of ``world_size`` and takes every
    ``world_size``-th sample from position ``global_rank``: the shards are disjoint except for
    the fewer than ``world_size`` padding repeats, change every epoch, and every rank runs the
    same number of steps ``max(1, ceil(n / world_size) // batch_size)`` with the same set size
    per step. ``batch_size`` is per rank.
    """

    def __init__(
        self,
        sets: SampleSets,
        train_samples: np.ndarray,
        validation_samples: np.ndarray,
        batch_size: int = 32,
        n_cells: tuple[int, int] = (1000, 2000),
        n_views: int = 2,
        views: Literal["independent", "context_target"] = "independent",
        target_fraction: float = 0.2,
        small_sample: SmallSample = "replace",
        sample_targets: dict[str, torch.Tensor] | None = None,
        load_to_device: bool | Literal["auto"] = "auto",
        max_device_fraction: float = 0.5,
        seed: int = 0,
        batch_sampler=None,
    ):
        super().__init__()
        if n_cells[0] < 1 or n_cells[1] < n_cells[0]:
            raise ValueError(f"n_cells must be (min, max) with 1 <= min <= max, got {n_cells}")
        if len(train_samples) < 2:
            raise ValueError("at least 2 training samples are needed for set batches")
        self.sets = sets
        self.train_samples = np.asarray(train_samples, dtype=np.int64)
        self.validation_samples = np.asarray(validation_samples, dtype=np.int64)
        self.batch_size = max(2, min(int(batch_size), len(self.train_samples)))
        self.n_cells = (int(n_cells[0]), int(n_cells[1]))
        if views not in ("independent", "context_target"):
            raise ValueError(f"views must be 'independent' or 'context_target', got {views!r}")
        if not 0.0 < target_fraction < 1.0:
            raise ValueError(f"target_fraction must be in (0, 1), got {target_fraction}")
        self.views = views
        self.target_fraction = float(target_fraction)
        self.n_views = 1 if views == "context_target" else n_views
        self.small_sample = small_sample
        self.sample_targets = dict(sample_targets or {})
        self.load_to_device = load_to_device
        self.max_device_fraction = max_device_fraction
        self.seed = int(seed)
        self.batch_sampler = batch_sampler
        self._own_epoch = -1  # epochs without a trainer (iterating by hand)
        self._fits = 0  # each fit (training stage) draws afresh
        # scvi-tools' TrainRunner reads these
        self.n_train = len(self.train_samples)
        self.n_val = len(self.validation_samples)

    def _place(self) -> None:
        trainer = getattr(self, "trainer", None)
        compute = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if self.sets.lazy is not None:
            device = torch.device("cpu")
        else:
            nbytes = DeviceMatrix.nbytes_of(self.sets.matrix)
            device = storage_device(compute, nbytes, self.load_to_device, self.max_device_fraction)
        self.sets.to(device)
        self.sample_targets = {k: v.to(device) for k, v in self.sample_targets.items()}

    def setup(self, stage: str | None = None) -> None:
        """Place the cell matrix (on the trainer's device when it fits); count the fits."""
        if stage in (None, "fit"):
            self._fits += 1
        self._place()

    def train_dataloader(self):
        """One epoch of training set batches."""
        return _SetBatches(self, self.train_samples, train=True)

    def val_dataloader(self):
        """Fixed-seed set batches of the validation samples (empty when there are none)."""
        if len(self.validation_samples) < 2:
            return []
        return _SetBatches(self, self.validation_samples, train=False)
