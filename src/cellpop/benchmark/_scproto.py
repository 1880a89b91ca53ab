"""scProto benchmark suite (paper §4): scGraph + scIB, rare-type coverage, metacell denoising.

Methods on each dataset (batch = donor): ScProto (paper defaults), ScProto without the
propagation loss, the scPoli-style CVAE alone (same code, prototype losses off), scvi-tools
SCVI and PCA (50 components of log1p CP10k). Run with ``cellpop benchmark scproto``.

Every trained model's per-epoch validation loss is kept (``scproto_curves.csv``, and a PNG of
the learning curves), so that the budget can be checked for a plateau; metacells are also scored
by how strongly they carry their cell type's marker genes (:func:`marker_log2_fold`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

DATASETS = {
    # name: (loader, batch_key, label_key)
    "kang2018_ctrl": ("kang2018_ctrl", "donor_id", "cell_type"),
    "onek1k": ("onek1k", "donor_id", "cell_type"),
}


def _load(name: str, data_dir):
    from cellpop import datasets

    return getattr(datasets, DATASETS[name][0])(data_dir)


def _lognorm(adata):
    import scanpy as sc
    from anndata import AnnData

    out = AnnData(X=adata.layers["counts"].copy(), obs=adata.obs.copy(), var=adata.var.copy())
    sc.pp.normalize_total(out, target_sum=1e4)
    sc.pp.log1p(out)
    return out


def _train_scproto(
    adata, batch_key, label_key, epochs, seed, sample_key=None, plan_kwargs=None, **kw
):
    import scvi

    from cellpop.model import ScProto

    scvi.settings.seed = seed
    ScProto.setup_anndata(
        adata, layer="counts", batch_key=batch_key, labels_key=label_key, sample_key=sample_key
    )
    model = ScProto(adata, **kw)
    t0 = time.perf_counter()
    model.train(
        max_epochs=epochs, early_stopping=False, enable_progress_bar=False,
        plan_kwargs=plan_kwargs,
    )  # fmt: skip
    return model, time.perf_counter() - t0


def _train_scvi(adata, batch_key, epochs, seed):
    import scvi

    scvi.settings.seed = seed
    scvi.model.SCVI.setup_anndata(adata, layer="counts", batch_key=batch_key)
    model = scvi.model.SCVI(adata)
    t0 = time.perf_counter()
    model.train(
        max_epochs=epochs, enable_progress_bar=False, batch_size=512, check_val_every_n_epoch=1
    )
    return model, time.perf_counter() - t0


def _subsample(adata, n_cells: int | None):
    """``n_cells`` cells drawn without replacement (fixed seed 0, so every training seed sees
    the same cells); all cells when ``n_cells`` is None or not smaller than the data."""
    if n_cells is None or n_cells >= adata.n_obs:
        return adata
    keep = np.sort(np.random.default_rng(0).choice(adata.n_obs, n_cells, replace=False))
    return adata[keep].copy()


def marker_log2_fold(
    cell_cp10k: np.ndarray,
    cell_labels: np.ndarray,
    profiles: np.ndarray,
    profile_labels: np.ndarray,
    n_markers: int = 5,
) -> pd.Series:
    """How strongly profiles of each cell type carry that type's marker genes.

    Markers of type ``t`` = the ``n_markers`` genes with the largest
    ``log2((mean_t + 1) / (mean_rest + 1))`` in the single cells (``mean_rest`` = mean over the
    other types' mean profiles). Score of ``t`` = mean over its markers of
    ``log2((mean over profiles labelled t + 1) / (mean over profiles of other labels + 1))``.
    Applied to the cells themselves it gives the data's own contrast; applied to metacells
    (labelled by majority type) it measures how much of it they keep (0: mean profile).

    Parameters
    ----------
    cell_cp10k
        Single cells, per-cell normalised to 10,000 (CP10k), shape ``(n_cells, n_genes)``, dense.
    cell_labels
        Cell type per cell, shape ``(n_cells,)``.
    profiles
        Profiles to score in CP10k, shape ``(n_profiles, n_genes)`` (cells or metacells).
    profile_labels
        Label per profile, shape ``(n_profiles,)``; ``"unassigned"`` profiles are ignored.
    n_markers
        Markers per type.

    Returns
    -------
    Score per cell type present among ``profile_labels`` (log2 units).
    """
    cell_labels, profile_labels = np.asarray(cell_labels), np.asarray(profile_labels)
    types = sorted(set(cell_labels))
    means = np.stack([cell_cp10k[cell_labels == t].mean(0) for t in types])
    out = {}
    for i, t in enumerate(types):
        own = profiles[profile_labels == t]
        other = profiles[(profile_labels != t) & (profile_labels != "unassigned")]
        if len(own) == 0 or len(other) == 0:
            continue
        rest = np.delete(means, i, 0).mean(0)
        genes = np.argsort(-np.log2((means[i] + 1) / (rest + 1)))[:n_markers]
        fold = np.log2((own[:, genes].mean(0) + 1) / (other[:, genes].mean(0) + 1))
        out[t] = float(fold.mean())
    return pd.Series(out, dtype=float)


def _history(model, method: str, key: str) -> pd.DataFrame:
    h = model.history[key]
    return pd.DataFrame(
        {
            "method": method,
            "epoch": np.arange(len(h)),
            "validation_loss": h.to_numpy(dtype=float).ravel(),
        }
    )


def plot_curves(curves: pd.DataFrame, path) -> None:
    """Validation loss per epoch (mean over seeds, band = min-max), one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3), squeeze=False)
    for ax, method in zip(axes[0], methods):
        g = curves[curves["method"] == method].groupby("epoch")["validation_loss"]
        mean, lo, hi = g.mean(), g.min(), g.max()
        ax.plot(mean.index, mean.to_numpy(), lw=1.2)
        ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), alpha=0.3)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("validation loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    out_dir,
    data_dir=None,
    seeds=(0,),
    quick: bool = False,
    datasets=None,
    n_cells: int | None = None,
    max_epochs: int | None = None,
    propagation_ablation: bool = True,
) -> pd.DataFrame:
    """Run the scProto suite and write CSV tables into ``out_dir``.

    Parameters
    ----------
    out_dir
        Output directory (created): ``scproto_embeddings.csv`` (scGraph + scIB per method),
        ``scproto_coverage.csv`` (rare-type coverage per ScProto variant),
        ``scproto_denoising.csv`` (metacell denoising F1, Kang), ``scproto_markers.csv``
        (metacell marker log2 fold per cell type, :func:`marker_log2_fold`),
        ``scproto_curves.csv`` and ``scproto_curves.png`` (validation loss per epoch).
    data_dir
        Directory of the curated ``.h5ad`` files (default: ``$CELLPOP_DATA_DIR`` / cache).
    seeds
        Training seeds.
    quick
        10 training epochs instead of 100 (CPU smoke runs).
    datasets
        Subset of :data:`DATASETS` names (default: all).
    n_cells
        Subsample every dataset to this many cells (fixed seed 0; default: all cells).
    max_epochs
        Training epochs of every model (overrides ``quick``).
    propagation_ablation
        Also train ScProto without the propagation loss.

    Returns
    -------
    The embedding table (one row per dataset, seed and method).
    """
    import scanpy as sc

    from cellpop.metrics import (
        metacell_denoising_f1,
        rare_population_coverage,
        scgraph,
        scgraph_reference,
    )
    from cellpop.metrics._integration import integration_scores

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = max_epochs or (10 if quick else 100)
    variants = {"ScProto": {}}
    if propagation_ablation:
        variants["ScProto (no propagation)"] = {"propagation_weight": 0.0}
    variants["CVAE (no prototype losses)"] = {"swav_weight": 0.0, "propagation_weight": 0.0}
    tables = {k: [] for k in ("embeddings", "coverage", "denoising", "markers", "curves")}
    for name, (_, batch_key, label_key) in DATASETS.items():
        if datasets is not None and name not in datasets:
            continue
        logger.info("scproto benchmark: %s", name)
        raw = _subsample(_load(name, data_dir), n_cells)
        labels = raw.obs[label_key].astype(str).to_numpy()
        counts = raw.layers["counts"]
        counts = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts)
        cp10k = counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4
        ln = _lognorm(raw)
        sc.pp.pca(ln, n_comps=50, random_state=0)
        ref = scgraph_reference(ln, batch_key, label_key)
        for seed in seeds:
            emb, times, models = {"PCA": ln.obsm["X_pca"]}, {"PCA": np.nan}, {}
            for label, kw in variants.items():
                m, t = _train_scproto(raw.copy(), batch_key, label_key, epochs, seed, **kw)
                models[label], emb[label], times[label] = m, m.get_latent_representation(), t
                curve = _history(m, label, "validation_loss")
                curves = [curve]
                if m.module.uses_prototype_losses:
                    curves.append(_history(m, f"{label}: CVAE term", "cvae_loss_validation"))
                for c in curves:
                    c.insert(0, "seed", seed)
                    c.insert(0, "dataset", name)
                    tables["curves"].append(c)
            m, t = _train_scvi(raw.copy(), batch_key, epochs, seed)
            emb["scVI"], times["scVI"] = m.get_latent_representation(), t
            c = _history(m, "scVI", "elbo_validation")
            c.insert(0, "seed", seed)
            c.insert(0, "dataset", name)
            tables["curves"].append(c)
            for label, z in emb.items():
                ln.obsm[f"emb_{label}"] = np.asarray(z)
            keys = [f"emb_{k}" for k in emb]
            sg = scgraph(ln, keys, batch_key, label_key, reference=ref)
            scib = integration_scores(ln, batch_key, label_key, keys)
            scib = scib[["Batch correction", "Bio conservation", "Total"]]
            for label in emb:
                k = f"emb_{label}"
                row = {"dataset": name, "seed": seed, "method": label, "epochs": epochs}
                row["n_cells"] = raw.n_obs
                row.update(sg.loc[k].to_dict())
                if k in scib.index:
                    row.update(scib.loc[k].to_dict())
                row["train_seconds"] = times[label]
                tables["embeddings"].append(row)
            fold_rows = {"single cells": marker_log2_fold(cp10k, labels, cp10k, labels)}
            for label, m in models.items():
                assign = m.get_prototype_assignment()
                cov = rare_population_coverage(assign, labels).reset_index(names="cell_type")
                for col, v in (("dataset", name), ("seed", seed), ("method", label))[::-1]:
                    cov.insert(0, col, v)
                tables["coverage"].append(cov)
                mc = m.get_metacells(library_size=1e4)
                major = mc.obs["majority_label"].astype(str).to_numpy()
                fold_rows[f"{label} metacells"] = marker_log2_fold(cp10k, labels, mc.X, major)
            fold = pd.DataFrame(fold_rows).T.rename_axis("profiles").reset_index()
            fold.insert(0, "seed", seed)
            fold.insert(0, "dataset", name)
            tables["markers"].append(fold)
            if name == "kang2018_ctrl":
                tables["denoising"].append(
                    _denoising(metacell_denoising_f1, ln, models["ScProto"], emb, labels, seed)
                )
            _write(out, tables)
    return pd.DataFrame(tables["embeddings"])


def _denoising(metacell_denoising_f1, ln, model, emb, labels, seed) -> pd.DataFrame:
    """Paper §4.2 F1 from single-cell / metacell markers and embeddings (ScProto, CVAE, scVI)."""
    meta = np.log1p(model.get_metacells(library_size=1e4).X)
    assign = model.get_prototype_assignment()
    parts = []
    for label in ("ScProto", "CVAE (no prototype losses)", "scVI"):
        d = metacell_denoising_f1(ln.X, meta, assign, emb[label], labels, ln.var_names, seed=seed)
        if label != "ScProto":
            d = d[d.representation == "embedding"].copy()
            d["representation"] = f"embedding ({label})"
        parts.append(d)
    den = pd.concat(parts, ignore_index=True)
    den.insert(0, "seed", seed)
    return den


def _write(out: Path, tables: dict) -> None:
    pd.DataFrame(tables["embeddings"]).to_csv(out / "scproto_embeddings.csv", index=False)
    for key in ("coverage", "denoising", "markers", "curves"):
        if tables[key]:
            pd.concat(tables[key]).to_csv(out / f"scproto_{key}.csv", index=False)
    if tables["curves"]:
        plot_curves(pd.concat(tables["curves"]), out / "scproto_curves.png")
