"""Training throughput and peak memory of PopulationJEPA next to SampleCLR, per set size.

Usage: ``CELLPOP_DATA_DIR=../shared/data python benchmarks/population_jepa_speed.py
[--sizes 256 1024 4096] [--epochs 3] [--d-model 64] [--layers 2] [--predictor-layers 2]
[--threads N]``

Data: Stephenson 2021 (20 donors x 500 cells, the authors' 50 PCs), the same AnnData for both
models, one process. For every set size ``n`` both models train ``--epochs`` epochs on all 20
donors (``train_size=1.0``, no early stopping, batch 16 samples) with ``n`` cells per set
(donors with fewer cells are resampled with replacement, as in training). Throughput = cells
drawn per second of training-epoch wall time, leaving out the first epoch (warm-up, data
module and optimiser set-up; ``train s`` is the whole ``train()`` call): PopulationJEPA draws one set per donor and epoch
(split 20:80 into target and context), SampleCLR two views. Self-attention makes
PopulationJEPA's cost grow with ``n^2``; SampleCLR's set encoder is per-cell + pooling.

Peak memory: on GPU ``torch.cuda.max_memory_allocated`` (reset before each run); on CPU the
peak resident set size above the level before ``train()``, sampled every 5 ms from
``/proc/self/statm`` (torch CPU tensors are invisible to ``tracemalloc``, whose Python-level
peak is printed as well). Sizes run small to large; freed memory the allocator keeps is not
counted twice, so CPU numbers are lower bounds of each run's own peak.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import threading
import time
import tracemalloc
import warnings

import scvi
import torch
from lightning.pytorch.callbacks import Callback

import cellpop

warnings.filterwarnings("ignore")
for name in ("lightning", "lightning.pytorch", "scvi"):
    logging.getLogger(name).setLevel(logging.ERROR)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(fn) -> tuple[float, float, float]:
    """Run ``fn``; return wall seconds, peak memory (MiB; GPU allocator or CPU RSS increase) and
    the tracemalloc (Python allocations) peak in MiB."""
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base, peak, stop = _rss_mib(), [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib() - base)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    tracemalloc.start()
    t = time.perf_counter()
    fn()
    if gpu:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    py_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    stop.set()
    thread.join()
    mem = torch.cuda.max_memory_allocated() / 2**20 if gpu else peak[0]
    return dt, mem, py_peak


class EpochTimer(Callback):
    """Wall seconds of every training epoch (the first one includes warm-up)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._t)


def run_model(name, adata, n, args):
    scvi.settings.seed = 0
    a = adata.copy()
    cls = getattr(cellpop.model, name)
    cls.setup_anndata(a, sample_key="donor_id", obsm_key="X_pca")
    if name == "PopulationJEPA":
        model = cls(
            a, d_model=args.d_model, n_heads=4, n_layers=args.layers,
            predictor_layers=args.predictor_layers,
        )  # fmt: skip
        kw = dict(datasplitter_kwargs={"n_cells": (n, n)})
        views = 1
    else:
        model = cls(a)
        kw = dict(n_cells=(n, n))
        views = 2
    timer = EpochTimer()
    train = dict(max_epochs=args.epochs, train_size=1.0, batch_size=16, early_stopping=False,
                 enable_progress_bar=False, callbacks=[timer], **kw)  # fmt: skip
    dt, mem, py = measure(lambda: model.train(**train))
    per_epoch = views * a.obs["donor_id"].nunique() * n
    steady = timer.seconds[1:] or timer.seconds  # leave out the first (warm-up) epoch
    return per_epoch * len(steady) / sum(steady), dt, mem, py


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--predictor-layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        device = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        device = "NO GPU PRESENT: CPU only (peak memory = resident-set increase)"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {device}\n"
        f"PopulationJEPA d_model {args.d_model}, {args.layers}+{args.predictor_layers} layers; "
        f"SampleCLR default (tiny) preset; {args.epochs} epochs, Stephenson 2021 (20 donors)"
    )
    adata = cellpop.datasets.stephenson2021_covid()
    print("| set size | model | cells/s (epochs 2+) | train s | peak MiB | tracemalloc peak MiB |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        for name in ("SampleCLR", "PopulationJEPA"):
            cps, dt, mem, py = run_model(name, adata, n, args)
            print(f"| {n} | {name} | {cps:,.0f} | {dt:.1f} | {mem:,.0f} | {py:,.1f} |", flush=True)


if __name__ == "__main__":
    main()
