"""ScJEPA benchmark suite: λ/γ sweep, held-out-donor annotation (paper Tables 1, 4), scIB.

``run(out_dir, data_dir=None, seeds=(0, 1, 2), quick=False)`` on :data:`SETTINGS` ``datasets``
(default ``kang2018_ctrl``; ``onek1k`` is also known):

* donors are split once per seed; 25 % of the donors (at least 2) are held out as the query;
* **sweep** (:func:`sweep`, Kang only): λ × γ on reference donors, probe F1 on 2 validation
  donors (the held-out donors are excluded entirely);
* **annotation** (macro/micro F1 on the held-out donors): a standardised logistic-regression
  probe on frozen embeddings fitted on the reference donors ("zero-shot": the query is embedded
  by the reference model without training on it) for ScJEPA, its ablations "w/o
  reconstruction" (γ = 0) and "w/o JEPA/SIGReg" (reconstruction only, paper Table 4), PCA
  (50 components of log1p CP10k, fitted on the reference) and scvi-tools SCVI (trained on the
  reference cells, no batch key, query embedded by it); "fine-tuned" = the ScJEPA encoder +
  linear head trained on reference labels (``ScJEPA.train_classifier``), predicting the query;
* every ScJEPA row carries the **collapse monitor** of its last epoch on the validation cells
  (``proj_std``, ``latent_std``, ``sim_loss``, ``sigreg_loss``; see ``ScJEPAModule.loss``);
* **integration** (optional, scib-metrics, batch = donor, label = cell type,
  ``min_max_scale=False``) on a cell subsample of all donors: ScJEPA (reference model; query
  cells zero-shot), PCA, and SCVI trained on all cells with ``batch_key`` = donor.

Every model trains for a fixed number of epochs (no early stopping) with 10 % of the reference
cells as validation cells, so the learning curves (``validation_loss``, ``train_loss``) show
whether the budget reaches a plateau; SCVI uses its own early stopping on the validation ELBO.
Outputs in ``out_dir``: ``scjepa_annotation.csv`` (one row per dataset, seed, method),
``scjepa_sweep.csv``, ``scjepa_curves.csv`` and ``scjepa_curves.png``, optionally
``scjepa_integration.csv``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
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

#: CPU budget (2 cores shared with ~40 other processes; docs/benchmarks.md "ScJEPA"): 600
#: subsampled reference cells, batch 64, 10 % validation cells, 40 epochs (320 steps; the
#: validation loss changes by < 0.3 % over the last 10 epochs on Kang; the paper's pretraining
#: budget is far larger) and a smaller model (``model_kwargs``: encoder 256-128-64, 4 masked
#: views, 64 SIGReg directions, as ``tests/test_scjepa.py``'s real-data test; ``{}`` = the
#: paper's architecture). ``scvi_max_epochs`` caps SCVI, which stops early.
SETTINGS = dict(
    datasets=("kang2018_ctrl",), seeds=(0, 1, 2), epochs=40, batch_size=64,
    max_train_cells=600, train_size=0.9, ft_epochs=10, scvi_max_epochs=50,
    model_kwargs={"n_hidden": (256, 128), "n_views": 4, "num_directions": 64},
    sweep=True, sweep_lambdas=(0.05, 0.2), sweep_gammas=(1.0, 10.0, 50.0), sweep_seeds=(0,),
    integration=False, n_integration=3000,
    methods=("ScJEPA zero-shot", "ScJEPA w/o reconstruction", "ScJEPA w/o JEPA/SIGReg", "SCVI"),
)  # fmt: skip
QUICK_SETTINGS = dict(
    SETTINGS, seeds=(0,), epochs=1, max_train_cells=1000, ft_epochs=1, scvi_max_epochs=2,
    sweep_lambdas=(0.05,), sweep_gammas=(10.0,), n_integration=1000,
)  # fmt: skip
#: Ablations of paper Table 4 as ScJEPA keyword arguments.
VARIANTS = {
    "ScJEPA zero-shot": {},
    "ScJEPA w/o reconstruction": {"gamma_recon": 0.0},
    "ScJEPA w/o JEPA/SIGReg": {"use_jepa": False},
}
#: Collapse monitor columns: last-epoch validation values of these ``history`` keys.
MONITORS = ("proj_std", "latent_std", "sim_loss", "sigreg_loss")


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


def _train_scjepa(ref: ad.AnnData, seed: int, epochs: int, batch_size: int,
                  train_size: float = 0.9, **kw) -> ScJEPA:  # fmt: skip
    """ScJEPA on ``ref`` counts for exactly ``epochs`` epochs (no early stopping)."""
    scvi.settings.seed = seed
    ref = ref.copy()
    ScJEPA.setup_anndata(ref, layer="counts", sample_key=DONOR)
    model = ScJEPA(ref, **kw)
    model.train(max_epochs=epochs, batch_size=batch_size, train_size=train_size,
                early_stopping=False, enable_progress_bar=False)  # fmt: skip
    return model


def monitors(history: dict) -> dict[str, float]:
    """Collapse monitor at the end of training: the last-epoch validation value of each
    :data:`MONITORS` key (``"<key> (val)"``), NaN where the run has no validation cells."""
    out = {}
    for key in MONITORS:
        df = history.get(f"{key}_validation")
        out[f"{key} (val)"] = float(df.to_numpy()[-1, 0]) if df is not None and len(df) else np.nan
    return out


def curve_rows(history: dict, **labels) -> list[dict]:
    """Per-epoch ``validation_loss`` / ``train_loss`` rows (``curve``, ``epoch``, ``loss``)
    of a scvi-tools ``history``, each tagged with ``labels``; SCVI's ``train_loss_epoch`` is
    read as ``train_loss``."""
    rows = []
    for curve, keys in (("validation_loss", ("validation_loss",)),
                        ("train_loss", ("train_loss", "train_loss_epoch"))):  # fmt: skip
        key = next((k for k in keys if k in history), None)
        if key is None:
            continue
        for epoch, v in enumerate(history[key].to_numpy()[:, 0]):
            rows.append({**labels, "curve": curve, "epoch": epoch, "loss": float(v)})
    return rows


def scvi_embedding(ref: ad.AnnData, qry: ad.AnnData, seed: int, max_epochs: int):
    """SCVI baseline: scvi-tools SCVI (defaults, no batch key) trained on the reference counts
    with early stopping on the validation ELBO (10 % of the cells), at most ``max_epochs``.

    Returns
    -------
    ``(embedding, history)``: latent means, reference cells then query cells, shape
    ``(n_ref + n_qry, 10)``, and the model's ``history``.
    """
    scvi.settings.seed = seed
    r = ref.copy()
    scvi.model.SCVI.setup_anndata(r, layer="counts")
    model = scvi.model.SCVI(r)
    model.train(max_epochs=max_epochs, train_size=0.9, early_stopping=True,
                enable_progress_bar=False)  # fmt: skip
    q = qry.copy()
    z = np.concatenate([model.get_latent_representation(), model.get_latent_representation(q)])
    return z, model.history


def _split(adata: ad.AnnData, seed: int, max_train_cells: int):
    test = heldout_donors(adata, seed)
    is_q = adata.obs[DONOR].astype(str).isin(test).to_numpy()
    ref_all = np.flatnonzero(~is_q)
    rng = np.random.default_rng(seed)
    ref_idx = np.sort(rng.choice(ref_all, min(max_train_cells, len(ref_all)), replace=False))
    return test, adata[ref_idx].copy(), adata[is_q].copy()


def sweep(
    data_dir=None, settings: dict | None = None, say=None, save=None
) -> tuple[pd.DataFrame, list]:
    """λ × γ sweep on Kang: train on reference donors, probe validation donors.

    For each seed of ``settings["sweep_seeds"]`` the benchmark's held-out donors
    (``heldout_donors(adata, seed)``) are excluded entirely; 2 of the remaining donors are
    validation donors for the probe; ``max_train_cells`` cells of the others train ScJEPA for
    ``epochs`` epochs. Returns one row per (λ, γ, seed) with macro/micro F1, the collapse
    monitor and the training time, and the learning-curve rows; ``save(rows, curves)``, when
    given, is called after each point.
    """
    s = dict(SETTINGS if settings is None else settings)
    say = say or logger.info
    adata = load_dataset("kang2018_ctrl", data_dir)
    rows, curves = [], []
    for seed in s["sweep_seeds"]:
        test = heldout_donors(adata, seed)
        a = adata[~adata.obs[DONOR].isin(test)].copy()
        rest = sorted(a.obs[DONOR].astype(str).unique())
        val = sorted(np.random.default_rng(seed + 1).choice(rest, 2, replace=False).tolist())
        is_val = a.obs[DONOR].isin(val).to_numpy()
        rng = np.random.default_rng(seed)
        n = min(s["max_train_cells"], int((~is_val).sum()))
        ref_idx = rng.choice(np.flatnonzero(~is_val), n, False)
        ref, qry = a[np.sort(ref_idx)].copy(), a[is_val].copy()
        lab = np.concatenate([ref.obs[LABEL].astype(str), qry.obs[LABEL].astype(str)])
        don = np.concatenate([ref.obs[DONOR].astype(str), qry.obs[DONOR].astype(str)])
        for lam in s["sweep_lambdas"]:
            for gam in s["sweep_gammas"]:
                say(f"sweep: lambda={lam}, gamma={gam} (seed {seed})")
                t = time.perf_counter()
                m = _train_scjepa(ref, seed, s["epochs"], s["batch_size"], s["train_size"],
                                  **s["model_kwargs"], lambda_sigreg=lam,
                                  gamma_recon=gam)  # fmt: skip
                dt = time.perf_counter() - t
                z = np.concatenate([m.get_latent_representation(),
                                    m.get_latent_representation(qry)])  # fmt: skip
                res = annotation_f1(z, lab, don, val)
                rows.append({"lambda": lam, "gamma": gam, "seed": seed,
                             "f1_macro": res["f1_macro"], "f1_micro": res["f1_micro"],
                             **monitors(m.history), "train_s": round(dt, 1)})  # fmt: skip
                curves += curve_rows(m.history, task="sweep", method=f"λ={lam}, γ={gam}",
                                     seed=seed)  # fmt: skip
                if save is not None:
                    save(pd.DataFrame(rows), curves)
    return pd.DataFrame(rows), curves


def _one(adata, name: str, seed: int, s: dict, say: Callable[[str], None], save=None):
    """Annotation rows, curve rows and (``s["integration"]``) scIB rows of one split;
    ``save(rows, curves)``, when given, is called after each method."""
    test, ref, qry = _split(adata, seed, s["max_train_cells"])
    lab = np.concatenate([ref.obs[LABEL].astype(str), qry.obs[LABEL].astype(str)])
    don = np.concatenate([ref.obs[DONOR].astype(str), qry.obs[DONOR].astype(str)])
    rows, curves, embs = [], [], {}

    def add(method, res, dt, extra=None):
        rows.append({"dataset": name, "seed": seed, "method": method,
                     "f1_macro": res["f1_macro"], "f1_micro": res["f1_micro"],
                     **(extra or {}), "train_s": round(dt, 1), "n_ref_train": ref.n_obs,
                     "n_query": qry.n_obs})  # fmt: skip
        if save is not None:
            save(pd.DataFrame(rows), curves)

    t = time.perf_counter()
    embs["PCA"] = pca_embedding(ref, qry, seed)
    add("PCA (50)", annotation_f1(embs["PCA"], lab, don, test), time.perf_counter() - t)
    for method, kw in VARIANTS.items():
        if method not in s["methods"]:
            continue
        say(f"{name}: {method} (seed {seed})")
        t = time.perf_counter()
        m = _train_scjepa(ref, seed, s["epochs"], s["batch_size"], s["train_size"],
                          **{**s["model_kwargs"], **kw})  # fmt: skip
        dt = time.perf_counter() - t
        z = np.concatenate([m.get_latent_representation(), m.get_latent_representation(qry)])
        mon = monitors(m.history)
        curves += curve_rows(m.history, task=name, method=method, seed=seed)
        add(method, annotation_f1(z, lab, don, test), dt, mon)
        if method == "ScJEPA zero-shot":
            embs["ScJEPA"] = z
            t = time.perf_counter()
            m.train_classifier(LABEL, max_epochs=s["ft_epochs"], batch_size=s["batch_size"])
            dt = time.perf_counter() - t
            res = f1_scores(qry.obs[LABEL].astype(str), m.predict(qry))
            add("ScJEPA fine-tuned", res, dt, mon)  # monitor of the pretrained encoder
    if "SCVI" in s["methods"]:
        say(f"{name}: SCVI (seed {seed})")
        t = time.perf_counter()
        z, hist = scvi_embedding(ref, qry, seed, s["scvi_max_epochs"])
        curves += curve_rows(hist, task=name, method="SCVI", seed=seed)
        add("SCVI (10)", annotation_f1(z, lab, don, test), time.perf_counter() - t)
    integ = _integration(adata, ref, qry, embs, name, seed, s) if s["integration"] else None
    return pd.DataFrame(rows), curves, integ


def _integration(adata, ref, qry, embs, name, seed, s) -> pd.DataFrame:
    """scIB on ``n_integration`` cells of reference subsample + query; SCVI with donor batches
    trained on all cells of ``adata``."""
    rng = np.random.default_rng(seed)
    allc = ad.concat([ref, qry])
    allc.X = _lognorm(allc)
    sub = np.sort(rng.choice(allc.n_obs, min(s["n_integration"], allc.n_obs), replace=False))
    scvi.settings.seed = seed
    full = adata.copy()
    scvi.model.SCVI.setup_anndata(full, layer="counts", batch_key=DONOR)
    sv = scvi.model.SCVI(full)
    sv.train(max_epochs=s["scvi_max_epochs"], early_stopping=True, enable_progress_bar=False)
    pos = pd.Index(adata.obs_names).get_indexer(allc.obs_names)
    embs = {**embs, "SCVI (batch = donor)": sv.get_latent_representation()[pos]}
    view = allc[sub].copy()
    for k, v in embs.items():
        view.obsm[k] = v[sub]
    integ = integration_scores(view, DONOR, LABEL, list(embs))
    integ.insert(0, "dataset", name)
    integ.insert(1, "seed", seed)
    integ["n_cells"] = view.n_obs
    return integ


def run(
    out_dir: str | Path = "cellpop_benchmark",
    data_dir: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    **overrides,
) -> pd.DataFrame:
    """Run the suite (see the module docstring); write its files to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder (created).
    data_dir
        Folder with the curated ``.h5ad`` files (default: ``$CELLPOP_DATA_DIR``/cache).
    seeds
        One donor split + training seed each (default :data:`SETTINGS` ``seeds``, 0, 1, 2;
        quick: 0). The sweep uses ``sweep_seeds``.
    quick
        :data:`QUICK_SETTINGS`: 1 epoch, 1,000 training cells, one sweep point (smoke run).
    progress
        Callback receiving a message at each step.
    **overrides
        Keys of :data:`SETTINGS` (e.g. ``epochs=60``, ``datasets=("onek1k",)``,
        ``sweep=False``, ``integration=True``, ``methods=("SCVI",)``: a subset of the
        ScJEPA variants and SCVI; PCA always runs, the fine-tuned row comes with
        ``"ScJEPA zero-shot"``).

    Returns
    -------
    The annotation table, mean ± sd over seeds per (dataset, method), as strings.

    Raises
    ------
    KeyError
        On an override that is not a key of :data:`SETTINGS`.
    """
    from cellpop.benchmark._common import output_dir, suite_settings
    from cellpop.benchmark._demo import quiet, summarize
    from cellpop.benchmark._population_jepa import plot_curves

    s = suite_settings("ScJEPA", QUICK_SETTINGS if quick else SETTINGS, overrides, seeds)
    quiet()
    say = progress or logger.info
    out = output_dir(out_dir)
    curves = []

    def saver(table_name: str, done: list, done_curves: list):
        def save(rows: pd.DataFrame, new_curves: list) -> None:  # partial results survive
            pd.concat([*done, rows]).to_csv(out / table_name, index=False)
            pd.DataFrame(done_curves + new_curves).to_csv(out / "scjepa_curves.csv", index=False)

        return save

    if s["sweep"]:
        table, c = sweep(data_dir, s, say, save=saver("scjepa_sweep.csv", [], []))
        curves += c
    ann, integ = [], []
    for name in s["datasets"]:
        adata = load_dataset(name, data_dir)
        for seed in s["seeds"]:
            a, c, i = _one(adata, name, seed, s, say, saver("scjepa_annotation.csv", ann, curves))
            ann.append(a)
            curves += c
            pd.concat(ann).to_csv(out / "scjepa_annotation.csv", index=False)
            if i is not None:
                integ.append(i)
                pd.concat(integ).to_csv(out / "scjepa_integration.csv")
    curves = pd.DataFrame(curves)
    curves.to_csv(out / "scjepa_curves.csv", index=False)
    if not ann:  # sweep only
        return table
    plot_curves(curves[curves["task"] != "sweep"], out / "scjepa_curves.png")
    scores = pd.concat(ann, ignore_index=True)
    tables = []
    for name, sub in scores.groupby("dataset", sort=False):
        t = summarize(sub.drop(columns=["dataset", "n_ref_train", "n_query"]))
        t.index = pd.MultiIndex.from_product([[name], t.index], names=["dataset", "method"])
        tables.append(t)
    return pd.concat(tables)
