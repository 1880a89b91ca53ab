"""``cellpop demo``: every model on real data at demo budget, one report, AnnData files, figures.

The demo is a list of model sections (:data:`SECTIONS`). Each section is one function
``section(ctx: DemoContext) -> Section`` in :mod:`cellpop.benchmark._demo_samples` (sample-level
models on Stephenson 2021), :mod:`cellpop.benchmark._demo_cells` (cell-level models on Kang
2018) or :mod:`cellpop.benchmark._demo_poppy` (POPPY on Kang + OneK1K cells and bulk); it
trains its model(s), scores them against the paper's baselines, writes its
embeddings into the shared AnnDatas of the context and returns a report section. This module
loads the data, drives the sections and one progress callback, then writes the AnnData files,
the figures (:mod:`cellpop.benchmark._demo_figures`), ``scores.csv`` and ``report.md``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

logger = logging.getLogger(__name__)


@dataclass
class Section:
    """One model's part of the report.

    Attributes
    ----------
    title
        Section heading (the model's name).
    markdown
        Section body: settings, the comparison table and how to read it.
    scores
        Tidy scores, one row per (method, seed), one column per metric.
    """

    title: str
    markdown: str
    scores: pd.DataFrame


@dataclass
class DemoContext:
    """What the sections share: settings, the loaded data and the outputs they add.

    Sections write cell embeddings into ``stephenson.obsm`` / ``kang.obsm``, donor embeddings
    (DataFrames indexed by donor) into ``donor_reps`` and the cells' ``uns``, and anything a
    figure needs into ``extra``.
    """

    out: Path
    quick: bool
    seeds: tuple[int, ...]
    data_dir: str | Path | None
    say: Callable[[str], None]
    stephenson: AnnData | None = None
    donor_meta: pd.DataFrame | None = None
    donor_reps: dict[str, pd.DataFrame] = field(default_factory=dict)
    kang: AnnData | None = None
    metacells: AnnData | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SectionSpec:
    """A registered demo section: its dataset, function (``module:name``) and progress steps."""

    dataset: str
    target: str
    steps: Callable[[bool, int], int]  # (quick, number of seeds) -> progress messages


#: The demo's sections in report order. PopulationJEPA's is a first small-budget look (its
#: benchmark is its own issue's work); POPPY's trains on Kang + OneK1K with Hoek 2015 bulk.
SECTIONS: dict[str, SectionSpec] = {
    "sampleclr": SectionSpec(
        "stephenson", "cellpop.benchmark._demo_samples:sampleclr_section", lambda q, n: 1 + 4 * n
    ),
    "population_jepa": SectionSpec(
        "stephenson", "cellpop.benchmark._demo_samples:population_jepa_section", lambda q, n: n
    ),
    "scjepa": SectionSpec("kang", "cellpop.benchmark._demo_cells:scjepa_section", lambda q, n: 3),
    "scproto": SectionSpec("kang", "cellpop.benchmark._demo_cells:scproto_section", lambda q, n: 3),
    "poppy": SectionSpec("kang", "cellpop.benchmark._demo_poppy:poppy_section", lambda q, n: 3),
}

#: Progress messages outside the sections: one per dataset loaded, figures, files, report.
_FIXED_STEPS = 3

DEFAULT_SEEDS = (0, 1, 2)
QUICK_SEEDS = (0,)


@dataclass
class DemoResult:
    """What :func:`run_demo` returns.

    Attributes
    ----------
    sections
        The report sections in order.
    scores
        All sections' scores, with a ``section`` column.
    outputs
        Description -> path of every file written.
    seconds
        Wall time of the run.
    """

    sections: list[Section]
    scores: pd.DataFrame
    outputs: dict[str, Path]
    seconds: float


def n_steps(sections: Sequence[str] = tuple(SECTIONS), quick: bool = False, n_seeds=None) -> int:
    """Number of progress messages :func:`run_demo` sends (for a progress bar's total)."""
    n_seeds = n_seeds or len(QUICK_SEEDS if quick else DEFAULT_SEEDS)
    datasets = {SECTIONS[s].dataset for s in sections}
    return _FIXED_STEPS + len(datasets) + sum(SECTIONS[s].steps(quick, n_seeds) for s in sections)


def quiet() -> None:
    """Silence Lightning's and scvi-tools' per-model logging (GPU banner, seed, tips)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)


def use_full_data(data_dir) -> bool:
    """The full curated files (``data_dir`` or ``$CELLPOP_DATA_DIR``) instead of the embedded
    demo subsets."""
    return data_dir is not None or bool(os.environ.get("CELLPOP_DATA_DIR"))


def _load(ctx: DemoContext, dataset: str) -> None:
    from cellpop import datasets, tl

    if dataset == "stephenson":
        ctx.say("loading Stephenson 2021 (20 donors x 500 cells, 50 PCs)")
        ctx.stephenson = datasets.stephenson2021_covid(ctx.data_dir)
        ctx.donor_meta = tl.sample_metadata(
            ctx.stephenson, "donor_id", majority_keys=["barcode_batch"]
        )
    else:
        full = use_full_data(ctx.data_dir)
        ctx.say(f"loading Kang 2018 ({'all cells' if full else 'embedded demo subset'})")
        ctx.kang = (datasets.kang2018_ctrl if full else datasets.kang2018_ctrl_demo)(ctx.data_dir)


def run_demo(
    out_dir: str | Path = "cellpop_demo",
    data_dir: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
    sections: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    figures: bool = True,
) -> DemoResult:
    """Train the models of ``sections`` on real data, score them and write every output.

    Parameters
    ----------
    out_dir
        Output folder (created). Files: ``report.md`` (one section per model), ``scores.csv``,
        ``stephenson2021_cells.h5ad`` (cell embeddings in ``.obsm``, donor embeddings as
        DataFrames in ``.uns``), ``donors.h5ad`` (one row per donor, every donor embedding in
        ``.obsm``), ``kang2018_cells.h5ad`` (ScJEPA / ScProto cell embeddings and their UMAPs in
        ``.obsm``, the prototype of every cell in ``.obs``, ScProto donor occupancies in
        ``.uns``; POPPY's Kang cell embeddings in ``.obsm["X_poppy"]`` and sample embeddings in
        ``.uns["X_poppy_samples"]``), ``scproto_metacells.h5ad`` and the figures
        ``donor_umap.png``, ``cell_importance.png``, ``cell_umap.png``, ``metacell_dotplot.png``,
        ``poppy_matching.png``; files of sections not run are not written.
    data_dir
        Curated data folder. Default: ``$CELLPOP_DATA_DIR``; when neither is set the demo uses
        the data embedded in the package (Stephenson 2021, the 2,508-cell Kang subset) and
        needs no network (POPPY adds the embedded OneK1K subset, Hoek 2015 bulk on 1,099 genes
        and a 71-term Cell Ontology subset). When one is set, Kang is the full 12,261-cell
        file and POPPY uses the full OneK1K, Hoek 2015 and Cell Ontology files.
    seeds
        Training seeds of the sample-level models (default 0, 1, 2; quick: 0); the cell-level
        models train once, with the first seed.
    quick
        Tiny settings (a smoke run: few epochs, one seed).
    sections
        Names from :data:`SECTIONS` (default: all, in that order).
    progress
        Called with a short message at each of :func:`n_steps` steps.
    figures
        Write the PNG figures.

    Returns
    -------
    DemoResult

    Raises
    ------
    KeyError
        If a section name is unknown.
    """
    sections = list(SECTIONS if sections is None else sections)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise KeyError(f"Unknown demo section(s) {unknown}; available: {list(SECTIONS)}")
    seeds = tuple(seeds) if seeds else (QUICK_SEEDS if quick else DEFAULT_SEEDS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: logger.info(msg))
    ctx = DemoContext(out=out, quick=quick, seeds=seeds, data_dir=data_dir, say=say)
    t0 = time.perf_counter()
    done: list[Section] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet()
        for name in sections:
            spec = SECTIONS[name]
            if getattr(ctx, spec.dataset) is None:
                _load(ctx, spec.dataset)
            mod, fn = spec.target.split(":")
            done.append(getattr(importlib.import_module(mod), fn)(ctx))
        outputs: dict[str, Path] = {}
        say("drawing figures")
        if figures:
            from cellpop.benchmark import _demo_figures

            outputs.update(_demo_figures.draw_all(ctx))
        say("writing AnnData files")
        outputs.update(_write_anndata(ctx))
    scores = pd.concat(
        [s.scores.assign(section=s.title) for s in done], ignore_index=True, sort=False
    )
    scores.to_csv(out / "scores.csv", index=False)
    outputs["all scores (one row per method and seed)"] = out / "scores.csv"
    seconds = time.perf_counter() - t0
    say("writing report.md")
    report = out / "report.md"
    report.write_text(_report(ctx, done, outputs, seconds))
    outputs = {"report (one section per model)": report, **outputs}
    return DemoResult(done, scores, outputs, seconds)


def _write_anndata(ctx: DemoContext) -> dict[str, Path]:
    from cellpop import tl

    out, written = ctx.out, {}
    if ctx.stephenson is not None and ctx.donor_reps:
        path = out / "stephenson2021_cells.h5ad"
        ctx.stephenson.write_h5ad(path)
        written["Stephenson 2021 cells: embeddings in .obsm, donor embeddings in .uns"] = path
        key, rep = next(iter(ctx.donor_reps.items()))
        donors = tl.sample_adata(
            ctx.stephenson, key, "donor_id", representation=rep, majority_keys=["barcode_batch"]
        )
        for key, rep in ctx.donor_reps.items():
            donors.obsm[key] = rep.loc[donors.obs_names].to_numpy(dtype=np.float32)
        path = out / "donors.h5ad"
        donors.write_h5ad(path)
        written["Stephenson 2021 donors: one row each, every donor embedding in .obsm"] = path
    if ctx.kang is not None:
        path = out / "kang2018_cells.h5ad"
        ctx.kang.write_h5ad(path)
        written["Kang 2018 cells: ScJEPA/ScProto/POPPY embeddings and UMAPs in .obsm"] = path
    if ctx.metacells is not None:
        path = out / "scproto_metacells.h5ad"
        ctx.metacells.write_h5ad(path)
        written["ScProto metacells (one row per prototype)"] = path
    return written


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds per method, as strings for a report table (``–`` where missing).

    Columns other than ``method``, ``seed`` and ``section`` are metrics; ``train_s`` is shown
    with one decimal, integer columns (counts) as they are, the others with three decimals.
    """
    metrics = [c for c in scores.columns if c not in ("method", "seed", "section")]
    order = list(dict.fromkeys(scores["method"]))
    g = scores.groupby("method", sort=False)[metrics]
    mean, sd = g.mean().loc[order], g.std(ddof=0).loc[order]
    table = pd.DataFrame(index=mean.index)
    for c in metrics:
        fmt = "{:.1f}" if c == "train_s" else "{:.3f}"
        if pd.api.types.is_integer_dtype(scores[c]):
            fmt = "{:.4g}"  # counts
        table[c] = [
            "–"
            if np.isnan(m)
            else (fmt.format(m) + ("" if np.isnan(s) or s == 0 else " ± " + fmt.format(s)))
            for m, s in zip(mean[c], sd[c])
        ]
    return table


def markdown_table(scores: pd.DataFrame) -> list[str]:
    """:func:`summarize` as Markdown table lines."""
    table = summarize(scores)
    lines = [
        "| method | " + " | ".join(table.columns) + " |",
        "|---" * (len(table.columns) + 1) + "|",
    ]
    for method, row in table.iterrows():
        lines.append(f"| {method} | " + " | ".join(row.astype(str)) + " |")
    return lines


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)})"
    return f"CPU ({torch.get_num_threads()} torch threads)"


def _report(ctx: DemoContext, sections: list[Section], outputs, seconds: float) -> str:
    data = "embedded demo data" if not use_full_data(ctx.data_dir) else "full curated files"
    lines = [
        "# cellpop demo",
        "",
        f"Every model of cellpop trained on real data ({data}) with its default architecture "
        f"at demo budget{' (--quick: smoke-test settings, not results)' if ctx.quick else ''}; "
        f"{len(sections)} sections, {seconds:.0f} s on {_device()}. Each section compares the "
        "model with the baselines of its paper's headline table; the budgets are far below the "
        "papers', so read the numbers as a demonstration, not as the methods' ceiling "
        "(docs/benchmarks.md has the longer runs).",
        "",
    ]
    for s in sections:
        lines += [f"## {s.title}", "", s.markdown.rstrip(), ""]
    lines += ["## Files", ""]
    for what, path in outputs.items():
        if path.suffix == ".png":
            lines += [f"- `{path.name}`: {what}", f"  ![{path.stem}]({path.name})"]
        else:
            lines.append(f"- `{path.name}`: {what}")
    return "\n".join(lines) + "\n"
