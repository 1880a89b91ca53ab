"""Demo sections of the cell-level models on Kang 2018 (unstimulated PBMC): ScJEPA and ScProto.

The data is the 2,508-cell subset embedded in the package (8 donors, 8 cell types, counts), or
the full 12,261-cell file when a data folder is given. Both models train once, with the run's
first seed, at the paper's default architecture and a demo epoch budget.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from cellpop.benchmark._demo import DemoContext, Section, markdown_table

#: ScJEPA demo budget: 3 epochs on at most 2,000 reference cells (batch 256), classifier
#: fine-tuning 5 epochs. docs/benchmarks.md's longer run uses 5 epochs on 4,000 cells.
SCJEPA_DEMO = dict(epochs=3, batch_size=256, max_train_cells=2000, ft_epochs=5)
SCJEPA_QUICK = dict(epochs=1, batch_size=256, max_train_cells=600, ft_epochs=1)
#: ScProto demo budget: 25 epochs, no early stopping (the paper trains 100 or more).
SCPROTO_DEMO = dict(max_epochs=25)
SCPROTO_QUICK = dict(max_epochs=2)
DONOR, LABEL = "donor_id", "cell_type"


def scjepa_section(ctx: DemoContext) -> Section:
    """ScJEPA: cell-type annotation of held-out donors (paper Tables 1 and 4) vs PCA.

    25 % of the donors (2 of 8, :func:`cellpop.benchmark._scjepa.heldout_donors`) are the query;
    ScJEPA trains on (at most ``max_train_cells``) reference cells without labels, then a
    logistic or kNN probe on the frozen latent, fitted on the reference labels, annotates the
    query ("zero-shot"); "fine-tuned" trains the encoder with a linear head on the reference
    labels. PCA (50 components of log1p CP10k fitted on the reference) gets the same probes.

    Adds ``obsm["X_scjepa"]`` (zero-shot latent of every cell) and ``obs["scjepa_split"]`` to
    ``ctx.kang``.
    """
    from cellpop.benchmark._scjepa import _train_scjepa, heldout_donors, pca_embedding
    from cellpop.metrics import annotation_f1, f1_scores

    st = SCJEPA_QUICK if ctx.quick else SCJEPA_DEMO
    adata, seed = ctx.kang, ctx.seeds[0]
    test = heldout_donors(adata, seed)
    is_q = adata.obs[DONOR].astype(str).isin(test).to_numpy()
    ref_all = np.flatnonzero(~is_q)
    rng = np.random.default_rng(seed)
    ref_idx = np.sort(rng.choice(ref_all, min(st["max_train_cells"], len(ref_all)), False))
    ref, qry = adata[ref_idx].copy(), adata[is_q].copy()
    lab = np.concatenate([ref.obs[LABEL].astype(str), qry.obs[LABEL].astype(str)])
    don = np.concatenate([ref.obs[DONOR].astype(str), qry.obs[DONOR].astype(str)])

    ctx.say("ScJEPA: PCA baseline (50 PCs of log1p CP10k, reference donors)")
    pcs = pca_embedding(ref, qry, seed)
    ctx.say(f"training ScJEPA on {len(ref_idx)} reference cells")
    t0 = time.perf_counter()
    model = _train_scjepa(ref, seed, st["epochs"], st["batch_size"])
    train_s = time.perf_counter() - t0
    z_all = model.get_latent_representation(adata)  # before fine-tuning changes the encoder
    z = np.concatenate([z_all[ref_idx], z_all[is_q]])

    ctx.say("ScJEPA: held-out-donor annotation (probes, fine-tuning)")
    y_q = qry.obs[LABEL].astype(str).to_numpy()
    majority = pd.Series(ref.obs[LABEL].astype(str)).mode()[0]
    rows = [_f1_row("majority class (chance)", seed, f1_scores(y_q, [majority] * len(y_q)))]
    for name, emb, dt in (("PCA (50)", pcs, np.nan), ("ScJEPA zero-shot", z, train_s)):
        for probe in ("logistic", "knn"):
            res = annotation_f1(emb, lab, don, test, probe=probe)
            rows.append(_f1_row(f"{name}, {probe} probe", seed, res, dt))
    t0 = time.perf_counter()
    model.train_classifier(
        LABEL, max_epochs=st["ft_epochs"], batch_size=st["batch_size"], enable_progress_bar=False
    )
    ft_s = time.perf_counter() - t0
    rows.append(_f1_row("ScJEPA fine-tuned", seed, f1_scores(y_q, model.predict(qry)), ft_s))
    scores = pd.DataFrame(rows)

    adata.obsm["X_scjepa"] = z_all
    split = np.full(adata.n_obs, "reference (not trained on)", dtype=object)
    split[ref_idx] = "reference (trained on)"
    split[is_q] = "held-out query"
    adata.obs["scjepa_split"] = pd.Categorical(split)
    best = scores.set_index("method")["F1 macro"]
    text = [
        "Headline comparison of the scJEPA paper: annotate the cells of donors the model never "
        "saw, from a frozen embedding (zero-shot) or after fine-tuning, against PCA.",
        "",
        *markdown_table(scores),
        "",
        f"Kang 2018 unstimulated PBMC, {adata.n_obs:,} cells, {len(set(don))} donors; query "
        f"donors {', '.join(test)} ({int(is_q.sum()):,} cells), {len(ref_idx):,} reference "
        f"cells. ScJEPA paper architecture and defaults (λ = 0.05, γ = 10), {st['epochs']} "
        f"epochs (batch {st['batch_size']}), fine-tuning {st['ft_epochs']} epochs; seed {seed}. "
        "Probes: standardised logistic regression or 15-NN on the frozen embedding, fitted on "
        "the reference cells. F1 macro weighs the 8 cell types equally (rare dendritic cells "
        "and megakaryocytes count as much as CD4+ T cells); F1 micro = accuracy.",
        "",
        f"ScJEPA zero-shot (logistic) macro F1 {best['ScJEPA zero-shot, logistic probe']:.3f} "
        f"vs PCA {best['PCA (50), logistic probe']:.3f} and chance "
        f"{best['majority class (chance)']:.3f}. At this CPU budget PCA is a strong baseline "
        "on Kang (docs/benchmarks.md: longer runs give the same ordering); the paper's gains "
        "come from pretraining on far more cells.",
    ]
    return Section("ScJEPA", "\n".join(text), scores)


def _f1_row(method: str, seed: int, res, train_s: float = np.nan) -> dict:
    return {"method": method, "seed": seed, "F1 macro": float(res["f1_macro"]),
            "F1 micro": float(res["f1_micro"]), "train_s": train_s}  # fmt: skip


def weighted_purity(assignment, labels) -> float:
    """Fraction of cells carrying their cluster's majority label (cluster = prototype)."""
    tab = pd.crosstab(np.asarray(assignment), np.asarray(labels).astype(str))
    return float(tab.max(axis=1).sum() / tab.to_numpy().sum())


