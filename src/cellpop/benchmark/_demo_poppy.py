"""Demo section of POPPY: cell sets and bulk profiles of the same samples in one space.

Cells: Kang 2018 (8 donors) + OneK1K (40 donors), two cohorts, on the genes the two share;
per-cell input = 20 PCs of the log-normalised counts. Bulk: each sample's pseudobulk and an
in-silico mixture of Hoek 2015 sorted populations with the sample's proportions (shared types
matched through the Cell Ontology). Soft labels S: Cell-Ontology EMD kernel. Offline, the data
are the subsets embedded in the package (:func:`cellpop.datasets.onek1k_demo`,
:func:`~cellpop.datasets.hoek2015_sorted_bulk_demo`, CL ``"2022-12-15-demo"``); with a data
folder, the full curated files. ``benchmarks/poppy_smoke.py`` is the longer run of the same set-up.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from cellpop.benchmark._demo import DemoContext, Section, markdown_table, use_full_data

CT = "cell_type_ontology_term_id"
#: POPPY at demo budget: 60 epochs, S with k = 5 neighbours (k = 100 of the paper is n - 1 = 47
#: here and makes S nearly flat, docs/poppy.md), 80/20 split by sample, validation loss only
#: after the last epoch (held-out samples are scored below), no early stopping; defaults
#: otherwise.
POPPY_DEMO = dict(max_epochs=60, k=5, train_size=0.8, n_pcs=20)
POPPY_QUICK = {**POPPY_DEMO, "max_epochs": 2}
RECALL_KS = (1, 3)


def build_mudata(kang, onek, sorted_bulk, ontology, n_pcs: int = 20, seed: int = 0):
    """MuData of the Kang + OneK1K cells (``rna``) and their pseudobulk / in-silico bulk.

    ``rna``: cells on the shared genes, ``obs`` donor_id / cohort / CL ID, ``layers['counts']``,
    ``obsm['X_pca']`` (``n_pcs`` PCs of log1p CP10k). ``bulk``: :func:`cellpop.tl.paired_bulk`
    with the sorted populations of ``sorted_bulk`` (its PBMC mixture left out), shared types
    matched through the ontology's ancestors.
    """
    import anndata as ad
    import mudata as md
    import scanpy as sc

    from cellpop.tl import paired_bulk

    kang, onek = kang.copy(), onek.copy()
    kang.obs["cohort"], onek.obs["cohort"] = "kang2018", "onek1k"
    genes = kang.var_names.intersection(onek.var_names)
    rna = ad.concat([kang[:, genes], onek[:, genes]], join="inner", index_unique="-")
    rna.obs = rna.obs[["donor_id", "cohort", CT]].astype("category")
    rna.layers["counts"] = rna.X.copy()
    norm = rna.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.pca(norm, n_comps=n_pcs, random_state=seed)
    rna.obsm["X_pca"] = norm.obsm["X_pca"].astype(np.float32)
    populations = sorted_bulk[sorted_bulk.obs[CT] != "CL:2000001"].copy()  # PBMC: a mixture
    anc = {t: ontology.ancestors(t) for t in rna.obs[CT].cat.categories}
    bulk = paired_bulk(
        rna, "donor_id", CT, layer="counts", sorted_bulk=populations,
        sorted_cell_type_key=CT, ancestors=anc,
    )  # fmt: skip
    bulk.obs["donor_id"] = bulk.obs["donor_id"].astype("category")
    return md.MuData({"rna": rna, "bulk": bulk})


def pair_recall(z_cells: pd.DataFrame, z_bulk: pd.DataFrame, ks=RECALL_KS) -> dict[str, float]:
    """Recall@k of the matching pair, both directions: for each sample's cell-set embedding,
    is its own bulk among the ``k`` most cosine-similar bulks of the same samples (and back)?

    Embeddings are unit-norm (POPPY's), so the dot product is the cosine. Ties count against.
    """
    sim = z_cells.to_numpy() @ z_bulk.loc[z_cells.index].to_numpy().T
    out = {}
    for name, s in (("cell→bulk", sim), ("bulk→cell", sim.T)):
        rank = (s >= np.diag(s)[:, None]).sum(1) - 1  # others at least as similar as the match
        out.update({f"{name} R@{k}": float((rank < k).mean()) for k in ks})
    return out


def _data(ctx: DemoContext):
    from cellpop import datasets
    from cellpop.ontology import CellOntology

    if use_full_data(ctx.data_dir):
        return (
            datasets.onek1k(ctx.data_dir),
            datasets.hoek2015_sorted_bulk(ctx.data_dir),
            CellOntology(data_dir=ctx.data_dir),
        )
    return (
        datasets.onek1k_demo(),
        datasets.hoek2015_sorted_bulk_demo(),
        CellOntology(version="2022-12-15-demo"),
    )


def poppy_section(ctx: DemoContext) -> Section:
    """POPPY: recall of each held-out sample's own bulk from its cell set, vs untrained / chance.

    Trains once (first seed). Adds ``obsm["X_poppy"]`` (per-cell POPPY embeddings of the Kang
    cells) and ``uns["X_poppy_samples"]`` (cell-set embedding of every sample, both cohorts) to
    ``ctx.kang``, and what the figure needs to ``ctx.extra["poppy"]``.
    """
    import scvi
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    from cellpop.model import POPPY
    from cellpop.ontology import composition_distances

    st = POPPY_QUICK if ctx.quick else POPPY_DEMO
    seed = ctx.seeds[0]
    ctx.say("POPPY: Kang + OneK1K cells, pseudobulk and Hoek 2015 in-silico bulk")
    onek, hoek, co = _data(ctx)
    mdata = build_mudata(ctx.kang, onek, hoek, co, st["n_pcs"], seed)
    scvi.settings.seed = seed
    POPPY.setup_mudata(
        mdata, sample_key="donor_id", cell_type_key=CT, cohort_key="cohort",
        rna_obsm_key="X_pca",
    )  # fmt: skip
    model = POPPY(mdata)
    S = model.sample_similarity(co, k=st["k"])
    ctx.say(f"training POPPY ({st['max_epochs']} epochs, {len(S)} samples)")
    t0 = time.perf_counter()
    model.train(
        max_epochs=st["max_epochs"], similarity=S, train_size=st["train_size"],
        early_stopping=False, check_val_every_n_epoch=st["max_epochs"],
        enable_progress_bar=False,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    ctx.say("POPPY: scoring held-out samples")
    bulk = mdata.mod["bulk"]
    pb = bulk[bulk.obs["source"] == "pseudobulk"]
    held = list(model.validation_samples_)

    def embed(m):
        zc = m.get_sample_representation()
        zb = m.get_sample_representation(pb, modality="bulk")
        zb.index = pb.obs["donor_id"].astype(str).to_numpy()
        return zc, zb

    zc, zb = embed(model)
    scvi.settings.seed = seed  # same architecture and seed, no training step
    untrained = POPPY(mdata)
    untrained.is_trained_ = True
    zc0, zb0 = embed(untrained)
    comp = model.compositions()
    D = composition_distances(comp, co.prune(comp.columns))
    iu = np.triu_indices(len(D), 1)
    rho = float(spearmanr(pdist(zc.loc[comp.index].to_numpy(), "cosine"), D[iu]).statistic)
    rho0 = float(spearmanr(pdist(zc0.loc[comp.index].to_numpy(), "cosine"), D[iu]).statistic)
    corr = "Spearman(cell-set emb. dist., composition EMD)"
    chance = {f"{d} R@{k}": k / len(held) for d in ("cell→bulk", "bulk→cell") for k in RECALL_KS}
    scores = pd.DataFrame(
        [
            {"method": "POPPY", "seed": seed, **pair_recall(zc.loc[held], zb), corr: rho,
             "train_s": train_s},
            {"method": "untrained encoders", "seed": seed, **pair_recall(zc0.loc[held], zb0),
             corr: rho0},
            {"method": "chance", "seed": seed, **chance},
        ]
    )  # fmt: skip
    n_kang = ctx.kang.n_obs
    ctx.kang.obsm["X_poppy"] = model.get_latent_representation()[:n_kang]
    ctx.kang.uns["X_poppy_samples"] = zc
    sim = zc.loc[held].to_numpy() @ zb.loc[held].to_numpy().T
    cohort = mdata.mod["rna"].obs.groupby("donor_id", observed=True)["cohort"].first()
    ctx.extra["poppy"] = dict(S=S, held=held, sim=sim, cohort=cohort.astype(str))
    r1 = scores.loc[0, "cell→bulk R@1"]
    text = [
        "Headline task of the POPPY paper at toy scale: map bulk profiles and single-cell "
        f"samples into one space. {len(S)} samples (8 Kang 2018 + 40 OneK1K donors, two "
        f"cohorts, {mdata.mod['rna'].n_obs:,} cells, {mdata.mod['rna'].n_vars} shared genes); "
        f"bulk = each sample's pseudobulk and an in-silico mixture of Hoek 2015 sorted "
        f"populations ({bulk.n_vars} genes). Scored on the {len(held)} held-out samples: is "
        "a sample's own pseudobulk the most similar to its cell-set embedding (R@k, and "
        "back)?",
        "",
        *markdown_table(scores),
        "",
        f"Settings: {st['max_epochs']} epochs, S from the Cell-Ontology EMD with k = {st['k']} "
        f"neighbours (the paper's k = 100 exceeds the cohort), {st['n_pcs']} PCs per cell, "
        f"{round(st['train_size'] * 100)}/{round((1 - st['train_size']) * 100)} split by "
        f"sample, seed {seed}; defaults otherwise (docs/poppy.md). Held-out R@1 cell→bulk "
        f"{r1:.2f} against chance {1 / len(held):.2f}. `poppy_matching.png`: the soft labels "
        "S and the held-out cell-set × pseudobulk cosine similarities (diagonal = own pair).",
    ]
    return Section("POPPY", "\n".join(text), scores)
