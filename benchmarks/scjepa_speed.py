"""Training throughput and peak memory of ScJEPA next to scvi-tools' SCVI on the same cells.

Usage: ``CELLPOP_DATA_DIR=../shared/data python benchmarks/scjepa_speed.py [--epochs N]
[--n-cells N] [--batch-size B]``

Kang 2018 counts (1,287 genes). Throughput = cells per second of ``train()`` wall time
(``n_cells x epochs / seconds``; ScJEPA pushes each cell through the autoencoder 1 + V = 9 times
per step, SCVI once). Peak memory: ``torch.cuda.max_memory_allocated`` on GPU, else the peak
of Python allocations seen by ``tracemalloc`` (torch CPU tensors are not tracked by
tracemalloc, so on CPU the ru_maxrss high-water mark of the process is printed as well).
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import time
import tracemalloc
import warnings

import numpy as np
import scvi
import torch

import cellpop

warnings.filterwarnings("ignore")
for name in ("lightning", "lightning.pytorch", "scvi"):
    logging.getLogger(name).setLevel(logging.ERROR)


def _measure(fn):
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    tracemalloc.start()
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
    return dt, peak / 2**20


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n-cells", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=1024)
    args = p.parse_args()
    adata = cellpop.datasets.kang2018_ctrl()
    idx = np.random.default_rng(0).choice(adata.n_obs, min(args.n_cells, adata.n_obs), False)
    adata = adata[np.sort(idx)].copy()
    n, e = adata.n_obs, args.epochs
    acc = "auto"
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, cuda {torch.cuda.is_available()}; {n} cells x "
        f"{adata.n_vars} genes, {e} epochs, batch {args.batch_size}"
    )

    a1 = adata.copy()
    scvi.settings.seed = 0
    cellpop.model.ScJEPA.setup_anndata(a1, layer="counts")
    m = cellpop.model.ScJEPA(a1)
    dt_j, mem_j = _measure(lambda: m.train(
        max_epochs=e, batch_size=args.batch_size, train_size=1.0, early_stopping=False,
        accelerator=acc, enable_progress_bar=False))  # fmt: skip

    a2 = adata.copy()
    scvi.settings.seed = 0
    scvi.model.SCVI.setup_anndata(a2, layer="counts")
    s = scvi.model.SCVI(a2)
    dt_s, mem_s = _measure(lambda: s.train(
        max_epochs=e, batch_size=args.batch_size, train_size=1.0, accelerator=acc,
        enable_progress_bar=False))  # fmt: skip

    # ScJEPA drops the last incomplete batch: count the cells it actually trained on
    n_j = (n // args.batch_size) * args.batch_size
    cps_j, cps_s = n_j * e / dt_j, n * e / dt_s
    print(f"ScJEPA: {cps_j:,.0f} cells/s ({dt_j:.1f} s), peak {mem_j:.0f} MiB")
    print(f"SCVI:   {cps_s:,.0f} cells/s ({dt_s:.1f} s), peak {mem_s:.0f} MiB")
    print(f"throughput ratio ScJEPA/SCVI = {cps_j / cps_s:.3f}")
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
