"""scProto benchmark suite (paper §4): scGraph + scIB, rare-type coverage, metacell denoising.

Methods on each dataset (batch = donor): ScProto (paper defaults), ScProto without the
propagation loss, the scPoli-style CVAE alone (same code, prototype losses off), scvi-tools
SCVI and PCA (50 components of log1p CP10k). Run with ``cellpop benchmark scproto``.
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


def _train_scproto(adata, batch_key, label_key, epochs, seed, sample_key=None, **kw):
    import scvi

    from cellpop.model import ScProto

    scvi.settings.seed = seed
    ScProto.setup_anndata(
        adata, layer="counts", batch_key=batch_key, labels_key=label_key, sample_key=sample_key
    )
    model = ScProto(adata, **kw)
    t0 = time.perf_counter()
    model.train(max_epochs=epochs, early_stopping=False, enable_progress_bar=False)
    return model, time.perf_counter() - t0


def _train_scvi(adata, batch_key, epochs, seed):
    import scvi

    scvi.settings.seed = seed
    scvi.model.SCVI.setup_anndata(adata, layer="counts", batch_key=batch_key)
    model = scvi.model.SCVI(adata)
    t0 = time.perf_counter()
    model.train(max_epochs=epochs, enable_progress_bar=False, batch_size=512)
    return model, time.perf_counter() - t0


def run(out_dir, data_dir=None, seeds=(0,), quick: bool = False, datasets=None) -> pd.DataFrame:
    """Run the scProto suite and write CSV tables into ``out_dir``.

    Parameters
    ----------
    out_dir
        Output directory (created): ``scproto_embeddings.csv`` (scGraph + scIB per method),
        ``scproto_coverage.csv`` (rare-type coverage with/without the propagation loss),
        ``scproto_denoising.csv`` (metacell denoising F1, Kang).
    data_dir
        Directory of the curated ``.h5ad`` files (default: ``$CELLPOP_DATA_DIR`` / cache).
    seeds
        Training seeds.
    quick
        10 training epochs instead of 100 (CPU smoke runs).
    datasets
        Subset of :data:`DATASETS` names (default: all).

    Returns
    -------
    The embedding table (one row per dataset, seed and method).
    """
    import anndata  # noqa: F401
    import scanpy as sc

    from cellpop.metrics import (
        metacell_denoising_f1,
        rare_population_coverage,
        scgraph,
        scgraph_reference,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = 10 if quick else 100
    rows, cov_rows, den_rows = [], [], []
    for name, (_, batch_key, label_key) in DATASETS.items():
        if datasets is not None and name not in datasets:
            continue
        logger.info("scproto benchmark: %s", name)
        raw = _load(name, data_dir)
        ln = _lognorm(raw)
        sc.pp.pca(ln, n_comps=50, random_state=0)
        ref = scgraph_reference(ln, batch_key, label_key)
        for seed in seeds:
            emb, times = {"PCA": ln.obsm["X_pca"]}, {"PCA": np.nan}
            variants = {
                "ScProto": {},
                "ScProto (no propagation)": {"propagation_weight": 0.0},
                "CVAE (no prototype losses)": {"swav_weight": 0.0, "propagation_weight": 0.0},
            }
            models = {}
            for label, kw in variants.items():
                m, t = _train_scproto(raw.copy(), batch_key, label_key, epochs, seed, **kw)
                models[label], emb[label], times[label] = m, m.get_latent_representation(), t
            m, t = _train_scvi(raw.copy(), batch_key, epochs, seed)
            emb["scVI"], times["scVI"] = m.get_latent_representation(), t
            for label, z in emb.items():
                ln.obsm[f"emb_{label}"] = np.asarray(z)
            keys = [f"emb_{k}" for k in emb]
            sg = scgraph(ln, keys, batch_key, label_key, reference=ref)
            from cellpop.metrics._integration import integration_scores

            scib = integration_scores(ln, batch_key, label_key, keys)
            scib = scib[["Batch correction", "Bio conservation", "Total"]]
            for label in emb:
                k = f"emb_{label}"
                row = {"dataset": name, "seed": seed, "method": label, "epochs": epochs}
                row.update(sg.loc[k].to_dict())
                if k in scib.index:
                    row.update(scib.loc[k].to_dict())
                row["train_seconds"] = times[label]
                rows.append(row)
            for label in ("ScProto", "ScProto (no propagation)"):
                cov = rare_population_coverage(
                    models[label].get_prototype_assignment(), raw.obs[label_key].to_numpy()
                )
                cov = cov.reset_index(names="cell_type")
                cov.insert(0, "method", label)
                cov.insert(0, "seed", seed)
                cov.insert(0, "dataset", name)
                cov_rows.append(cov)
            if name == "kang2018_ctrl":
                m = models["ScProto"]
                meta = np.log1p(m.get_metacells(library_size=1e4).X)
                den = metacell_denoising_f1(
                    ln.X,
                    meta,
                    m.get_prototype_assignment(),
                    emb["ScProto"],
                    raw.obs[label_key].to_numpy(),
                    ln.var_names,
                    seed=seed,
                )
                extra = []
                for label in ("CVAE (no prototype losses)", "scVI"):
                    d2 = metacell_denoising_f1(
                        ln.X,
                        meta,
                        m.get_prototype_assignment(),
                        emb[label],
                        raw.obs[label_key].to_numpy(),
                        ln.var_names,
                        seed=seed,
                    )
                    d2 = d2[d2.representation == "embedding"].copy()
                    d2["representation"] = f"embedding ({label})"
                    extra.append(d2)
                den = pd.concat([den, *extra], ignore_index=True)
                den.insert(0, "seed", seed)
                den_rows.append(den)
        _write(out, rows, cov_rows, den_rows)
    return pd.DataFrame(rows)


def _write(out: Path, rows, cov_rows, den_rows) -> None:
    pd.DataFrame(rows).to_csv(out / "scproto_embeddings.csv", index=False)
    if cov_rows:
        pd.concat(cov_rows).to_csv(out / "scproto_coverage.csv", index=False)
    if den_rows:
        pd.concat(den_rows).to_csv(out / "scproto_denoising.csv", index=False)
