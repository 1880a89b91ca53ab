"""Throughput of out-of-core input (backed .h5ad, zarr store) against in-memory input.

Usage: ``CELLPOP_DATA_DIR=../shared/data python benchmarks/out_of_core.py [--n-cells N]
[--epochs E] [--out DIR]``

Kang 2018 (8 donors, 1,287 genes; ``--n-cells`` cells drawn at random, seeded). The counts are
written once as the ``X`` of an ``.h5ad`` file (opened with ``anndata.read_h5ad(backed="r")``)
and of a zarr store (opened with :func:`cellpop.data.read_backed`); the in-memory AnnData holds
the same CSR matrix. For each input it prints cells per second of

* the loaders alone (best of ``--repeats`` epochs after a warm-up epoch): one epoch of
  :class:`cellpop.data.CellDataModule` minibatches (128 cells), and of
  :class:`cellpop.data.SampleSetDataModule` sets (8 samples x 2 views x 1000-2000 cells; cells
  drawn per second),
* ``train()`` of one cell model (ScJEPA, 128-cell batches) and one set model (SampleCLR), wall
  time including setup (the out-of-core value check is a streaming pass over the file),

and checks that the three trainings give the same embedding.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scvi
import torch

import cellpop
from cellpop.data import CellDataModule, SampleSetDataModule, SampleSets, read_backed

warnings.filterwarnings("ignore")
for name in ("lightning", "lightning.pytorch", "scvi", "cellpop"):
    logging.getLogger(name).setLevel(logging.ERROR)


def _inputs(n_cells: int, out: Path) -> dict[str, ad.AnnData]:
    a = cellpop.datasets.kang2018_ctrl()
    idx = np.sort(np.random.default_rng(0).choice(a.n_obs, min(n_cells, a.n_obs), False))
    mem = ad.AnnData(
        X=a.layers["counts"][idx].astype(np.float32),
        obs=a.obs.iloc[idx][["donor_id", "cell_type"]].copy(),
        var=a.var[[]].copy(),
    )
    mem.write_h5ad(out / "kang.h5ad")
    mem.write_zarr(out / "kang.zarr")
    return {
        "in-memory": mem,
        "backed h5ad": ad.read_h5ad(out / "kang.h5ad", backed="r"),
        "zarr (read_backed)": read_backed(out / "kang.zarr"),
    }


def _rate(n: int, fn, repeats: int = 1) -> tuple[float, object]:
    """Best of ``repeats`` rates ``n / seconds`` of ``fn()``, and its last result."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = max(best, n / (time.perf_counter() - t))
    return best, result


def _cell_loader(adata, repeats: int) -> float:
    """Cells per second of one epoch of 128-cell minibatches (best epoch after a warm-up)."""
    dm = CellDataModule(adata.X, batch_size=128, validation_size=0.0, seed=0)
    dm.setup("fit")
    epoch = lambda: sum(b["X"].shape[0] for b in dm.train_dataloader())  # noqa: E731
    epoch()  # warm-up (puts an in-memory matrix in place)
    return _rate(adata.n_obs, epoch, repeats)[0]


def _set_loader(adata, repeats: int) -> float:
    """Cells drawn per second by the sample-set loader (8 samples x 2 views x 1000-2000)."""
    codes = adata.obs["donor_id"].cat.codes.to_numpy()
    sets = SampleSets(adata.X, codes, int(codes.max()) + 1)
    dm = SampleSetDataModule(sets, np.arange(sets.n_samples), np.array([], dtype=np.int64),
                             batch_size=8, n_cells=(1000, 2000), seed=0)  # fmt: skip
    dm.setup("fit")
    epoch = lambda: sum(int(b["mask"].sum()) for b in dm.train_dataloader())  # noqa: E731
    n = epoch()  # warm-up; every epoch draws the same number of cells per step count
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        n = epoch()
        best = max(best, n / (time.perf_counter() - t))
    return best


def _train(cls, adata, setup: dict, epochs: int, **train) -> tuple[float, np.ndarray]:
    scvi.settings.seed = 0
    cls.setup_anndata(adata, **setup)
    model = cls(adata)
    rate, _ = _rate(
        adata.n_obs * epochs,
        lambda: model.train(max_epochs=epochs, enable_progress_bar=False, **train),
    )
    return rate, model.get_latent_representation()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n-cells", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="loader epochs timed (best kept)")
    p.add_argument("--loaders-only", action="store_true", help="skip the two trainings")
    p.add_argument("--out", type=Path, default=None, help="folder for the files (default: tmp)")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="cellpop_ooc_"))
    out.mkdir(parents=True, exist_ok=True)
    inputs = _inputs(args.n_cells, out)
    n = inputs["in-memory"].n_obs
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"Kang 2018 {n} cells x {inputs['in-memory'].n_vars} genes, {args.epochs} epoch(s)")  # fmt: skip
    print(f"{'input':<20} {'cell loader':>12} {'set loader':>12} {'ScJEPA train':>13} "
          f"{'SampleCLR train':>16}  (cells/s)")  # fmt: skip
    ref = {}
    for name, adata in inputs.items():
        cell = _cell_loader(adata, args.repeats)
        sets = _set_loader(adata, args.repeats)
        if args.loaders_only:
            print(f"{name:<20} {cell:>12,.0f} {sets:>12,.0f}")
            continue
        jepa, zj = _train(
            cellpop.model.ScJEPA, adata, dict(sample_key="donor_id"), args.epochs,
            batch_size=128, train_size=1.0,
        )  # fmt: skip
        clr, zc = _train(
            cellpop.model.SampleCLR, adata, dict(sample_key="donor_id"), args.epochs,
            train_size=1.0,
        )  # fmt: skip
        ref.setdefault("jepa", zj)
        ref.setdefault("clr", zc)
        same = np.allclose(zj, ref["jepa"], atol=1e-5) and np.allclose(zc, ref["clr"], atol=1e-5)
        print(f"{name:<20} {cell:>12,.0f} {sets:>12,.0f} {jepa:>13,.0f} {clr:>16,.0f}"
              f"  same embeddings as in-memory: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
