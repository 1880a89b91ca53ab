"""ScProto speed: kNN-graph time, training throughput and the ratio to scvi-tools SCVI.

For each dataset (Kang 2018 control, OneK1K 40 donors, and a 200k-cell copy of Kang made by
resampling cells with replacement and adding Poisson(0.1) noise to every stored count) this
prints

* the time to build the augmentation graph (scanpy PCA 50 + exact 50-NN, built once),
* ScProto and SCVI training throughput (cells/s) over the same number of minibatches of
  512 cells on the same cells, their ratio, and the implied time per epoch.

Usage::

    CELLPOP_DATA_DIR=../shared/data python benchmarks/scproto_speed.py [--steps 30] [--no-200k]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scvi
import torch
from scipy import sparse

from cellpop import datasets
from cellpop.model import ScProto
from cellpop.model._scproto import knn_index

BATCH = 512


def resample(adata, n_cells: int, seed: int = 0):
    """Resample cells with replacement; add Poisson(0.1) to every stored count (stay integers)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, adata.n_obs, n_cells)
    out = adata[idx].copy()
    out.obs_names = [f"r{i}" for i in range(n_cells)]
    X = sparse.csr_matrix(out.layers["counts"])
    X.data = X.data + rng.poisson(0.1, size=X.nnz).astype(X.data.dtype)
    out.layers["counts"] = X
    out.X = X.copy()
    return out


def throughput_scproto(adata, steps: int, knn: np.ndarray) -> float:
    scvi.settings.seed = 0
    ScProto.setup_anndata(adata, layer="counts", batch_key="donor_id")
    model = ScProto(adata)
    model.knn_index_ = knn
    t0 = time.perf_counter()
    model.train(
        max_epochs=1,
        batch_size=BATCH,
        train_size=1.0,
        early_stopping=False,
        limit_train_batches=steps,
        enable_progress_bar=False,
    )
    return steps * BATCH / (time.perf_counter() - t0)


def throughput_scvi(adata, steps: int) -> float:
    scvi.settings.seed = 0
    scvi.model.SCVI.setup_anndata(adata, layer="counts", batch_key="donor_id")
    model = scvi.model.SCVI(adata)
    t0 = time.perf_counter()
    model.train(
        max_epochs=1,
        batch_size=BATCH,
        train_size=1.0,
        limit_train_batches=steps,
        enable_progress_bar=False,
    )
    return steps * BATCH / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="minibatches timed per model")
    ap.add_argument("--no-200k", action="store_true", help="skip the 200k-cell copy")
    args = ap.parse_args()
    data_dir = os.environ.get("CELLPOP_DATA_DIR")
    kang = datasets.kang2018_ctrl(data_dir)
    sets = {"kang2018_ctrl": kang, "onek1k": datasets.onek1k(data_dir)}
    if not args.no_200k:
        sets["kang_resampled_200k"] = resample(kang, 200_000)
    print(
        f"torch threads: {torch.get_num_threads()}, device: CPU, batch {BATCH}, {args.steps} steps"
    )
    header = "dataset | cells | kNN s | ScProto cells/s | SCVI cells/s | ratio | ScProto s/epoch"
    print(header)
    for name, ad in sets.items():
        t0 = time.perf_counter()
        knn = knn_index(ad.layers["counts"], n_neighbors=50, n_pcs=50)
        t_knn = time.perf_counter() - t0
        steps = min(args.steps, int(np.ceil(ad.n_obs / BATCH)))
        tp = throughput_scproto(ad.copy(), steps, knn)
        ts = throughput_scvi(ad.copy(), steps)
        print(
            f"{name} | {ad.n_obs} | {t_knn:.1f} | {tp:.0f} | {ts:.0f} | {tp / ts:.2f} | "
            f"{ad.n_obs / tp:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
