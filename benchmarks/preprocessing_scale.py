"""Non-training steps at scale (issue 12): kNN graph, centrality cell sets, GloScope, EMD.

On Kang 2018 resampled to ``n_cells`` x ``n_donors`` (``_scale.prepare``: binomial thinning with
:func:`cellpop.datasets.resample`, then 50 PCs of the log-normalised counts), each step is timed
(wall and process CPU seconds) with its peak resident-set increase (MiB):

* ``resample``: ``_scale.prepare`` itself (resampling + normalisation + PCA), always run;
* ``knn``: ScProto's augmentation graph as ``ScProto.train()`` builds it
  (:func:`cellpop.model._scproto.knn_index` = ``knn_pcs`` then ``pcs_knn``, timed apart) on
  the counts with ScProto's defaults (50 PCs, 50 neighbours); recall@50 of 1,000 random cells
  against exact search on the same PCs (not timed);
* ``centrality``: SampleCLR's inference cell sets for every donor
  (:func:`cellpop.data.inference_cells`, 15-NN graph and eigenvector centrality per donor on
  the 50 PCs, ``--centrality-cells`` cells per set; SampleCLR's default is 1,000, and a donor with
  no more cells than that keeps all of them without any graph);
* ``gloscope``: :func:`cellpop.tl.gloscope` on the first ``--gloscope-dims`` PCs, all donors
  or the first ``--gloscope-donors`` (``--gloscope-query``: query cells per sample of the
  Monte Carlo estimate, one run per value; 0 = exact);
* ``emd``: :func:`cellpop.ontology.composition_distances` between the cell-type compositions of
  the first ``--emd-samples`` donors on the Cell Ontology (one process, ``n_jobs=1``; numba
  compilation and the ontology load are excluded by a warm-up call).

Every result is appended as one JSON line to ``--out`` so that sizes and steps can be measured
piecewise (one process each); ``--table`` prints the markdown table of everything in ``--out``
(the last row of each step, size and setting) and the fitted CPU-time exponent per step.

Usage::

    export CELLPOP_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1
    python benchmarks/preprocessing_scale.py --sizes 100000:1000 --steps knn centrality
    python benchmarks/preprocessing_scale.py --table
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(Path(__file__).parent))
from _scale import CT, PeakMemory, device_line, fit_exponent, prepare  # noqa: E402

import cellpop  # noqa: E402
from cellpop.data import inference_cells  # noqa: E402
from cellpop.model._scproto import EXACT_KNN_MAX_CELLS, knn_pcs, pcs_knn  # noqa: E402
from cellpop.ontology import CellOntology, composition_distances  # noqa: E402

STEPS = ("knn", "centrality", "gloscope", "emd")
DEFAULT_SIZES = ("100000:1000", "300000:1000", "1000000:1000")


def _measure(fn):
    """``fn()``'s result, wall seconds, process CPU seconds and peak RSS increase (MiB)."""
    with PeakMemory() as mem:
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - w, time.process_time() - c
    return out, wall, cpu, mem.host


def _knn(adata, args):
    """``knn_index`` in its two parts (PCA, then neighbours); detail: part times and recall."""
    params = inspect.signature(cellpop.model.ScProto).parameters
    k, n_pcs = params["n_neighbors"].default, params["n_pcs"].default
    X = adata.layers["counts"]
    n_comps = int(min(n_pcs, min(X.shape) - 1))
    pcs, pca_s, pca_cpu, pca_mib = _measure(lambda: knn_pcs(X, n_comps, random_state=0))
    idx, nn_s, nn_cpu, nn_mib = _measure(lambda: pcs_knn(pcs, k, random_state=0))
    # recall of 1,000 random cells' neighbours against exact search (not timed)
    cells = np.random.default_rng(0).choice(len(pcs), min(1000, len(pcs)), replace=False)
    exact = NearestNeighbors(n_neighbors=k + 1).fit(pcs).kneighbors(pcs[cells])[1]
    recall = np.mean([len(np.intersect1d(e[e != c][:k], idx[c])) / k for c, e in zip(cells, exact)])
    method = "exact" if len(pcs) <= EXACT_KNN_MAX_CELLS else "pynndescent"
    detail = (
        f"{n_pcs} PCs, {k} neighbours, {method}; PCA {pca_cpu:.0f} CPU s / {pca_mib:.0f} MiB, "
        f"neighbours {nn_cpu:.0f} CPU s / {nn_mib:.0f} MiB; recall@{k} {recall:.3f}"
    )
    mib = max(pca_mib, nn_mib + pcs.nbytes / 2**20)  # the PCs stay while neighbours are found
    return detail, pca_s + nn_s, pca_cpu + nn_cpu, mib


def _centrality(adata, n_cells):
    codes = adata.obs["donor_id"].cat.codes.to_numpy()
    n_donors = adata.obs["donor_id"].nunique()
    sizes = np.bincount(codes, minlength=n_donors)
    inference_cells(adata.obsm["X_pca"], codes, n_donors, n_cells=n_cells, method="centrality")
    graphs = int((sizes > n_cells).sum())
    return (
        f"{n_cells} cells/set; {graphs} of {n_donors} donors need a graph "
        f"({sizes.min()}-{sizes.max()} cells/donor)"
    )