def scproto_section(ctx: DemoContext) -> Section:
    """ScProto: prototypes as metacells (purity, coverage of cell types, marker denoising).

    ScProto (paper defaults, ``K = clip(ceil(n_cells / 100), 10, 500)`` prototypes) is compared
    with k-means with the same ``K`` on 50 PCs of log1p CP10k: prototype/cluster purity,
    cell types that are the majority of at least one prototype (coverage, paper §4: rare
    populations), NMI/ARI with the cell types and scGraph Corr-Weighted of the embeddings
    (agreement of cell-type centroid distances with a per-donor PCA reference). Then the
    paper's Fig. 2 test: two-class F1 from single-cell markers, decoded-metacell markers and
    the embedding (:func:`cellpop.metrics.metacell_denoising_f1`).

    Sets ``ctx.metacells`` and adds ``obsm["X_scproto"]``, ``obsm["X_pca"]``,
    ``obs["scproto_prototype"]``, ``obs["kmeans_pca"]`` and ``uns["X_scproto_occupancy"]``
    (donor vectors: CLR of prototype occupancy) to ``ctx.kang``.
    """
    import scanpy as sc
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from cellpop.benchmark._scproto import _lognorm, _train_scproto
    from cellpop.metrics import (
        metacell_denoising_f1,
        rare_population_coverage,
        scgraph,
        scgraph_reference,
    )

    st = SCPROTO_QUICK if ctx.quick else SCPROTO_DEMO
    adata, seed = ctx.kang, ctx.seeds[0]
    labels = adata.obs[LABEL].astype(str).to_numpy()
    ctx.say(f"training ScProto on {adata.n_obs:,} cells")
    model, train_s = _train_scproto(
        adata.copy(), DONOR, LABEL, st["max_epochs"], seed, sample_key=DONOR
    )
    z = model.get_latent_representation()
    assign = model.get_prototype_assignment()
    k = int(model.module.prototypes.shape[0])

    ctx.say(f"ScProto: k-means baseline (K = {k}) on 50 PCs")
    ln = _lognorm(adata)
    sc.pp.pca(ln, n_comps=50, random_state=seed)
    t0 = time.perf_counter()
    km = KMeans(k, n_init=10, random_state=seed).fit_predict(ln.obsm["X_pca"])
    km_s = time.perf_counter() - t0

    ctx.say("ScProto: purity, coverage, scGraph, metacell markers")
    ln.obsm["ScProto"], ln.obsm["PCA"] = z, ln.obsm["X_pca"]
    sg = scgraph(
        ln, ["ScProto", "PCA"], DONOR, LABEL, reference=scgraph_reference(ln, DONOR, LABEL)
    )
    rows = []
    for name, assignment, emb, dt in (
        ("ScProto prototypes", assign, "ScProto", train_s),
        (f"k-means on PCA (K = {k})", km, "PCA", km_s),
    ):
        cov = rare_population_coverage(assignment, labels)
        rows.append(
            {"method": name, "seed": seed, "purity": weighted_purity(assignment, labels),
             "cell types covered": int(cov["covered"].sum()),
             "NMI": normalized_mutual_info_score(labels, assignment),
             "ARI": adjusted_rand_score(labels, assignment),
             "scGraph Corr-Weighted": float(sg.loc[emb, "corr_weighted"]), "train_s": dt}
        )  # fmt: skip
    cov = rare_population_coverage(assign, labels)
    uncovered = list(cov.index[~cov["covered"]])
    scores = pd.DataFrame(rows)
    metacells = model.get_metacells(library_size=1e4)
    den = metacell_denoising_f1(
        ln.X, np.log1p(metacells.X), assign, z, labels, ln.var_names, seed=seed
    )
    den_table = den.pivot(index="contrast", columns="representation", values="f1_macro")
    den_table = den_table[["single_cell", "metacell", "embedding"]]

    adata.obsm["X_scproto"], adata.obsm["X_pca"] = z, ln.obsm["X_pca"]
    adata.obs["scproto_prototype"] = pd.Categorical(assign)
    adata.obs["kmeans_pca"] = pd.Categorical(km)
    adata.uns["X_scproto_occupancy"] = model.get_sample_representation()
    ctx.metacells = metacells
    ctx.extra["scproto_prototypes"] = model.get_prototype_latent()
    n_types = len(np.unique(labels))
    text = [
        "Headline comparisons of the scProto paper: prototypes that are pure, cover rare cell "
        "types and decode into metacells with cleaner marker genes, against k-means with the "
        "same number of clusters.",
        "",
        *markdown_table(scores),
        "",
        f"Kang 2018, {adata.n_obs:,} cells, batch = donor; ScProto paper defaults (K = {k} "
        f"prototypes, 8-d latent), {st['max_epochs']} epochs, seed {seed}. Purity = share of "
        "cells carrying their prototype's majority cell type; covered = cell types that are "
        f"the majority of at least one prototype (of {n_types}); "
        f"{'none uncovered' if not uncovered else 'uncovered: ' + ', '.join(uncovered)}. "
        "scGraph's reference is a per-donor PCA, so PCA starts with an advantage there.",
        "",
        "Marker denoising (paper Fig. 2; macro F1 of a two-class logistic regression, 5-fold "
        "CV, from each cell's own marker genes, from its prototype's decoded metacell, and from "
        "the embedding; markers `cellpop.metrics.KANG_MARKERS`):",
        "",
        "| contrast | single-cell markers | metacell markers | ScProto embedding |",
        "|---|---|---|---|",
        *(
            f"| {c} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
            for c, row in den_table.iterrows()
        ),
        "",
        "`scproto_metacells.h5ad` holds the decoded metacells (CP10k), their majority cell "
        "type and purity; `metacell_dotplot.png` shows their marker genes. "
        + (
            "At this budget metacell markers score below single-cell markers in every contrast "
            "above: the decoder smooths the profiles (docs/scproto.md)."
            if (den_table.iloc[:, 1] < den_table.iloc[:, 0]).all()
            else "Metacell markers match or beat single-cell markers in at least one contrast "
            "above (denoising, paper §4.2)."
        ),
    ]
    return Section("ScProto", "\n".join(text), scores)
