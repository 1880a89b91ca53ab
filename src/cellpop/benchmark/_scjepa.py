"""ScJEPA benchmark suite: held-out-donor annotation (paper Tables 1, 4) and scIB integration.

``run(out_dir, data_dir=None, seeds=(0,), quick=False)`` on ``kang2018_ctrl`` and ``onek1k``:

* donors are split once per seed; 25 % of the donors (at least 2) are held out as the query;
* **annotation** (macro/micro F1 on the held-out donors): a standardised logistic-regression
  probe on frozen embeddings fitted on the reference donors ("zero-shot": the query is embedded
  by the reference model without training on it) for ScJEPA, its ablations "w/o
  reconstruction" (γ = 0) and "w/o JEPA/SIGReg" (reconstruction only), and PCA (50 components
  of log1p CP10k, fitted on the reference); "fine-tuned" = the ScJEPA encoder + linear head
  trained on reference labels (``ScJEPA.train_classifier``), predicting the query;
* **integration** (scib-metrics, batch = donor, label = cell type, ``min_max_scale=False``) on
  a cell subsample of all donors: ScJEPA (reference model; query cells zero-shot), PCA, and
  scvi-tools SCVI trained on all cells with ``batch_key`` = donor.

CPU budget: the reference is subsampled to ``max_train_cells`` cells for training; epochs are
``epochs`` (quick: 1). Results are written to ``out_dir/scjepa_annotation.csv`` and
``out_dir/scjepa_integration.csv``; the returned DataFrame is the annotation table.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scvi
from sklearn.decomposition import PCA

from cellpop.metrics import annotation_f1, f1_scores, integration_scores
from cellpop.model import ScJEPA

logger = logging.getLogger(__name__)

DATASETS = {"kang2018_ctrl": "kang2018_ctrl_8donors.h5ad", "onek1k": "onek1k_40donors.h5ad"}
DONOR, LABEL = "donor_id", "cell_type"


def load_dataset(name: str, data_dir=None) -> ad.AnnData:
    """Curated dataset via :mod:`cellpop.datasets`, else ``<data_dir or $CELLPOP_DATA_DIR>/<file>``."""
    try:
        import cellpop.datasets as ds

        return getattr(ds, name)(data_dir=data_dir)
    except (ImportError, AttributeError):
        root = Path(data_dir or os.environ.get("CELLPOP_DATA_DIR", "."))
        return ad.read_h5ad(root / DATASETS[name])


def heldout_donors(adata: ad.AnnData, seed: int, fraction: float = 0.25) -> list[str]:
    """Seeded choice of ``fraction`` of the donors (at least 2) as the held-out query."""
    donors = np.asarray(adata.obs[DONOR].astype(str).unique())
    n = max(2, int(round(fraction * len(donors))))
    return sorted(np.random.default_rng(seed).choice(donors, n, replace=False).tolist())


def _lognorm(adata: ad.AnnData) -> np.ndarray:
    tmp = ad.AnnData(adata.layers["counts"].copy())
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    return tmp.X


def pca_embedding(ref: ad.AnnData, qry: ad.AnnData, seed: int, n_comps: int = 50) -> np.ndarray:
    """PCA baseline: ``n_comps`` components of log1p CP10k (``layers["counts"]``) fitted on the
    reference cells; rows = reference cells then query cells, shape ``(n_ref + n_qry, n_comps)``."""
    pca = PCA(n_comps, random_state=seed).fit(_lognorm(ref).toarray())
    return np.concatenate([pca.transform(_lognorm(ref).toarray()),
                           pca.transform(_lognorm(qry).toarray())])  # fmt: skip


def _train_scjepa(ref: ad.AnnData, seed: int, epochs: int, batch_size: int, **kw) -> ScJEPA:
    scvi.settings.seed = seed
    ref = ref.copy()
    ScJEPA.setup_anndata(ref, layer="counts", sample_key=DONOR)
    model = ScJEPA(ref, **kw)
    model.train(max_epochs=epochs, batch_size=batch_size, enable_progress_bar=False)
    return model


def sweep(
    data_dir=None,
    lambdas=(0.05, 0.2),
    gammas=(1.0, 10.0, 50.0),
    epochs: int = 3,
    n_cells: int = 3000,
    batch_size: int = 256,
    seed: int = 0,
) -> pd.DataFrame:
    """Small λ × γ sweep on Kang: train on reference donors, probe validation donors.

    The benchmark's held-out donors (``heldout_donors(adata, seed)``) are excluded entirely;
    2 of the remaining donors are validation donors for the probe. Returns one row per
    (λ, γ) with macro/micro F1 and the training time.
    """
    adata = load_dataset("kang2018_ctrl", data_dir)
    test = heldout_donors(adata, seed)
    adata = adata[~adata.obs[DONOR].isin(test)].copy()
    rest = sorted(adata.obs[DONOR].astype(str).unique())
    val = sorted(np.random.default_rng(seed + 1).choice(rest, 2, replace=False).tolist())
    is_val = adata.obs[DONOR].isin(val).to_numpy()
    rng = np.random.default_rng(seed)
    ref_idx = rng.choice(np.flatnonzero(~is_val), min(n_cells, int((~is_val).sum())), False)
    ref, qry = adata[np.sort(ref_idx)].copy(), adata[is_val].copy()
    rows = []
    for lam in lambdas:
        for gam in gammas:
            t = time.perf_counter()
            m = _train_scjepa(ref, seed, epochs, batch_size, lambda_sigreg=lam, gamma_recon=gam)
            dt = time.perf_counter() - t
            emb = np.concatenate([m.get_latent_representation(), m.get_latent_representation(qry)])
            lab = np.concatenate([ref.obs[LABEL].astype(str), qry.obs[LABEL].astype(str)])
            don = np.concatenate([ref.obs[DONOR].astype(str), qry.obs[DONOR].astype(str)])
            res = annotation_f1(emb, lab, don, val)
            rows.append({"lambda": lam, "gamma": gam, "f1_macro": res["f1_macro"],
                         "f1_micro": res["f1_micro"], "train_s": dt})  # fmt: skip
            logger.info("sweep %s", rows[-1])
    return pd.DataFrame(rows)


def _one(adata, name, seed, epochs, batch_size, max_train_cells, n_integration, ft_epochs):
    test = heldout_donors(adata, seed)
    is_q = adata.obs[DONOR].astype(str).isin(test).to_numpy()
    rng = np.random.default_rng(seed)
    ref_all = np.flatnonzero(~is_q)
    ref_idx = np.sort(rng.choice(ref_all, min(max_train_cells, len(ref_all)), replace=False))
    ref, qry = adata[ref_idx].copy(), adata[is_q].copy()
    lab = np.concatenate([ref.obs[LABEL].astype(str), qry.obs[LABEL].astype(str)])
    don = np.concatenate([ref.obs[DONOR].astype(str), qry.obs[DONOR].astype(str)])
    rows, embs = [], {}

    def add(method, res, dt):
        rows.append({"dataset": name, "seed": seed, "method": method,
                     "f1_macro": res["f1_macro"], "f1_micro": res["f1_micro"],
                     "train_s": round(dt, 1), "n_ref_train": len(ref_idx),
                     "n_query": int(is_q.sum())})  # fmt: skip

    t = time.perf_counter()
    pc = pca_embedding(ref, qry, seed)
    add("PCA (50)", annotation_f1(pc, lab, don, test), time.perf_counter() - t)
    variants = {
        "ScJEPA zero-shot": {},
        "ScJEPA w/o reconstruction": {"gamma_recon": 0.0},
        "ScJEPA w/o JEPA/SIGReg": {"use_jepa": False},
    }
    for method, kw in variants.items():
        t = time.perf_counter()
        m = _train_scjepa(ref, seed, epochs, batch_size, **kw)
        dt = time.perf_counter() - t
        z = np.concatenate([m.get_latent_representation(), m.get_latent_representation(qry)])
        add(method, annotation_f1(z, lab, don, test), dt)
        if method == "ScJEPA zero-shot":
            embs["ScJEPA"] = z
            t = time.perf_counter()
            m.train_classifier(LABEL, max_epochs=ft_epochs, batch_size=batch_size)
            dt = time.perf_counter() - t
            add("ScJEPA fine-tuned", f1_scores(qry.obs[LABEL].astype(str), m.predict(qry)), dt)
    embs["PCA"] = pc

    # integration on a subsample of all cells (reference subsample + query)
    allc = ad.concat([ref, qry])
    allc.X = _lognorm(allc)
    sub = np.sort(rng.choice(allc.n_obs, min(n_integration, allc.n_obs), replace=False))
    scvi.settings.seed = seed
    full = adata.copy()
    scvi.model.SCVI.setup_anndata(full, layer="counts", batch_key=DONOR)
    t = time.perf_counter()
    sv = scvi.model.SCVI(full)
    sv.train(max_epochs=max(10, 4 * epochs), enable_progress_bar=False)
    z_scvi = sv.get_latent_representation()
    pos = pd.Index(adata.obs_names).get_indexer(allc.obs_names)
    embs["SCVI"] = z_scvi[pos]
    view = allc[sub].copy()
    for k, v in embs.items():
        view.obsm[k] = v[sub]
    integ = integration_scores(view, DONOR, LABEL, list(embs))
    integ.insert(0, "dataset", name)
    integ.insert(1, "seed", seed)
    integ["n_cells"] = view.n_obs
    return pd.DataFrame(rows), integ


def run(out_dir, data_dir=None, seeds=(0,), quick=False, epochs: int = 6,
        batch_size: int = 256, max_train_cells: int = 4000,
        n_integration: int = 3000) -> pd.DataFrame:  # fmt: skip
    """Run the suite on both datasets; write CSVs to ``out_dir``; return the annotation table.

    Parameters
    ----------
    out_dir
        Output folder (created).
    data_dir
        Folder with the curated ``.h5ad`` files (default: ``$CELLPOP_DATA_DIR``/cache).
    seeds
        One donor split + training seed each.
    quick
        1 epoch, 1,000 training cells, 1,000 integration cells (smoke run).
    epochs, batch_size, max_train_cells, n_integration
        CPU budget (see module docstring).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if quick:
        epochs, max_train_cells, n_integration = 1, 1000, 1000
    ann, integ = [], []
    for name in DATASETS:
        adata = load_dataset(name, data_dir)
        for seed in seeds:
            a, i = _one(adata, name, seed, epochs, batch_size, max_train_cells, n_integration,
                        ft_epochs=1 if quick else 10)  # fmt: skip
            ann.append(a)
            integ.append(i)
            pd.concat(ann).to_csv(out / "scjepa_annotation.csv", index=False)
            pd.concat(integ).to_csv(out / "scjepa_integration.csv")
    return pd.concat(ann, ignore_index=True)
