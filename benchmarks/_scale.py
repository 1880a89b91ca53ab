"""Shared parts of ``throughput.py`` and ``gpu.py``: resampled Kang data, one run per model.

Every run trains one model on the same AnnData (set up anew for each class) and reports
steady-state throughput (epochs after the first, which holds the warm-up, optimiser set-up and
any one-off work such as ScProto's kNN graph), the whole ``train()`` wall time, peak memory
and the time to embeddings.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scanpy as sc
import scvi
import torch
from lightning.pytorch.callbacks import Callback

import cellpop
from cellpop.ontology import CellOntology
from cellpop.tl import paired_bulk

warnings.filterwarnings("ignore")
for _name in ("lightning", "lightning.pytorch", "scvi", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)

CT = "cell_type_ontology_term_id"
MODELS = ("SampleCLR", "ScJEPA", "ScProto", "PopulationJEPA", "POPPY")
SET_MODELS = ("SampleCLR", "PopulationJEPA", "POPPY")
GPU = torch.cuda.is_available()


def device_line() -> str:
    """The machine, in words; says plainly when no GPU is present."""
    cpu = (
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if GPU:
        return f"GPU {torch.cuda.get_device_name(0)}; {cpu}"
    return f"NO GPU PRESENT: CPU only ({cpu}); load average {os.getloadavg()[0]:.1f}"


def prepare(
    n_cells: int, n_donors: int, data_dir: str | None = None, n_pcs: int = 50,
    source: str = "kang",
):  # fmt: skip
    """Kang 2018 resampled to ``n_cells`` x ``n_donors`` (:func:`cellpop.datasets.resample`),
    with ``layers['counts']`` and ``obsm['X_pca']`` (PCA of the log-normalised counts).
    ``source="kang"``: the 12,261 curated cells (``data_dir`` / ``$CELLPOP_DATA_DIR``);
    ``"demo"``: the 2,508 Kang cells embedded in the package (no data directory needed)."""
    threads = torch.get_num_threads()  # scanpy's PCA may change torch's thread count
    if source == "demo":
        kang = cellpop.datasets.kang2018_ctrl_demo()
    else:
        kang = cellpop.datasets.kang2018_ctrl(data_dir=data_dir)
    adata = cellpop.datasets.resample(kang, n_cells, n_donors, seed=0)
    adata.layers["counts"] = adata.X
    norm = ad.AnnData(X=adata.X.copy())  # the counts only: adata.copy() would copy them twice
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.pca(norm, n_comps=n_pcs, random_state=0)
    adata.obsm["X_pca"] = norm.obsm["X_pca"].astype(np.float32)
    torch.set_num_threads(threads)
    return adata


#: Largest set each set model trains on here: PopulationJEPA's default set size (256 cells,
#: ``PopulationJEPA.train``; its self-attention costs n^2 per set, so a set that grows with the
#: donor would make its cost per cell grow with the data); 1,000 for the others (POPPY's default,
#: SampleCLR's lower bound of App. A), whose per-cell work does not depend on the set size.
SET_CAP = {"PopulationJEPA": 256}


def set_size(adata, name: str = "", cap: int = 1000) -> int:
    """Cells per set: the median cells per donor, at most ``SET_CAP.get(name, cap)`` (below the
    cap an epoch of one set per donor sees about every cell once)."""
    cap = SET_CAP.get(name, cap)
    return int(min(cap, np.median(adata.obs["donor_id"].value_counts())))


class StepTimer(Callback):
    """Wall and process CPU seconds of every epoch (epoch start to next epoch start, so every
    hook counts) and the wall time between one step's end and the next step's start (data fetch
    and transfer). CPU seconds are robust to other jobs competing for the cores."""

    def __init__(self):
        self.scale = 1.0  # full-epoch steps / steps run (``limit_train_batches``)
        self.epochs: list[float] = []
        self.cpu: list[float] = []
        self.waits: list[list[float]] = []
        self._t = self._end = self._c = None

    @staticmethod
    def _now() -> float:
        if GPU:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        full = len(trainer.train_dataloader)
        self.scale = full / max(1, min(full, trainer.num_training_batches))

    def on_train_epoch_start(self, trainer, pl_module):
        t, c = self._now(), time.process_time()
        if self._t is not None:
            self.epochs.append(t - self._t)
            self.cpu.append(c - self._c)
        self._t, self._end, self._c = t, t, c
        self.waits.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.waits[-1].append(self._now() - self._end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._end = self._now()

    def on_train_end(self, trainer, pl_module):
        if self._t is not None:
            self.epochs.append(self._now() - self._t)
            self.cpu.append(time.process_time() - self._c)

    def steady(self) -> tuple[float, float, float]:
        """Wall and CPU seconds per full epoch and the fraction of wall time spent waiting for
        data, over the epochs after the first (all epochs when there is one). With
        ``limit_train_batches`` the measured epoch is scaled by full steps / steps run (per-epoch
        hooks are scaled too: a slight over-estimate of the full epoch)."""
        ep, cpu = self.epochs[1:] or self.epochs, self.cpu[1:] or self.cpu
        waits = [sum(w) for w in (self.waits[1:] or self.waits)]
        wall, cpu_s = sum(ep) / len(ep), sum(cpu) / len(cpu)
        return wall * self.scale, cpu_s * self.scale, sum(waits) / sum(ep)


class PeakMemory:
    """Peak host resident-set increase (MiB, sampled every 10 ms from ``/proc/self/statm``) and,
    on GPU, peak allocated device memory (MiB) while the ``with`` block runs."""

    def __enter__(self):
        if GPU:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.base, self.host, self.device = self._rss(), 0.0, float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self):
        while not self._stop.is_set():
            self.host = max(self.host, self._rss() - self.base)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.host = max(self.host, self._rss() - self.base)
        if GPU:
            torch.cuda.synchronize()
            self.device = torch.cuda.max_memory_allocated() / 2**20


@dataclass
class Run:
    """One model's measurements (``sets_per_s`` only for set models)."""

    model: str
    n_cells: int
    n_donors: int
    cells_per_s: float
    epoch_s: float
    epoch_cpu_s: float
    data_wait: float
    train_s: float
    embed_s: float
    host_mib: float
    device_mib: float
    sets_per_s: float = float("nan")
    set_size: int = 0
    precision: str = "32"
    cells_per_cpu_s: float = float("nan")
    latent: np.ndarray | None = field(default=None, repr=False)

    @property
    def pass_cpu_s(self) -> float:
        """CPU seconds to take every cell through the model once (``n_cells / cells_per_cpu_s``):
        the epoch's CPU time when an epoch covers every cell, and the cost the time exponent is
        fitted on, also for set models whose sets are capped below the median donor."""
        return self.n_cells / self.cells_per_cpu_s


