"""PopulationJEPA (SC-JEPA) benchmark suite: paper 000 Table 1 on the shared data.

``run(out_dir, data_dir=None, seeds=(0, 1, 2), quick=False)``:

* **integration**: ``kang2018_ctrl`` (8 SLE donors) + ``onek1k`` (40 healthy donors), genes
  matched by Ensembl ID, ``dataset`` = source; log1p CP10k, 50 PCs of the combined cells
  (``obsm["X_pca"]``, the input of PopulationJEPA and of pooled PCA). Batch: silhouette and
  Leiden-ARI (resolution 0.1) of the donor embeddings on ``dataset`` (lower = better mixed).
  Biology: ridge probe of the CLR proportions of the cell types both sources annotate
  (:data:`SHARED_TYPES`), 5-fold by donor. Disease is not scored here: every Kang donor has SLE
  and every OneK1K donor is healthy, so a disease SVM would only find the dataset.
* **disease**: ``stephenson2021_covid`` (16 COVID-19, 4 healthy donors, the authors' 50 PCs):
  linear-SVM precision/recall of COVID-19 (4-fold by donor), the leave-one-donor-out logistic
  probe AUROC of the demo, and the CLR probe of the 18 author cell types.

Methods: pooled PCA (mean of the 50 PCs), pooled scVI (integration only: Stephenson ships no
counts; ``batch_key`` = dataset), CLR cell-type composition, PopulationJEPA (``"jepa"``) and its
JEA variant (``"jea"``, DINOv2-like). The models are a CPU-budget configuration
(:data:`SETTINGS`, smaller than the paper's 8 + 4 layers). Outputs in ``out_dir``:
``population_jepa_scores.csv`` (one row per dataset, method and seed),
``population_jepa_curves.csv`` (validation/train loss per epoch) and
``population_jepa_curves_<dataset>.png``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from cellpop.benchmark._demo import quiet, summarize

logger = logging.getLogger(__name__)

#: CPU budget (2 cores): d_model 64, 2 + 2 layers, 128 cells per set, lr 1e-3 (the paper:
#: 8 + 4 layers, width and set size not given). Epochs chosen from the learning curves (pooled
#: scVI: 150, where its validation ELBO is within ~2 % of its plateau on Kang + OneK1K).
SETTINGS = dict(
    d_model=64, n_heads=4, n_layers=2, predictor_layers=2, n_cells=128, lr=1e-3,
    max_epochs=150, train_size=0.9, scvi_epochs=150, seeds=(0, 1, 2), neighbors_method="umap",
)  # fmt: skip
QUICK_SETTINGS = dict(
    d_model=16, n_heads=2, n_layers=1, predictor_layers=1, n_cells=32, lr=1e-3,
    max_epochs=2, train_size=0.75, scvi_epochs=1, seeds=(0,), neighbors_method="gauss",
)  # fmt: skip
#: Cell Ontology terms annotated in both Kang 2018 and OneK1K (memory B cell, CL:0000787, is
#: counted as B cell, CL:0000236, its is_a parent); other cells are left out of the CLR
#: sub-composition (they exist in one source only).
SHARED_TYPES = {
    "CL:0000624": "CD4-positive, alpha-beta T cell",
    "CL:0000860": "classical monocyte",
    "CL:0000875": "non-classical monocyte",
    "CL:0000236": "B cell",
}
_TO_PARENT = {"CL:0000787": "CL:0000236"}
DONOR, DATASET, CT = "donor_id", "dataset", "cell_type_ontology_term_id"


def integration_data(data_dir=None) -> ad.AnnData:
    """Kang 2018 (ctrl) + OneK1K on their shared Ensembl IDs.

    Returns
    -------
    AnnData ``(n_cells, n_shared_genes)``: ``X`` = log1p of counts per 10k,
    ``layers["counts"]``, ``obsm["X_pca"]`` (50 PCs of ``X``), ``obs``: ``donor_id``
    (``"<dataset>:<donor>"``), ``dataset``, ``cell_type_ontology_term_id``, ``disease``.

    Raises
    ------
    ValueError
        If the two datasets share fewer than 50 genes.
    """
    from cellpop import datasets

    parts = {"kang2018_ctrl": datasets.kang2018_ctrl(data_dir), "onek1k": datasets.onek1k(data_dir)}
    return combine_datasets(parts)


def combine_datasets(parts: dict[str, ad.AnnData], n_comps: int = 50) -> ad.AnnData:
    """Concatenate datasets on the Ensembl IDs in ``var["gene_ids"]`` they share, log-normalise
    (``normalize_total`` to 1e4 + ``log1p``) and add ``obsm["X_pca"]`` (``n_comps`` PCs).

    Raises
    ------
    ValueError
        If the datasets share fewer than ``n_comps`` genes.
    """
    import scanpy as sc

    shared = None
    for a in parts.values():
        ids = pd.Index(a.var["gene_ids"].astype(str))
        shared = ids if shared is None else shared.intersection(ids)
    if len(shared) < n_comps:
        raise ValueError(f"The datasets share {len(shared)} Ensembl IDs; need >= {n_comps}.")
    pieces = []
    for name, a in parts.items():
        a = a[:, pd.Index(a.var["gene_ids"].astype(str)).get_indexer(shared)].copy()
        counts = a.layers["counts"] if "counts" in a.layers else a.X
        obs = pd.DataFrame(
            {
                DONOR: (name + ":" + a.obs[DONOR].astype(str)).to_numpy(),
                DATASET: name,
                CT: a.obs[CT].astype(str).to_numpy(),
                "disease": a.obs["disease"].astype(str).to_numpy(),
            },
            index=name + ":" + a.obs_names.astype(str),
        )
        pieces.append(ad.AnnData(sparse.csr_matrix(counts, dtype=np.float32), obs=obs))
    out = ad.concat(pieces)
    out.var_names = shared
    for col in (DONOR, DATASET, CT, "disease"):
        out.obs[col] = out.obs[col].astype("category")
    out.layers["counts"] = out.X.copy()
    sc.pp.normalize_total(out, target_sum=1e4)
    sc.pp.log1p(out)
    out.obsm["X_pca"] = sc.pp.pca(out.X, n_comps=n_comps, random_state=0)
    return out


def _shared_clr(adata: ad.AnnData) -> pd.DataFrame:
    from cellpop import tl

    terms = adata.obs[CT].astype(str).replace(_TO_PARENT)
    keep = terms.isin(list(SHARED_TYPES)).to_numpy()
    sub = adata[keep].copy()
    sub.obs["ct_shared"] = pd.Categorical(terms[keep])
    return tl.cell_type_composition(sub, DONOR, "ct_shared", transform="clr")


def _train_popjepa(adata, objective: str, seed: int, s: dict, dataset_key=None):
    import scvi

    from cellpop.model import PopulationJEPA

    scvi.settings.seed = seed
    a = adata.copy()
    PopulationJEPA.setup_anndata(a, sample_key=DONOR, obsm_key="X_pca", dataset_key=dataset_key)
    model = PopulationJEPA(
        a, objective=objective, d_model=s["d_model"], n_heads=s["n_heads"],
        n_layers=s["n_layers"], predictor_layers=s["predictor_layers"],
    )  # fmt: skip
    t0 = time.perf_counter()
    model.train(
        max_epochs=s["max_epochs"], train_size=s["train_size"], early_stopping=False, plan_kwargs={"lr": s["lr"]},
        datasplitter_kwargs={"n_cells": (s["n_cells"], s["n_cells"])}, enable_progress_bar=False,
    )  # fmt: skip
    dt = time.perf_counter() - t0
    keys = [k for k in ("validation_loss", "train_loss") if k in model.history]
    hist = {k: model.history[k].to_numpy().ravel() for k in keys}
    return model.get_sample_representation(), dt, hist


def _integration_scores(rep, meta, clr, seed, s) -> dict:
    from cellpop.metrics import composition_probe, dataset_silhouette, leiden_ari

    ari, n_clusters = leiden_ari(
        rep, meta[DATASET], resolution=0.1, seed=seed, neighbors_method=s["neighbors_method"]
    )
    out = {
        "silhouette (dataset)": dataset_silhouette(rep, meta[DATASET]),
        "Leiden ARI r=0.1 (dataset)": ari,
        "Leiden clusters": n_clusters,
    }
    if clr is not None:
        probe = composition_probe(rep, clr, n_splits=5)
        out.update({"CT MSE": probe["mse"], "CT R2": probe["r2"]})
    return out


def _disease_scores(rep, meta, clr, seed, s) -> dict:
    from cellpop.metrics import composition_probe, loo_probe, svm_scores

    svm = svm_scores(rep, meta["disease"], positive="COVID-19", n_splits=5, seed=seed)
    out = {
        "COVID-19 recall": svm["recall"],
        "COVID-19 precision": svm["precision"],
        "LOO probe AUROC (disease)": loo_probe(rep, meta["disease"]),
    }
    if clr is not None:
        probe = composition_probe(rep, clr, n_splits=5)
        out.update({"CT MSE": probe["mse"], "CT R2": probe["r2"]})
    return out


def evaluate(
    adata: ad.AnnData,
    task: str,
    settings: dict,
    seeds: Sequence[int],
    say: Callable[[str], None],
    composition: pd.DataFrame,
    with_scvi: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the baselines and both PopulationJEPA objectives on one dataset.

    Parameters
    ----------
    adata
        Cells with ``obs["donor_id"]``, ``obsm["X_pca"]`` and, for ``task="integration"``,
        ``obs["dataset"]`` and ``layers["counts"]``; for ``task="disease"``, ``obs["disease"]``.
    task
        ``"integration"`` (batch metrics on ``dataset`` + CLR probe) or ``"disease"`` (COVID-19
        SVM, probe AUROC, CLR probe).
    settings
        :data:`SETTINGS`-like dict.
    seeds
        Training seeds.
    say
        Progress callback.
    composition
        CLR cell-type composition per donor (the probe target and the composition baseline).
    with_scvi
        Add pooled scVI (needs ``layers["counts"]``).

    Returns
    -------
    ``(scores, curves)``: one row per (method, seed); one row per (method, seed, epoch).

    Raises
    ------
    ValueError
        If ``task`` is unknown.
    """
    from cellpop import tl

    if task not in ("integration", "disease"):
        raise ValueError(f"task={task!r} must be 'integration' or 'disease'.")
    majority = [DATASET] if task == "integration" else []
    meta = tl.sample_metadata(adata, DONOR, majority_keys=majority)
    score = _integration_scores if task == "integration" else _disease_scores
    dataset_key = DATASET if task == "integration" else None
    rows, curves = [], []

    def add(method, seed, rep, dt, clr=composition):
        rows.append({"task": task, "method": method, "seed": seed,
                     **score(rep, meta, clr, max(seed, 0), settings), "train_s": dt})  # fmt: skip

    say(f"{task}: baselines")
    add("Pooled-PCA", -1, tl.pseudobulk(adata, DONOR, obsm_key="X_pca"), np.nan)
    add("Cell-type proportions (CLR)", -1, composition, np.nan, clr=None)
    for seed in seeds:
        if with_scvi:
            say(f"{task}: pooled scVI (seed {seed})")
            t0 = time.perf_counter()
            rep = tl.pooled_scvi(
                adata, DONOR, layer="counts", batch_key=DATASET, max_epochs=settings["scvi_epochs"],
                seed=seed,
            )  # fmt: skip
            add("Pooled-VAE (scVI)", seed, rep, time.perf_counter() - t0)
        for objective, name in (("jepa", "PopulationJEPA"), ("jea", "JEA (DINOv2-like)")):
            say(f"{task}: {name} (seed {seed})")
            rep, dt, hist = _train_popjepa(adata, objective, seed, settings, dataset_key)
            add(name, seed, rep, dt)
            for key, values in hist.items():
                for epoch, v in enumerate(values):
                    curves.append({"task": task, "method": name, "seed": seed, "curve": key,
                                   "epoch": epoch, "loss": float(v)})  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(curves)


