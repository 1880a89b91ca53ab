"""scGraph metric and prototype-coverage tests on small synthetic data with known geometry."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from cellpop.metrics._coverage import metacell_denoising_f1, rare_population_coverage
from cellpop.metrics._scgraph import centroid_distances, scgraph, scgraph_reference


def test_centroid_distances_hand_case():
    X = np.array([[0.0, 0.0]] * 10 + [[3.0, 4.0]] * 10 + [[6.0, 8.0]] * 10 + [[9.0, 9.0]] * 5)
    labels = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10 + ["d"] * 5)
    d = centroid_distances(X, labels, min_cells=10)
    assert list(d.index) == ["a", "b", "c"]  # "d" has < 10 cells
    # raw distances a-b 5, a-c 10, b-c 5; column max: a 10, b 5, c 10
    expected = np.array([[0, 1, 1], [0.5, 0, 0.5], [1, 1, 0]])
    np.testing.assert_allclose(d.to_numpy(), expected)


def test_trimmed_centroid_ignores_outlier():
    # three types of 40 cells on a line at 0 (a), 1 (b), 3 (c); one outlier of "a" at 1000.
    # trim 0.05 cuts int(0.05 * 40) = 2 cells from each end, the outlier among them: centroids
    # 0, 1, 3 -> raw distances a-b 1, a-c 3, b-c 2; column maxima a 3, b 2, c 3
    X = np.repeat([0.0, 1.0, 3.0], 40)[:, None]
    X[5] = 1000.0
    labels = np.repeat(["a", "b", "c"], 40)
    d = centroid_distances(X, labels, trim=0.05)
    expected = np.array([[0, 1 / 2, 1], [1 / 3, 0, 2 / 3], [1, 1, 0]])
    np.testing.assert_allclose(d.to_numpy(), expected)
    # without trimming the outlier drags "a" to 1000 / 40 = 25: a-b 24, a-c 22, b-c 2
    d0 = centroid_distances(X, labels, trim=0.0)
    expected0 = np.array([[0, 1, 1], [1, 0, 2 / 22], [22 / 24, 2 / 24, 0]])
    np.testing.assert_allclose(d0.to_numpy(), expected0)


def _synthetic(n_per=60, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(5, 40))
    labels = np.repeat([f"t{i}" for i in range(5)], n_per * 2)
    batch = np.tile(np.repeat(["b0", "b1"], n_per), 5)
    X = centers[np.repeat(np.arange(5), n_per * 2)] + rng.normal(0, 1, size=(len(labels), 40))
    X[batch == "b1"] += 0.5  # batch shift
    ad = AnnData(X=X.astype(np.float32), obs=pd.DataFrame({"b": batch, "ct": labels}))
    ad.obs.index = ad.obs.index.astype(str)
    return ad, centers


def test_scgraph_scores_faithful_vs_scrambled_embedding():
    ad, centers = _synthetic()
    ad.obsm["good"] = ad.X.copy()  # the expression itself: same geometry as the reference
    rng = np.random.default_rng(1)
    perm = rng.permutation(5)
    ad.obsm["bad"] = centers[perm][pd.factorize(ad.obs["ct"])[0]] + rng.normal(
        0, 1, size=(ad.n_obs, 40)
    )
    ad.obsm["two_d"] = ad.X[:, :2].copy()
    before = ad.copy()
    ref = scgraph_reference(ad, "b", "ct", n_hvg=40, min_cells_batch=100)
    assert ref.shape == (5, 5)
    res = scgraph(ad, ["good", "bad", "two_d"], "b", "ct", reference=ref)
    assert list(res.columns) == ["rank_pca", "corr_pca", "corr_weighted"]
    assert res.loc["good"].min() > 0.8
    assert (res.loc["good"] > res.loc["bad"]).all()
    assert res.loc["two_d"].notna().all()  # 2-D embeddings are scored, not skipped
    assert ad.obsm.keys() == before.obsm.keys() and list(ad.obs.columns) == ["b", "ct"]


def test_scgraph_errors():
    ad, _ = _synthetic(n_per=20)
    with pytest.raises(KeyError, match="missing_emb"):
        scgraph(ad, "missing_emb", "b", "ct")
    with pytest.raises(ValueError, match="No batch"):
        scgraph_reference(ad, "b", "ct", min_cells_batch=1000)
    with pytest.raises(KeyError, match="batch_key"):
        scgraph_reference(ad, "nope", "ct")


def test_rare_population_coverage():
    labels = np.array(["A"] * 50 + ["B"] * 30 + ["rare"] * 3)
    assign = np.array([0] * 50 + [1] * 30 + [1] * 3)
    cov = rare_population_coverage(assign, labels)
    assert not cov.loc["rare", "covered"] and cov.loc["A", "covered"]
    assign2 = assign.copy()
    assign2[-3:] = 2
    cov2 = rare_population_coverage(assign2, labels)
    assert cov2["covered"].all() and cov2.index[0] == "rare"
    with pytest.raises(ValueError, match="assignment has"):
        rare_population_coverage(assign[:5], labels)


def test_metacell_denoising_f1_prefers_denoised_features():
    rng = np.random.default_rng(0)
    n = 200
    labels = np.array(["NK cell"] * n + ["CD8+ T cell"] * n)
    truth = np.r_[np.ones(n), np.zeros(n)]
    genes = ["TYROBP", "CD3D", "OTHER"]
    noisy = np.c_[
        truth + rng.normal(0, 2, 2 * n), 1 - truth + rng.normal(0, 2, 2 * n), rng.normal(size=2 * n)
    ]
    meta = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assign = (1 - truth).astype(int)
    res = metacell_denoising_f1(
        noisy,
        meta,
        assign,
        truth[:, None],
        labels,
        genes,
        contrasts={("NK cell", "CD8+ T cell"): ["TYROBP", "CD3D", "NOT_A_GENE"]},
    )
    f1 = res.set_index("representation")["f1_macro"]
    assert f1["metacell"] == pytest.approx(1.0) and f1["embedding"] == pytest.approx(1.0)
    assert 0.5 < f1["single_cell"] < 0.9
    assert res["markers"].iloc[0] == "TYROBP,CD3D"
    with pytest.raises(ValueError, match="absent"):
        metacell_denoising_f1(
            noisy,
            meta,
            assign,
            truth[:, None],
            labels,
            genes,
            contrasts={("NK cell", "B cell"): ["TYROBP"]},
        )
