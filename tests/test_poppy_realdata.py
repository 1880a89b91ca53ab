"""POPPY on the shared real data (Kang 2018 + OneK1K cells, Hoek 2015 sorted bulk)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scvi
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.realdata
def test_poppy_aligns_held_out_pseudobulk_without_collapse(data_dir):
    from poppy_smoke import build, recall

    from cellpop.model import POPPY
    from cellpop.ontology import CellOntology, composition_distances

    scvi.settings.seed = 0
    co = CellOntology(data_dir=data_dir)
    m = build(str(data_dir), co)
    bulk = m.mod["bulk"]
    assert set(bulk.obs["source"]) == {"pseudobulk", "in_silico"}
    assert (bulk.obs["source"] == "in_silico").sum() == 48  # every sample overlaps Hoek's types
    POPPY.setup_mudata(
        m, sample_key="donor_id", cell_type_key="cell_type_ontology_term_id",
        cohort_key="cohort", rna_obsm_key="X_pca",
    )  # fmt: skip
    model = POPPY(m)
    S = model.sample_similarity(co, k=5)
    model.train(
        max_epochs=30, similarity=S, train_size=0.8, n_cells=(300, 500), enable_progress_bar=False
    )
    # collapse monitor: a collapsed run (no BatchNorm) ends near 0.015
    assert model.history["embedding_std_train"].iloc[-1, 0] > 0.04
    val = model.validation_samples_
    pb = bulk[bulk.obs["source"] == "pseudobulk"]
    zb = model.get_sample_representation(pb, modality="bulk")
    zb.index = pb.obs["donor_id"].astype(str).to_numpy()
    r = recall(model.get_sample_representation().loc[val], zb)
    assert r["cell->bulk R@3"] >= 0.5 and r["bulk->cell R@3"] >= 0.5  # chance: 3 / 10
    cs = model.get_sample_representation()
    comp = model.compositions()
    D = composition_distances(comp, co.prune(comp.columns))
    rho = spearmanr(pdist(cs.to_numpy(), "cosine"), D[np.triu_indices(len(D), 1)]).statistic
    assert rho > 0.3
