"""Training throughput of SampleCLR next to scvi-tools' SCVI on the same cells, in one process.

Usage: ``CELLPOP_DATA_DIR=../shared/data python benchmarks/sampleclr_speed.py [--epochs N]``

Kang 2018 (12,261 cells, 8 donors): SCVI trains on the counts; SampleCLR on 50 PCs of the
log-normalised counts (its paper's input), sets of ``n`` cells per donor and view. Throughput is
cells through the model per second of ``train()`` wall time (SampleCLR: 2 views x donors x ``n``
per step; SCVI: cells per epoch). Stephenson 2021 (20 donors) gives SampleCLR's throughput alone:
the comparison with the public reference code, in the same process, is
``benchmarks/sampleclr_reference.py``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
import warnings

import scanpy as sc
import scvi
import torch

import cellpop

warnings.filterwarnings("ignore")
for name in ("lightning", "lightning.pytorch", "scvi"):
    logging.getLogger(name).setLevel(logging.ERROR)


def sampleclr_throughput(adata, sample_key, obsm_key, epochs, n_cells, accelerator):
    scvi.settings.seed = 0
    cellpop.model.SampleCLR.setup_anndata(adata, sample_key=sample_key, obsm_key=obsm_key)
    model = cellpop.model.SampleCLR(adata)
    n_samples = adata.obs[sample_key].nunique()
    t = time.perf_counter()
    model.train(
        max_epochs=epochs, n_cells=(n_cells, n_cells), train_size=1.0,
        accelerator=accelerator, enable_progress_bar=False,
    )  # fmt: skip
    dt = time.perf_counter() - t
    return 2 * n_samples * n_cells * epochs / dt, dt


def scvi_throughput(adata, epochs, accelerator):
    scvi.settings.seed = 0
    scvi.model.SCVI.setup_anndata(adata, layer="counts")
    model = scvi.model.SCVI(adata)
    t = time.perf_counter()
    model.train(
        max_epochs=epochs, train_size=1.0, accelerator=accelerator, enable_progress_bar=False
    )
    dt = time.perf_counter() - t
    return adata.n_obs * epochs / dt, dt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--n-cells", type=int, default=1000)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, device {dev}")  # fmt: skip

    kang = cellpop.datasets.kang2018_ctrl()
    pcs = kang.copy()
    sc.pp.normalize_total(pcs, target_sum=1e4)
    sc.pp.log1p(pcs)
    sc.pp.pca(pcs, n_comps=50)
    kang.obsm["X_pca"] = pcs.obsm["X_pca"]
    clr, t_clr = sampleclr_throughput(
        kang.copy(), "donor_id", "X_pca", args.epochs, args.n_cells, args.accelerator
    )
    ref, t_ref = scvi_throughput(kang.copy(), max(2, args.epochs // 4), args.accelerator)
    print(f"Kang 2018: SampleCLR {clr:,.0f} cells/s ({t_clr:.1f} s), "
          f"SCVI {ref:,.0f} cells/s ({t_ref:.1f} s), ratio SampleCLR/SCVI = {clr / ref:.2f}")  # fmt: skip

    steph = cellpop.datasets.stephenson2021_covid()
    clr2, t2 = sampleclr_throughput(
        steph, "donor_id", "X_pca", args.epochs, args.n_cells, args.accelerator
    )
    print(f"Stephenson 2021: SampleCLR {clr2:,.0f} cells/s ({t2:.1f} s); for the reference "
          "code see benchmarks/sampleclr_reference.py")  # fmt: skip


if __name__ == "__main__":
    main()
