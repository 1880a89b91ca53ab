"""All-pairs ontology EMD speed (cellpop.ontology.composition_distances).

Compositions are random Dirichlet(0.5) mixtures over a real cell-type panel, placed on the
Cell Ontology 2022-12-15 (cl-basic) and propagated to the root, as POPPY does (App. A.1):

* ``kang``: the 8 Kang 2018 PBMC types -> 39 pruned terms (the issue's "K ~ 30" case),
* ``panel``: the 26 CL types used across the shared datasets -> 71 pruned terms.

For each size it prints the wall time of the full n x n matrix, microseconds per pair, and the
maximum deviation from ``ot.emd2`` on 200 random pairs; ``ot.emd2``'s own time per pair (same
problems, a plain Python loop) is printed for reference. Finally the CPU time per pair of one
process (``n_jobs=1``, ``--cpu-n`` samples) is printed: it does not depend on other jobs sharing
the machine, unlike the wall times.

Usage::

    CELLPOP_DATA_DIR=../shared/data python benchmarks/ontology_emd_speed.py \
        [--sizes 100 1000 3000] [--n-jobs 2] [--panel kang panel]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import ot
import pandas as pd

from cellpop.ontology import CellOntology, composition_distances

PANELS = {
    "kang": [
        "CL:0000236", "CL:0000451", "CL:0000556", "CL:0000623",
        "CL:0000624", "CL:0000625", "CL:0000860", "CL:0000875",
    ],
    "panel": [
        "CL:0000037", "CL:0000081", "CL:0000084", "CL:0000232", "CL:0000233", "CL:0000236",
        "CL:0000451", "CL:0000542", "CL:0000556", "CL:0000576", "CL:0000623", "CL:0000624",
        "CL:0000625", "CL:0000775", "CL:0000782", "CL:0000784", "CL:0000787", "CL:0000798",
        "CL:0000815", "CL:0000860", "CL:0000875", "CL:0000938", "CL:0000939", "CL:0000940",
        "CL:0000980", "CL:2000001",
    ],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--panel", nargs="+", default=["kang"], choices=sorted(PANELS))
    parser.add_argument("--cpu-n", type=int, default=1000)
    args = parser.parse_args()

    co = CellOntology(data_dir=os.environ.get("CELLPOP_DATA_DIR"))
    rng = np.random.default_rng(0)
    print(f"{'panel':6} {'types':>5} {'terms':>5} {'n':>5} {'pairs':>9} {'wall s':>7} "
          f"{'us/pair':>7} {'max|err|':>9}")  # fmt: skip
    for name in args.panel:
        cols = PANELS[name]
        pruned = co.prune(cols)
        composition_distances(pd.DataFrame(np.eye(len(cols))[:2], columns=cols), pruned)  # JIT
        for n in args.sizes:
            comp = pd.DataFrame(rng.dirichlet(np.full(len(cols), 0.5), size=n), columns=cols)
            t0 = time.perf_counter()
            dist = composition_distances(comp, pruned, n_jobs=args.n_jobs)
            wall = time.perf_counter() - t0
            sig = pruned.propagate(comp).to_numpy()
            sig /= sig.sum(axis=1, keepdims=True)
            cost = pruned.hop_distances()
            pairs = rng.integers(0, n, size=(200, 2))
            t1 = time.perf_counter()
            ref = np.array([ot.emd2(sig[i], sig[j], cost) for i, j in pairs])
            pot_us = (time.perf_counter() - t1) / len(pairs) * 1e6
            err = np.abs(dist[pairs[:, 0], pairs[:, 1]] - ref).max()
            n_pairs = n * (n - 1) // 2
            print(
                f"{name:6} {len(cols):5d} {len(pruned.terms):5d} {n:5d} {n_pairs:9d} "
                f"{wall:7.1f} {wall / n_pairs * 1e6:7.1f} {err:9.1e}   (ot.emd2 loop: "
                f"{pot_us:.0f} us/pair)",
                flush=True,
            )
        if args.cpu_n > 1:
            comp = pd.DataFrame(
                rng.dirichlet(np.full(len(cols), 0.5), size=args.cpu_n), columns=cols
            )
            t0 = time.process_time()
            composition_distances(comp, pruned, n_jobs=1)
            cpu = time.process_time() - t0
            print(
                f"{name}: one process, {args.cpu_n} samples: "
                f"{cpu / (args.cpu_n * (args.cpu_n - 1) / 2) * 1e6:.1f} us CPU per pair",
                flush=True,
            )


if __name__ == "__main__":
    main()
