"""Demo sections of the sample-level models on Stephenson 2021: SampleCLR and PopulationJEPA.

Both score donor vectors the same way (:func:`cellpop.benchmark._sampleclr._score`: SPARE
retention / batch mixing and the leave-one-donor-out probe AUROC of ``disease``) against the
same deterministic baselines (pseudobulk, CLR composition, GloScope), computed once per run.
"""

from __future__ import annotations

import time

import pandas as pd

from cellpop.benchmark import _sampleclr
from cellpop.benchmark._demo import DemoContext, Section, markdown_table

#: PopulationJEPA at demo budget: the small CPU configuration of docs/population_jepa.md
#: (d_model 32, 2 + 2 layers, 64 cells per set, lr 1e-3, 10 donors per step), 40 epochs.
POPJEPA_DEMO = dict(
    max_epochs=40, n_cells=64, batch_size=10, lr=1e-3, d_model=32, n_layers=2, predictor_layers=2
)
POPJEPA_QUICK = {**POPJEPA_DEMO, "max_epochs": 3}
PROBE = "LOO probe AUROC (disease)"


def _baselines(ctx: DemoContext):
    """The deterministic baselines, computed once per run and shared by both sections."""
    if "sample_baselines" not in ctx.extra:
        ctx.say("baselines: pseudobulk, composition, GloScope")
        ctx.extra["sample_baselines"] = _sampleclr.baselines(ctx.stephenson, ctx.donor_meta)
        reps = ctx.extra["sample_baselines"][0]
        ctx.donor_reps["X_pseudobulk"] = reps["pseudobulk (mean PCs)"]
        ctx.donor_reps["X_composition_clr"] = reps["composition (CLR)"]
    return ctx.extra["sample_baselines"]


def sampleclr_section(ctx: DemoContext) -> Section:
    """SampleCLR (self-supervised, + GloScope prior, + disease head) vs the baselines.

    Adds ``obsm["X_sampleclr_cell"]`` (cell embeddings of the self-supervised model, first
    seed), ``obsm["sampleclr_importance"]`` (the disease head's per-cell importance) and the donor
    DataFrames ``uns["X_sampleclr"]``, ``uns["X_sampleclr_prior"]``,
    ``uns["X_sampleclr_disease"]`` to ``ctx.stephenson``; the donor vectors to
    ``ctx.donor_reps``; ``ctx.extra["best_sampleclr"]`` = (key, name) of the self-supervised
    variant with the best mean probe AUROC (for the donor UMAP).
    """
    settings = dict(_sampleclr.QUICK_SETTINGS if ctx.quick else _sampleclr.DEMO_SETTINGS)
    settings["seeds"] = ctx.seeds
    base = _baselines(ctx)
    scores, keep = _sampleclr.evaluate(ctx.stephenson, ctx.donor_meta, settings, ctx.say, base)
    cells = ctx.stephenson
    keys = dict(
        zip(_sampleclr.VARIANTS, ("X_sampleclr", "X_sampleclr_prior", "X_sampleclr_disease"))
    )
    for name, key in keys.items():
        model, rep = keep[name]
        cells.uns[key] = rep
        ctx.donor_reps[key] = rep
    cells.obsm["X_sampleclr_cell"] = keep["SampleCLR"][0].get_latent_representation()
    cells.obsm["sampleclr_importance"] = keep["SampleCLR + disease head*"][0].get_cell_importance()
    self_supervised = scores[scores["method"].isin(_sampleclr.VARIANTS[:2])]
    best = self_supervised.groupby("method")[PROBE].mean().idxmax()
    ctx.extra["best_sampleclr"] = (keys[best], best)
    text = [
        "Headline comparison of the SampleCLR paper: donor vectors that separate disease, "
        "against pseudobulk, cell-type composition and GloScope.",
        "",
        *markdown_table(scores),
        "",
        _sampleclr.notes_markdown(settings),
        "",
        f"Best self-supervised variant by mean probe AUROC: **{best}** (drawn in "
        "`donor_umap.png`; `cell_importance.png` shows the disease head's cell importance).",
    ]
    return Section("SampleCLR", "\n".join(text), scores)


def population_jepa_section(ctx: DemoContext) -> Section:
    """PopulationJEPA (SC-JEPA) donor vectors on Stephenson, scored like SampleCLR's.

    Adds ``obsm["X_popjepa_tokens"]`` (per-cell contextual tokens, first seed) and
    ``uns["X_popjepa"]`` (donor vectors) to ``ctx.stephenson`` and ``ctx.donor_reps``.
    """
    import scvi

    from cellpop.model import PopulationJEPA

    st = POPJEPA_QUICK if ctx.quick else POPJEPA_DEMO
    _, _, base_rows = _baselines(ctx)
    rows = [r for r in base_rows if r["method"] != "GloScope (10 PCs)"]
    for seed in ctx.seeds:
        ctx.say(f"training PopulationJEPA (seed {seed})")
        scvi.settings.seed = seed
        a = ctx.stephenson.copy()
        PopulationJEPA.setup_anndata(a, sample_key="donor_id", obsm_key="X_pca")
        model = PopulationJEPA(
            a,
            d_model=st["d_model"],
            n_layers=st["n_layers"],
            predictor_layers=st["predictor_layers"],
        )
        t0 = time.perf_counter()
        model.train(
            max_epochs=st["max_epochs"], batch_size=st["batch_size"],
            datasplitter_kwargs={"n_cells": (st["n_cells"], st["n_cells"])},
            plan_kwargs={"lr": st["lr"]}, enable_progress_bar=False,
        )  # fmt: skip
        dt = time.perf_counter() - t0
        rep = model.get_sample_representation()
        rows.append(
            {"method": "PopulationJEPA", "seed": seed,
             **_sampleclr._score(rep, ctx.donor_meta), "train_s": dt}
        )  # fmt: skip
        if seed == ctx.seeds[0]:
            ctx.stephenson.obsm["X_popjepa_tokens"] = model.get_latent_representation()
            ctx.stephenson.uns["X_popjepa"] = rep
            ctx.donor_reps["X_popjepa"] = rep
    scores = pd.DataFrame(rows)
    ours = scores.loc[scores["method"] == "PopulationJEPA", PROBE]
    text = [
        "**New in cellpop, first small-budget look; its paper benchmark (batch integration, "
        "stratification, learning curves) is still open (issue 9).** SC-JEPA donor vectors "
        "(mean context token over a donor's cells) on the same 20 Stephenson donors and the "
        "same scoring as SampleCLR, next to the feature baselines.",
        "",
        *markdown_table(scores),
        "",
        f"Settings: d_model {st['d_model']}, {st['n_layers']} encoder + "
        f"{st['predictor_layers']} predictor layers, {st['n_cells']} cells per set (20:80 "
        f"target:context), {st['batch_size']} donors per step, lr {st['lr']:g}, "
        f"{st['max_epochs']} epochs, seeds {list(ctx.seeds)} — far below the paper's 8 + 4 "
        "layers of width 128. Probe AUROC "
        f"{ours.mean():.2f}{f' ± {ours.std(ddof=0):.2f}' if len(ours) > 1 else ''} "
        "(0.5 = chance): at this budget the donor vectors carry "
        f"{'little' if ours.mean() < 0.7 else 'some'} disease signal.",
    ]
    return Section("PopulationJEPA (SC-JEPA)", "\n".join(text), scores)
