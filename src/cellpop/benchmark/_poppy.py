"""POPPY benchmark suite: paper 004 §3.3-3.4 (cross-modal alignment, cohort integration,
composition preservation) on the shared data.

``run(out_dir, data_dir=None, seeds=(0, 1, 2), quick=False)``:

* **data**: single cells of ``kang2018_ctrl`` (8 SLE donors) + ``onek1k`` (40 donors), two
  cohorts, joined on their shared Ensembl IDs (:func:`~cellpop.benchmark._population_jepa.
  combine_datasets`; named by Kang's gene symbols so that the bulk files match); per-cell input
  = 20 PCs of log1p CP10k. Bulk: each sample's pseudobulk and one in-silico mixture of the
  ``hoek2015_sorted_bulk`` populations with the sample's proportions
  (:func:`cellpop.tl.paired_bulk`, types matched through Cell-Ontology ancestors). 80/20 split
  by sample (the model's own split).
* **POPPY**: soft labels ``S`` = Cell-Ontology EMD kernel with ``k`` = 5 (``docs/poppy.md``:
  the paper's k = 100 is n - 1 = 47 here and flat); ablation ``k = 0``: identity soft labels
  (no ontology, CLIP-like). Untrained encoders (same seed, no step) as the "without alignment"
  reference of §3.3.
* **scores** (:mod:`cellpop.metrics._cross_modal`): recall@k of the held-out samples' own
  pseudobulk from their cell-set embedding and back (chance ``k / n_held_out``); cosine
  silhouette of the pseudobulk embeddings on cohort and of pseudobulk + in-silico embeddings on
  assay (lower = mixed); Spearman between pseudobulk-embedding distances and the samples'
  Cell-Ontology EMD (all, within-cohort and across-cohort pairs; all 48 samples, and the
  held-out ones); on the real whole-blood bulk of ``cibersortx_wholeblood_bulk`` (12 donors),
  Spearman between bulk-embedding distances and the distances of the measured leukocyte
  fractions (L1 of the neutrophil / lymphocyte / monocyte differential, and the Cell-Ontology
  EMD of an 8-type partition, :data:`WHOLE_BLOOD_PARTITION`).
* **baseline**: PCA of log1p CPM of the same bulk profiles (Euclidean), on the model's genes
  and, for the whole blood, on all its genes.

Outputs in ``out_dir``: ``poppy_scores.csv`` (one row per method and seed),
``poppy_curves.csv`` and ``poppy_curves.png`` (validation / train loss per epoch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cellpop.benchmark._demo import quiet, summarize
from cellpop.benchmark._population_jepa import CT, DATASET, DONOR, combine_datasets, plot_curves

logger = logging.getLogger(__name__)

#: The model's defaults (200 epochs, warm-up + cosine, up to 1,000 cells per set and step: Kang
#: samples have 408-2,738 cells, OneK1K 85-318); the validation loss plateaus from epoch ~140
#: (``docs/figures/poppy_curves.png``).
SETTINGS = dict(
    max_epochs=200, n_cells=(1000, 1000), train_size=0.8, k=5, n_pcs=20, n_bulk_pcs=10,
    seeds=(0, 1, 2), variants=(5, 0), ks=(1, 3, 5),
)  # fmt: skip
QUICK_SETTINGS = dict(
    max_epochs=30, n_cells=(300, 500), train_size=0.8, k=5, n_pcs=20, n_bulk_pcs=10,
    seeds=(0,), variants=(5,), ks=(1, 3, 5),
)  # fmt: skip
#: The whole-blood fractions (hierarchical: T/B/NK are parts of the lymphocytes, CD4/CD8 of the
#: T cells) as a partition of leukocytes: remainders go to the parent term.
WHOLE_BLOOD_PARTITION = {
    "CL:0000775": ["neutrophil"],
    "CL:0000576": ["monocyte"],
    "CL:0000624": ["CD4_T_cell"],
    "CL:0000625": ["CD8_T_cell"],
    "CL:0000084": ["T_cell", "-CD4_T_cell", "-CD8_T_cell"],
    "CL:0000236": ["B_cell"],
    "CL:0000623": ["NK_cell"],
    "CL:0000542": ["lymphocyte", "-T_cell", "-B_cell", "-NK_cell"],
}
PSEUDOBULK, IN_SILICO = "pseudobulk", "in_silico"


def shared_data(data_dir=None, n_pcs: int = 20, ontology=None):
    """Cells of Kang 2018 + OneK1K and their paired bulk profiles, as POPPY's MuData.

    Returns
    -------
    MuData: ``rna`` ``(n_cells, n_shared_genes)`` (gene symbols; ``layers["counts"]``,
    ``obsm["X_pca"]`` with ``n_pcs`` PCs, ``obs`` ``donor_id`` / ``dataset`` / CL IDs) and
    ``bulk`` (pseudobulk + in-silico rows, ``obs["source"]``, ``obs["donor_id"]``).
    """
    import mudata as md

    from cellpop import datasets
    from cellpop.ontology import CellOntology
    from cellpop.tl import paired_bulk

    co = ontology if ontology is not None else CellOntology(data_dir=data_dir)
    parts = {"kang2018_ctrl": datasets.kang2018_ctrl(data_dir), "onek1k": datasets.onek1k(data_dir)}
    rna = combine_datasets(parts, n_comps=n_pcs)
    kang = parts["kang2018_ctrl"].var
    symbol = pd.Series(kang.index.astype(str), index=kang["gene_ids"].astype(str))
    rna.var_names = pd.Index(symbol.loc[rna.var_names].to_numpy())
    rna.var_names_make_unique()
    rna.obsm["X_pca"] = np.asarray(rna.obsm["X_pca"], dtype=np.float32)
    hoek = datasets.hoek2015_sorted_bulk(data_dir)
    hoek = hoek[hoek.obs[CT] != "CL:2000001"].copy()  # PBMC is a mixture, not a population
    anc = {t: co.ancestors(t) for t in rna.obs[CT].cat.categories}
    bulk = paired_bulk(
        rna, DONOR, CT, layer="counts", sorted_bulk=hoek, sorted_cell_type_key=CT, ancestors=anc
    )
    bulk.obs[DONOR] = bulk.obs[DONOR].astype("category")
    return md.MuData({"rna": rna, "bulk": bulk})


def whole_blood_references(wb, ontology) -> dict[str, pd.DataFrame]:
    """Distances between the measured compositions of the whole-blood samples.

    Returns
    -------
    ``{"L1": ..., "EMD": ...}``: L1 between the neutrophil / lymphocyte / monocyte fractions
    (they sum to 1), and the Cell-Ontology EMD between the 8-type partitions of
    :data:`WHOLE_BLOOD_PARTITION` (negative remainders, from rounding, clipped to 0; rows
    renormalised). Square DataFrames indexed by the sample names.
    """
    from cellpop.metrics import as_distance
    from cellpop.ontology import composition_distances

    fr = wb.obsm["cell_type_fractions"].astype(float)
    fr.index = fr.index.astype(str)
    l1 = as_distance(fr[["neutrophil", "lymphocyte", "monocyte"]], "cityblock")
    part = whole_blood_partition(fr)
    D = composition_distances(part, ontology.prune(part.columns))
    return {"L1": l1, "EMD": pd.DataFrame(D, index=part.index, columns=part.index)}


def whole_blood_partition(fractions: pd.DataFrame) -> pd.DataFrame:
    """The hierarchical whole-blood fractions as a partition over CL terms.

    Parameters
    ----------
    fractions
        ``obsm["cell_type_fractions"]`` of ``cibersortx_wholeblood_bulk`` (columns of
        :data:`WHOLE_BLOOD_PARTITION`).

    Returns
    -------
    DataFrame ``(n, 8)``, CL ID columns, rows summing to 1: negative remainders (rounding)
    clipped to 0 and rows renormalised.
    """
    part = pd.DataFrame(
        {term: sum(-fractions[c[1:]] if c[0] == "-" else fractions[c] for c in cols)
         for term, cols in WHOLE_BLOOD_PARTITION.items()}
    ).clip(lower=0)  # fmt: skip
    return part.div(part.sum(1), axis=0)


def log_cpm_pca(X, index, n_comps: int = 10) -> pd.DataFrame:
    """PCA of ``log1p`` counts per million of bulk profiles ``X`` ``(n, G)`` (the baseline).

    Returns
    -------
    DataFrame ``(n, min(n_comps, n - 1))`` indexed by ``index``.
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    lg = np.log1p(X / X.sum(1, keepdims=True) * 1e6)
    pcs = PCA(min(n_comps, len(X) - 1), random_state=0).fit_transform(lg)
    return pd.DataFrame(pcs, index=pd.Index(index).astype(str))


