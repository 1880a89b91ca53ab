"""Training throughput, peak memory and time to embeddings of every cellpop model next to
scvi-tools' SCVI, on resampled copies of Kang 2018, at several sizes, in one process.

Usage: ``CELLPOP_DATA_DIR=../shared/data python benchmarks/throughput.py
[--sizes 100000:1000 300000:1000 1000000:1000] [--models SampleCLR ScJEPA ...] [--epochs 2]
[--set-epochs 10] [--limit-batches N] [--threads N] [--out results.json]``

Data: ``cellpop.datasets.resample`` of Kang 2018 (12,261 real cells, 8 donors, 1,287 genes)
to ``cells:donors`` (binomially thinned counts, donors split), the counts for SCVI, ScJEPA and
ScProto, 50 PCs of the log-normalised counts for the set models (SampleCLR, PopulationJEPA,
POPPY; POPPY's bulk = each donor's pseudobulk). Set size = median cells per donor, at most
1,000 (PopulationJEPA: at most 256, its default; ``_scale.SET_CAP``), so below the cap one set
per donor covers about every cell.

Throughput = cells through the model per second of steady training (epochs after the first;
per-cell models: every cell once per epoch, whatever the number of views; SampleCLR: 2 views x
donors x set size; PopulationJEPA, POPPY: donors x set size) and, for set models, sample sets per
second. ``train s`` = the whole ``train()`` call (first epoch and set-up included); ``embed s`` =
``get_latent_representation()`` of every cell plus, for cellpop models,
``get_sample_representation()``. Memory: peak resident-set increase of the process during
train + embed (MiB; the allocator keeps freed memory, so later runs are lower bounds) and, on
GPU, peak allocated device memory. ``cells/CPU-s`` divides by the process CPU time of the
epoch instead of wall time (with one torch thread it does not depend on other jobs sharing the
cores); ``x SCVI (CPU)`` = cells/CPU-s over SCVI's on the same cells. The time exponent is the
least-squares slope of log(CPU seconds per pass over every cell, ``cells / cells/CPU-s``: the
epoch's CPU time when an epoch covers every cell) on log(cells) over the sizes run.

``--limit-batches N`` runs only N steps per epoch (Lightning ``limit_train_batches``) and scales
the measured epoch to the full number of steps (at 1M cells a full ScJEPA epoch takes ~40 min
on one CPU core); embeddings are still computed for every cell unless ``--no-embed``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _scale import MODELS, device_line, fit_exponent, prepare, run_model  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    cells, donors = text.split(":")
    return int(cells), int(donors)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=_size, nargs="+", default=[(100_000, 1000), (300_000, 1000), (1_000_000, 1000)], help="cells:donors")  # fmt: skip
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--epochs", type=int, default=2, help="epochs of per-cell models and SCVI")
    p.add_argument("--set-epochs", type=int, default=10, help="epochs of set models")
    p.add_argument("--limit-batches", type=int, default=None, help="steps per epoch (scaled)")
    p.add_argument("--no-embed", action="store_true", help="skip the embeddings (embed s NaN)")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="write every run as JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {device_line()}", flush=True)
    print(
        "| cells | donors | model | cells/s | cells/CPU-s | sets/s (set size) | x SCVI (CPU) "
        "| epoch s | epoch CPU-s | train s | embed s | host MiB | device MiB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    runs = []
    for n_cells, n_donors in args.sizes:
        adata = prepare(n_cells, n_donors, args.data_dir)
        lim = dict(limit_batches=args.limit_batches, embed=not args.no_embed)
        ref = run_model("SCVI", adata, args.epochs, args.accelerator, **lim)
        runs.append(ref)
        for name in ["SCVI", *args.models]:
            r = ref if name == "SCVI" else run_model(
                name, adata, args.set_epochs if name in ("SampleCLR", "PopulationJEPA", "POPPY")
                else args.epochs, args.accelerator, **lim,
            )  # fmt: skip
            if name != "SCVI":
                runs.append(r)
            if args.out:  # after every run: partial results survive an interrupted run
                Path(args.out).write_text(json.dumps([asdict(r) for r in runs], indent=1))
            sets = f"{r.sets_per_s:,.1f} ({r.set_size})" if r.set_size else "-"
            print(
                f"| {n_cells:,} | {n_donors:,} | {name} | {r.cells_per_s:,.0f} | "
                f"{r.cells_per_cpu_s:,.0f} | {sets} | {r.cells_per_cpu_s / ref.cells_per_cpu_s:.2f} "
                f"| {r.epoch_s:.2f} | {r.epoch_cpu_s:.2f} | {r.train_s:.1f} | {r.embed_s:.2f} | "
                f"{r.host_mib:,.0f} | {r.device_mib:,.0f} |",
                flush=True,
            )
        del adata
    print(
        "\n| model | time exponent: CPU-s per pass over every cell vs cells | embed s vs cells |"
        "\n|---|---|---|"
    )
    for name in ["SCVI", *args.models]:
        rs = [r for r in runs if r.model == name]
        sizes = [r.n_cells for r in rs]
        print(
            f"| {name} | {fit_exponent(sizes, [r.pass_cpu_s for r in rs]):.2f} | "
            f"{fit_exponent(sizes, [r.embed_s for r in rs]):.2f} |"
        )


if __name__ == "__main__":
    main()