def _gloscope(adata, args, q: int):
    """GloScope on all donors, or on the first ``--gloscope-donors`` (cost per query at the
    full size's cells per donor; the whole matrix scales as donors^2 from there)."""
    sub, scope, which = adata, "", "all donors"
    n_donors = adata.obs["donor_id"].nunique()
    if args.gloscope_donors and args.gloscope_donors < n_donors:
        keep = adata.obs["donor_id"].cat.categories[: args.gloscope_donors]
        sub = adata[adata.obs["donor_id"].isin(keep)].copy()
        sub.obs["donor_id"] = sub.obs["donor_id"].cat.remove_unused_categories()
        which = f"first {len(keep)} donors"
        scope = f"; of {n_donors} ({sub.n_obs:,} cells)"
    kw = {"n_query_cells": q} if q else {}

    def fn():
        cellpop.tl.gloscope(sub, "donor_id", obsm_key="X_pca", n_dims=args.gloscope_dims, **kw)

    _, wall, cpu, mib = _measure(fn)
    how = f"{q} query cells/sample" if q else "exact"
    return f"{args.gloscope_dims} PCs, k=25, {how}, {which}{scope}", wall, cpu, mib


def _emd_inputs(adata, args):
    data_dir = os.environ.get("CELLPOP_DATA_DIR")
    donors = adata.obs["donor_id"].cat.categories[: args.emd_samples]
    obs = adata.obs[adata.obs["donor_id"].isin(donors)]
    comp = pd.crosstab(obs["donor_id"].astype(str), obs[CT].astype(str), normalize="index")
    pruned = CellOntology(data_dir=data_dir).prune(list(comp.columns))
    composition_distances(comp.iloc[:2], pruned, n_jobs=1)  # numba compilation
    return comp, pruned


def run(args) -> None:
    for size in args.sizes:
        n_cells, n_donors = (int(v) for v in size.split(":"))
        load = os.getloadavg()[0]
        adata, wall, cpu, mib = _measure(lambda n=n_cells, d=n_donors: prepare(n, d))
        nnz = adata.layers["counts"].nnz
        _row(
            args.out,
            "resample",
            adata,
            wall,
            cpu,
            mib,
            load,
            f"+ PCA; {nnz / n_cells:.0f} nnz/cell",
        )
        per = {"centrality": args.centrality_cells, "gloscope": args.gloscope_query}
        jobs = [(s, c) for s in args.steps for c in per.get(s, [0])]
        for step, n_set in jobs:
            load = os.getloadavg()[0]
            if step == "centrality":
                detail, wall, cpu, mib = _measure(lambda c=n_set, a=adata: _centrality(a, c))
            elif step == "emd":
                comp, pruned = _emd_inputs(adata, args)
                fn = lambda c=comp, p=pruned: composition_distances(c, p, n_jobs=1)  # noqa: E731
                _, wall, cpu, mib = _measure(fn)
                detail = f"{len(comp)} samples x {len(pruned.terms)} terms, n_jobs=1"
            elif step == "knn":  # timed part by part inside
                detail, wall, cpu, mib = _knn(adata, args)
            else:
                detail, wall, cpu, mib = _gloscope(adata, args, n_set)
            _row(args.out, step, adata, wall, cpu, mib, load, detail)
        adata = None  # free before the next size


def _row(out: Path, step, adata, wall, cpu, mib, load, detail) -> None:
    """Print one result and append it to ``out`` (JSON line) at once."""
    row = dict(
        step=step, n_cells=adata.n_obs, n_donors=int(adata.obs["donor_id"].nunique()),
        wall_s=wall, cpu_s=cpu, rss_mib=mib, load=load, detail=detail,
        machine=device_line(), threads=os.environ.get("NUMBA_NUM_THREADS", "unset"),
    )  # fmt: skip
    print(json.dumps(row), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def table(path: Path) -> str:
    """Markdown table of the last row per (step, size, detail) in ``path``, with exponents."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows).drop_duplicates(["step", "n_cells", "n_donors", "detail"], keep="last")
    order = {s: i for i, s in enumerate(("resample", *STEPS))}
    df = df.sort_values(["step", "n_cells"], key=lambda c: c.map(order) if c.name == "step" else c)
    lines = [
        f"Machine: {rows[-1]['machine']}",
        "",
        "| step | cells | donors | setting | wall s | CPU s | peak RSS + MiB | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.step} | {r.n_cells:,} | {r.n_donors:,} | {r.detail} | {r.wall_s:,.1f} | "
            f"{r.cpu_s:,.1f} | {r.rss_mib:,.0f} | {r.load:.1f} |"
        )
    lines += ["", "| step | setting | exponent: CPU s vs cells | sizes |", "|---|---|---|---|"]
    for (step, setting), g in df.groupby(["step", df["detail"].str.split(";").str[0]]):
        if g["n_cells"].nunique() > 1:
            b = fit_exponent(g["n_cells"], g["cpu_s"])
            sizes = ", ".join(f"{n // 1000}k" for n in g["n_cells"])
            lines.append(f"| {step} | {setting} | {b:.2f} | {sizes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="cells:donors")
    parser.add_argument("--steps", nargs="*", default=list(STEPS), choices=STEPS)
    parser.add_argument("--centrality-cells", type=int, nargs="+", default=[1000])
    parser.add_argument("--gloscope-dims", type=int, default=10)
    parser.add_argument("--gloscope-query", type=int, nargs="+", default=[0])
    parser.add_argument("--gloscope-donors", type=int, default=0, help="0: all donors")
    parser.add_argument("--emd-samples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(".bench/preprocessing_scale.jsonl"))
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run(args)


if __name__ == "__main__":
    main()