def _build(name: str, adata, n: int):
    """Model, training kwargs, cells and sets through the model per epoch."""
    scvi.settings.seed = 0
    d = adata.obs["donor_id"].nunique()
    if name == "SCVI":
        scvi.model.SCVI.setup_anndata(adata, layer="counts")
        return scvi.model.SCVI(adata), {}, adata.n_obs, 0
    cls = getattr(cellpop.model, name)
    if name in ("ScJEPA", "ScProto"):  # per-cell models on the counts; V + 1 views for ScJEPA
        cls.setup_anndata(adata, layer="counts", sample_key="donor_id")
        return cls(adata), {}, adata.n_obs, 0
    if name == "POPPY":
        bulk = paired_bulk(adata, "donor_id", CT, layer="counts")
        bulk.obs["donor_id"] = bulk.obs["donor_id"].astype("category")
        mdata = md.MuData({"rna": adata, "bulk": bulk})
        cls.setup_mudata(mdata, sample_key="donor_id", cell_type_key=CT, rna_obsm_key="X_pca")
        data_dir = os.environ.get("CELLPOP_DATA_DIR")
        if data_dir and os.path.isdir(data_dir):  # S from the Cell Ontology (computed once)
            kw = dict(ontology=CellOntology(data_dir=data_dir))
        else:  # no ontology file: identity soft labels, the same per-step work
            print("POPPY: no $CELLPOP_DATA_DIR, identity soft labels", flush=True)
            names = adata.obs["donor_id"].cat.categories
            kw = dict(similarity=pd.DataFrame(np.eye(d), index=names, columns=names))
        return cls(mdata), dict(n_cells=(n, n), **kw), d * n, d
    cls.setup_anndata(adata, sample_key="donor_id", obsm_key="X_pca")
    if name == "SampleCLR":  # two views per donor
        return cls(adata), dict(n_cells=(n, n)), 2 * d * n, 2 * d
    return cls(adata), dict(datasplitter_kwargs={"n_cells": (n, n)}), d * n, d


def run_model(
    name: str, adata, epochs: int, accelerator: str = "auto", precision: str = "32",
    keep_latent: bool = False, limit_batches: int | None = None, embed: bool = True,
) -> Run:  # fmt: skip
    """Train ``name`` (a cellpop model or ``"SCVI"``) for ``epochs`` epochs on all cells
    (``train_size=1.0``, no early stopping), then embed every cell (and sample).

    ``limit_batches``: run only that many steps per epoch (Lightning ``limit_train_batches``)
    and scale the epoch time to the full epoch (:meth:`StepTimer.steady`); ``embed=False``
    skips the embedding (``embed_s`` NaN)."""
    n = set_size(adata, name)
    model, kw, cells, sets = _build(name, adata, n)
    timer = StepTimer()
    kw.update(
        max_epochs=epochs, train_size=1.0, early_stopping=False, accelerator=accelerator,
        enable_progress_bar=False, callbacks=[timer],
    )  # fmt: skip
    if precision != "32":
        kw["precision"] = precision
    if limit_batches:
        kw["limit_train_batches"] = int(limit_batches)
    with PeakMemory() as mem:
        t = time.perf_counter()
        model.train(**kw)
        train_s = time.perf_counter() - t
        t, z, embed_s = time.perf_counter(), None, float("nan")
        if embed:
            z = model.get_latent_representation()
            if name != "SCVI":
                model.get_sample_representation()
            embed_s = time.perf_counter() - t
    epoch_s, epoch_cpu, wait = timer.steady()
    return Run(
        name, adata.n_obs, adata.obs["donor_id"].nunique(), cells / epoch_s, epoch_s, epoch_cpu,
        wait,
        train_s, embed_s, mem.host, mem.device, sets / epoch_s if sets else float("nan"),
        n if sets else 0, precision, cells / epoch_cpu,
        np.asarray(z) if keep_latent and z is not None else None,
    )  # fmt: skip


def fit_exponent(sizes, seconds) -> float:
    """Slope ``b`` of ``log(seconds) = a + b log(sizes)`` (least squares); NaN with < 2 sizes."""
    if len(set(sizes)) < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])