def _bulk_scores(zb, zin, D, cohorts, val, wb_z, wb_refs, metric) -> dict:
    """Scores of a bulk embedding: silhouettes, Spearman vs EMD and vs measured fractions."""
    from cellpop.metrics import dataset_silhouette, distance_correlation

    out = {"cohort silhouette": dataset_silhouette(zb, cohorts, metric=metric)}
    if zin is not None:
        both = pd.concat([zb, zin.set_axis(zin.index + "|in_silico")])
        assay = pd.Series([PSEUDOBULK] * len(zb) + [IN_SILICO] * len(zin), index=both.index)
        out["assay silhouette"] = dataset_silhouette(both, assay, metric=metric)
    rho = distance_correlation(zb, D, cohorts, metric=metric)
    out.update({f"rho EMD {s}": rho[s] for s in ("all", "within", "across")})
    out["rho EMD held-out"] = distance_correlation(zb.loc[val], D, metric=metric)["all"]
    for name, ref in wb_refs.items():
        out[f"WB rho {name}"] = distance_correlation(wb_z, ref, metric=metric)["all"]
    return out


class _Evaluation:
    """Data, references and scoring shared by every method and seed."""

    def __init__(self, data_dir, settings: dict, say):
        from cellpop import datasets
        from cellpop.model import POPPY
        from cellpop.ontology import CellOntology, composition_distances
        from cellpop.tl import cell_type_composition

        self.s, self.say = settings, say
        self.co = CellOntology(data_dir=data_dir)
        say("building the cells + bulk MuData")
        self.m = shared_data(data_dir, settings["n_pcs"], self.co)
        POPPY.setup_mudata(
            self.m, sample_key=DONOR, cell_type_key=CT, cohort_key=DATASET, rna_obsm_key="X_pca"
        )
        rna, bulk = self.m.mod["rna"], self.m.mod["bulk"]
        comp = cell_type_composition(rna, DONOR, CT)
        comp.index = comp.index.astype(str)
        self.D = pd.DataFrame(
            composition_distances(comp, self.co.prune(comp.columns)), comp.index, comp.index
        )
        self.cohorts = rna.obs.groupby(DONOR, observed=True)[DATASET].first().astype(str)
        self.cohorts.index = self.cohorts.index.astype(str)
        src = bulk.obs["source"].to_numpy()
        self.pb, self.ins = bulk[src == PSEUDOBULK], bulk[src == IN_SILICO]
        self.wb = datasets.cibersortx_wholeblood_bulk(data_dir)
        self.wb_refs = whole_blood_references(self.wb, self.co)

    def _donors(self, z: pd.DataFrame, part) -> pd.DataFrame:
        return z.set_axis(part.obs[DONOR].astype(str).to_numpy())

    def baselines(self, val, seed: int) -> list[dict]:
        """log-CPM PCA rows (deterministic; ``seed`` labels the held-out split ``val``)."""
        n = self.s["n_bulk_pcs"]
        zb = self._donors(log_cpm_pca(self.pb.X, self.pb.obs_names, n), self.pb)
        zin = self._donors(log_cpm_pca(self.ins.X, self.ins.obs_names, n), self.ins)
        genes = self.pb.var_names.intersection(self.wb.var_names)
        wb_z = log_cpm_pca(self.wb[:, genes].X, self.wb.obs_names, n)
        row = {"method": "log-CPM PCA (model genes)", "seed": seed}
        row.update(
            _bulk_scores(zb, zin, self.D, self.cohorts, val, wb_z, self.wb_refs, "euclidean")
        )
        wb_all = log_cpm_pca(self.wb.X, self.wb.obs_names, n)
        from cellpop.metrics import distance_correlation

        full = {"method": f"log-CPM PCA (whole blood, all {self.wb.n_vars} genes)", "seed": seed}
        for name, ref in self.wb_refs.items():
            full[f"WB rho {name}"] = distance_correlation(wb_all, ref, metric="euclidean")["all"]
        return [row, full]

    def score(self, model, method: str, seed: int) -> dict:
        from cellpop.metrics import cross_modal_recall

        val = pd.Index(model.validation_samples_).astype(str)
        zc = model.get_sample_representation()
        zc.index = zc.index.astype(str)
        zb = self._donors(model.get_sample_representation(self.pb, modality="bulk"), self.pb)
        zin = self._donors(model.get_sample_representation(self.ins, modality="bulk"), self.ins)
        wb_z = model.get_sample_representation(self.wb, modality="bulk")
        row = {"method": method, "seed": seed}
        r = cross_modal_recall(zc.loc[val], zb, self.s["ks"])
        row.update({k: v for k, v in r.items() if "chance" not in k and k != "n_samples"})
        row.update(_bulk_scores(zb, zin, self.D, self.cohorts, val, wb_z, self.wb_refs, "cosine"))
        row["rho EMD cell sets"] = _rho(zc, self.D)
        return row