def plot_curves(curves: pd.DataFrame, path: Path) -> None:
    """Validation (solid) and train (dotted) loss per epoch, one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 3.5), squeeze=False)
    for ax, method in zip(axes[0], methods):
        sub = curves[curves["method"] == method]
        for (seed, key), c in sub.groupby(["seed", "curve"]):
            style = "-" if key == "validation_loss" else ":"
            ax.plot(c["epoch"], c["loss"], style, color=f"C{seed}", label=f"{key} s{seed}")
        ax.set_title(f"{curves['task'].iloc[0]}: {method}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    out_dir: str | Path = "cellpop_benchmark",
    data_dir: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    tasks: Sequence[str] = ("integration", "disease"),
) -> pd.DataFrame:
    """Run the suite (see the module docstring) and write its files to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder (created).
    data_dir
        Curated data folder (default ``$CELLPOP_DATA_DIR`` / the cellpop cache).
    seeds
        Training seeds (default 0, 1, 2; quick: 0).
    quick
        Tiny models and 2 epochs (smoke test).
    progress
        Callback receiving a message at each step.
    tasks
        Subset of ``("integration", "disease")``.

    Returns
    -------
    The summary table (mean ± sd over seeds) per task and method.
    """
    from cellpop import datasets, tl

    quiet()
    say = progress or (lambda msg: logger.info(msg))
    settings = dict(QUICK_SETTINGS if quick else SETTINGS)
    seeds = tuple(seeds) if seeds is not None else settings["seeds"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    all_scores, all_curves = [], []
    for task in tasks:
        if task == "integration":
            adata = integration_data(data_dir)
            comp = _shared_clr(adata)
        else:
            adata = datasets.stephenson2021_covid(data_dir)
            comp = tl.cell_type_composition(adata, DONOR, "cell_type", transform="clr")
        scores, curves = evaluate(
            adata, task, settings, seeds, say, comp, with_scvi=task == "integration"
        )
        all_scores.append(scores)
        all_curves.append(curves)
        plot_curves(curves, out / f"population_jepa_curves_{task}.png")
    scores = pd.concat(all_scores, ignore_index=True)
    scores.to_csv(out / "population_jepa_scores.csv", index=False)
    pd.concat(all_curves, ignore_index=True).to_csv(out / "population_jepa_curves.csv", index=False)
    return summary(scores)


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds per (task, method), as strings (``"–"`` = not applicable)."""
    tables = []
    for task, sub in scores.groupby("task", sort=False):
        t = summarize(sub.drop(columns="task").dropna(axis=1, how="all"))
        t.index = pd.MultiIndex.from_product([[task], t.index], names=["task", "method"])
        tables.append(t)
    return pd.concat(tables)
