"""POPPY smoke run on the shared real data: recall@k of the matching pseudobulk, held-out samples.

Cells: Kang 2018 (8 donors) + OneK1K (40 donors), two cohorts; per-cell input = 20 PCs of the
log-normalised counts on the genes the two share. Bulk: each sample's pseudobulk and an
in-silico mixture of Hoek 2015 sorted populations with the sample's proportions (shared types
matched through the Cell Ontology), on the genes shared with Hoek. S = Cell-Ontology EMD kernel.
Evaluation: for the held-out (validation) samples, rank every held-out pseudobulk by cosine to
each sample's cell-set embedding (and back); recall@k; chance = k / n_held_out. Also the real
whole-blood bulk of CIBERSORTx: Spearman between bulk-embedding distances and the L1 distances
of the measured fractions. Cohort silhouette of the pseudobulk embeddings (all 48 samples,
cosine; lower = cohorts better mixed, §3.3).

Usage: ``CELLPOP_DATA_DIR=/work/shared/data python benchmarks/poppy_smoke.py [epochs] [k]``
(``k = 0``: identity soft labels, the ablation without the ontology)
"""

from __future__ import annotations

import os
import sys
import time

import mudata as md
import numpy as np
import pandas as pd
import scvi
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.metrics import silhouette_score

import cellpop
from cellpop.benchmark._demo_poppy import build_mudata, pair_recall
from cellpop.model import POPPY
from cellpop.ontology import CellOntology

CT = "cell_type_ontology_term_id"


def build(data_dir: str, co: CellOntology) -> md.MuData:
    return build_mudata(
        cellpop.datasets.kang2018_ctrl(data_dir=data_dir),
        cellpop.datasets.onek1k(data_dir=data_dir),
        cellpop.datasets.hoek2015_sorted_bulk(data_dir=data_dir),
        co,
    )


def recall(zc: pd.DataFrame, zb: pd.DataFrame, ks=(1, 3, 5)) -> dict:
    return pair_recall(zc, zb, ks)


def main(epochs: int = 200, k: int = 5) -> None:
    data_dir = os.environ.get("CELLPOP_DATA_DIR", "/work/shared/data")
    scvi.settings.seed = 0
    co = CellOntology(data_dir=data_dir)
    t0 = time.time()
    m = build(data_dir, co)
    print(m, f"\nbuilt in {time.time() - t0:.1f} s")
    POPPY.setup_mudata(
        m, sample_key="donor_id", cell_type_key=CT, cohort_key="cohort", rna_obsm_key="X_pca",
    )  # fmt: skip
    model = POPPY(m)
    S = model.sample_similarity(co, k=max(k, 1))  # k = 100 (paper) is n - 1 = 47 here: flat S
    if k == 0:  # ablation: no ontology, the sample's own pair is the only positive (CLIP-like)
        S = pd.DataFrame(np.eye(len(S)), index=S.index, columns=S.columns)
    pb = m.mod["bulk"][m.mod["bulk"].obs["source"] == "pseudobulk"]

    def evaluate(model: POPPY, tag: str, samples) -> None:
        zc = model.get_sample_representation().loc[samples]
        zb = model.get_sample_representation(pb, modality="bulk")
        zb.index = pb.obs["donor_id"].astype(str).to_numpy()
        r = recall(zc, zb)
        cohort = m.mod["rna"].obs.groupby("donor_id", observed=True)["cohort"].first()
        r["bulk cohort silhouette"] = float(
            silhouette_score(zb.to_numpy(), cohort.loc[zb.index].astype(str), metric="cosine")
        )
        print(f"{tag} ({len(samples)} samples, chance R@1 = {1 / len(samples):.3f}):",
              {k: round(v, 3) for k, v in r.items()})  # fmt: skip

    t0 = time.time()
    model.train(max_epochs=epochs, similarity=S, train_size=0.8, enable_progress_bar=False)
    print(f"trained {epochs} epochs in {time.time() - t0:.1f} s")
    h = model.history
    for key in ("train_loss", "validation_loss", "matched_cosine_train", "embedding_std_train"):
        if key in h:
            print(key, "first/last:", float(h[key].iloc[0, 0]), float(h[key].iloc[-1, 0]))
    val = model.validation_samples_
    evaluate(model, "held-out", val)
    evaluate(model, "training", model.train_samples_)
    scvi.settings.seed = 0  # untrained reference: same architecture and seed, no step
    ref = POPPY(m)
    ref.is_trained_ = True
    evaluate(ref, "held-out, untrained", val)
    wb = cellpop.datasets.cibersortx_wholeblood_bulk(data_dir=data_dir)
    z = model.get_sample_representation(wb, modality="bulk").to_numpy()
    fr = wb.obsm["cell_type_fractions"][["neutrophil", "lymphocyte", "monocyte"]].to_numpy()
    rho = spearmanr(pdist(z, "cosine"), pdist(fr, "cityblock")).statistic
    print(
        f"CIBERSORTx whole blood (12 real bulk): Spearman(embedding dist, fraction L1) = {rho:.3f}"
    )
    cs = model.get_sample_representation()
    d_emb = pdist(cs.to_numpy(), "cosine")
    from cellpop.ontology import composition_distances

    comp = model.compositions()
    D = composition_distances(comp, co.prune(comp.columns))
    iu = np.triu_indices(len(D), 1)
    print(f"cell-set embeddings: Spearman(embedding dist, composition EMD) = "
          f"{spearmanr(d_emb, D[iu]).statistic:.3f}")  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
