"""POPPY on the shared real data: the quick ``cellpop benchmark poppy`` run (Kang 2018 + OneK1K
cells, Hoek 2015 in-silico bulk, CIBERSORTx whole blood)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.mark.realdata
def test_poppy_quick_benchmark_aligns_held_out_pseudobulk(data_dir, tmp_path):
    from cellpop.benchmark import SUITES, get_suite
    from cellpop.benchmark import _poppy as suite

    assert get_suite("poppy") is suite.run and "poppy" in SUITES
    table = suite.run(tmp_path, data_dir=data_dir, quick=True)
    scores = pd.read_csv(tmp_path / "poppy_scores.csv").set_index("method")
    assert (tmp_path / "poppy_curves.png").stat().st_size > 0
    curves = pd.read_csv(tmp_path / "poppy_curves.csv")
    assert (curves.groupby("curve").size() == suite.QUICK_SETTINGS["max_epochs"]).all()
    poppy = scores.loc["POPPY (ontology S, k=5)"]
    # collapse monitor: a collapsed run (no BatchNorm) ends near 0.015
    assert poppy["embedding std"] > 0.04
    # 10 held-out samples: chance R@3 = 0.3; untrained encoders sit near it
    assert poppy["cell->bulk R@3"] >= 0.5 and poppy["bulk->cell R@3"] >= 0.5
    assert poppy["rho EMD cell sets"] > 0.3 and poppy["rho EMD all"] > 0.3
    # alignment starts mixing the cohorts' pseudobulks (untrained 0.74; 0.61 after 30 epochs)
    untrained = scores.loc["POPPY untrained"]
    assert poppy["cohort silhouette"] < untrained["cohort silhouette"] - 0.05
    base = scores.loc["log-CPM PCA (model genes)"]
    assert np.isnan(base["cell->bulk R@1"]) and -1 <= base["WB rho EMD"] <= 1
    assert "POPPY (ontology S, k=5)" in table.index


def test_whole_blood_partition_and_log_cpm_pca():
    import anndata as ad

    from cellpop.benchmark._poppy import log_cpm_pca, whole_blood_partition

    fr = pd.DataFrame(
        {"neutrophil": [0.6], "lymphocyte": [0.3], "monocyte": [0.1], "T_cell": [0.2],
         "CD4_T_cell": [0.12], "CD8_T_cell": [0.05], "B_cell": [0.04], "NK_cell": [0.03]}
    )  # fmt: skip
    part = whole_blood_partition(fr).iloc[0]
    # other T = 0.2 - 0.12 - 0.05; other lymphocytes = 0.3 - 0.2 - 0.04 - 0.03
    assert part["CL:0000084"] == pytest.approx(0.03) and part["CL:0000542"] == pytest.approx(0.03)
    assert part.sum() == pytest.approx(1.0) and part["CL:0000775"] == pytest.approx(0.6)
    # log-CPM: a profile and the same profile at 10x depth coincide
    X = np.array([[1.0, 3.0, 6.0], [10.0, 30.0, 60.0], [5.0, 1.0, 4.0]])
    z = log_cpm_pca(ad.AnnData(X).X, ["a", "b", "c"], n_comps=2)
    assert z.shape == (3, 2) and np.allclose(z.loc["a"], z.loc["b"])
