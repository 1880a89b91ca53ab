"""Command line: ``cellpop demo`` and ``cellpop benchmark <suite>``."""

from __future__ import annotations

import argparse
import sys
import time


def _progress_runner(fn, description: str, n_steps: int, **kwargs):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[msg]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=n_steps, msg="")

        def progress(msg: str) -> None:
            bar.update(task, advance=1, msg=msg)

        result = fn(progress=progress, **kwargs)
        bar.update(task, completed=n_steps, msg="done")
    return result


def _demo(args) -> int:
    from cellpop.benchmark import _sampleclr as suite

    settings = suite.QUICK_SETTINGS if args.quick else suite.DEMO_SETTINGS
    seeds = args.seeds or settings["seeds"]
    n_steps = 4 + 4 * len(seeds)
    t0 = time.perf_counter()
    scores = _progress_runner(
        suite.run,
        "cellpop demo",
        n_steps,
        out_dir=args.out,
        data_dir=args.data_dir,
        seeds=seeds,
        quick=args.quick,
    )
    print(suite.summarize(scores).to_string())
    print(
        f"\nwrote {args.out}/ (report.md, adata_sampleclr.h5ad, donors.h5ad, PNG figures) "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    return 0


def _benchmark(args) -> int:
    from cellpop.benchmark import SUITES, get_suite

    if args.suite == "list":
        print("\n".join(sorted(SUITES)))
        return 0
    run = get_suite(args.suite)
    kwargs = dict(out_dir=args.out, data_dir=args.data_dir, quick=args.quick)
    if args.seeds:
        kwargs["seeds"] = args.seeds
    result = run(**kwargs)
    print(result.to_string() if hasattr(result, "to_string") else result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cellpop`` command."""
    parser = argparse.ArgumentParser(prog="cellpop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=None,
        help="curated data folder (default: $CELLPOP_DATA_DIR; the demo's Stephenson 2021 data "
        "is embedded in cellpop, other datasets come from the cache or their public originals)",
    )
    common.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds")
    common.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    demo = sub.add_parser(
        "demo", parents=[common], help="SampleCLR vs baselines on Stephenson 2021"
    )
    demo.add_argument(
        "--out", default="cellpop_demo", help="output folder (default: cellpop_demo/)"
    )
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("benchmark", parents=[common], help="paper-style evaluation suites")
    bench.add_argument("suite", help="suite name, or 'list'")
    bench.add_argument("--out", default="cellpop_benchmark", help="output folder")
    bench.set_defaults(func=_benchmark)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