def _rho(z, D) -> float:
    from cellpop.metrics import distance_correlation

    return distance_correlation(z, D, metric="cosine")["all"]


def _train(ev: _Evaluation, seed: int, k: int):
    """Train POPPY (``k = 0``: identity soft labels); the model, its seconds and curves."""
    import scvi

    from cellpop.model import POPPY

    s = ev.s
    scvi.settings.seed = seed
    model = POPPY(ev.m)
    S = model.sample_similarity(ev.co, k=max(k, 1))
    if k == 0:
        S = pd.DataFrame(np.eye(len(S)), index=S.index, columns=S.columns)
    t0 = time.perf_counter()
    model.train(
        max_epochs=s["max_epochs"], similarity=S, train_size=s["train_size"],
        n_cells=s["n_cells"], early_stopping=False, enable_progress_bar=False,
    )  # fmt: skip
    dt = time.perf_counter() - t0
    hist = {c: model.history[c].to_numpy().ravel() for c in ("validation_loss", "train_loss")}
    return model, dt, hist


def evaluate(
    ev: _Evaluation, seeds: Sequence[int], out: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baselines, untrained encoders and POPPY for every seed and ``variants`` entry (``k``;
    ``0`` = identity soft labels).

    Parameters
    ----------
    ev
        Data and scoring.
    seeds
        Training seeds.
    out
        When given, ``poppy_scores.csv`` and ``poppy_curves.csv`` are rewritten there after
        every method (a stopped run keeps what it finished).

    Returns
    -------
    ``(scores, curves)``: one row per (method, seed); one row per (method, seed, curve, epoch).
    """
    import scvi

    from cellpop.model import POPPY

    s, rows, curves = ev.s, [], []

    def save():
        if out is not None:
            pd.DataFrame(rows).to_csv(out / "poppy_scores.csv", index=False)
            pd.DataFrame(curves).to_csv(out / "poppy_curves.csv", index=False)

    for seed in seeds:
        for k in s["variants"]:
            name = f"POPPY (ontology S, k={k})" if k else "POPPY (identity S, k=0)"
            ev.say(f"{name}, seed {seed}: {s['max_epochs']} epochs")
            model, dt, hist = _train(ev, seed, k)
            row = ev.score(model, name, seed)
            row["embedding std"] = float(model.history["embedding_std_train"].iloc[-1, 0])
            rows.append({**row, "train_s": dt})
            for key, values in hist.items():
                curves += [{"task": "POPPY", "method": name, "seed": seed, "curve": key,
                            "epoch": e, "loss": float(v)} for e, v in enumerate(values)]  # fmt: skip
            save()
        scvi.settings.seed = seed  # same architecture and seed, no training step
        ref = POPPY(ev.m)
        ref.is_trained_, ref.validation_samples_ = True, model.validation_samples_
        rows.append(ev.score(ref, "POPPY untrained", seed))
        rows += ev.baselines(pd.Index(model.validation_samples_).astype(str), seed)
        save()
    return pd.DataFrame(rows), pd.DataFrame(curves)


def run(
    out_dir: str | Path = "cellpop_benchmark",
    data_dir: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    variants: Sequence[int] | None = None,
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
        30 epochs, one seed, no ablation (a test-sized run, < 1 min).
    progress
        Callback receiving a message at each step.
    variants
        Kernel neighbours ``k`` of the POPPY runs (``0``: identity soft labels, the ablation
        without ontology); default ``(5, 0)``, quick ``(5,)``.

    Returns
    -------
    The summary table (mean ± sd over seeds) per method.
    """
    quiet()
    say = progress or (lambda msg: logger.info(msg))
    settings = dict(QUICK_SETTINGS if quick else SETTINGS)
    if variants is not None:
        settings["variants"] = tuple(int(k) for k in variants)
    seeds = tuple(seeds) if seeds is not None else settings["seeds"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev = _Evaluation(data_dir, settings, say)
    scores, curves = evaluate(ev, seeds, out)
    plot_curves(curves, out / "poppy_curves.png")
    return summarize(scores)
