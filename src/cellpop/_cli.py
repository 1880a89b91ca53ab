"""Command line: ``cellpop demo`` and ``cellpop benchmark <suite>``."""

from __future__ import annotations

import argparse
import sys


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
    from cellpop.benchmark import _demo as demo

    n_seeds = len(args.seeds) if args.seeds else None
    result = _progress_runner(
        demo.run_demo,
        "cellpop demo",
        demo.n_steps(quick=args.quick, n_seeds=n_seeds),
        out_dir=args.out,
        data_dir=args.data_dir,
        seeds=args.seeds,
        quick=args.quick,
    )
    print(f"cellpop demo finished in {result.seconds:.0f} s; sections: "
          + ", ".join(s.title for s in result.sections))  # fmt: skip
    width = max(len(str(p)) for p in result.outputs.values())
    for what, path in result.outputs.items():
        print(f"  {str(path):<{width}}  {what}")
    return 0


def _settings(pairs: list[str]) -> dict:
    """``["max_epochs=150", "n_cells=2500"]`` -> ``{"max_epochs": 150, "n_cells": 2500}``
    (values read as Python literals, else kept as strings)."""
    import ast

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"--set expects KEY=VALUE with a Python name as KEY, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _benchmark(args) -> int:
    from cellpop.benchmark import SUITES, get_suite

    if args.suite == "list":
        print("\n".join(sorted(SUITES)))
        return 0
    run = get_suite(args.suite)
    kwargs = dict(out_dir=args.out, data_dir=args.data_dir, quick=args.quick)
    if args.seeds:
        kwargs["seeds"] = args.seeds
    kwargs.update(_settings(args.set))
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
        help="curated data folder (default: $CELLPOP_DATA_DIR; without either, the demo uses the "
        "data embedded in cellpop: Stephenson 2021 and a 2,508-cell Kang 2018 subset; with one, "
        "the full Kang file; other datasets come from the cache or their public originals)",
    )
    common.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="training seeds (demo: of the sample-level models)",
    )
    common.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="every model on real data (embedded in the package) against its paper's baselines",
    )
    demo.add_argument(
        "--out", default="cellpop_demo", help="output folder (default: cellpop_demo/)"
    )
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("benchmark", parents=[common], help="paper-style evaluation suites")
    bench.add_argument("suite", help="suite name, or 'list'")
    bench.add_argument("--out", default="cellpop_benchmark", help="output folder")
    bench.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword of the suite's run() (e.g. --set max_epochs=150 --set n_cells=2500; "
        "see each suite's docstring); repeatable",
    )
    bench.set_defaults(func=_benchmark)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
