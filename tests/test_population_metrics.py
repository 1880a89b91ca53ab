"""SC-JEPA Tables 1-2 metrics and the pooled baselines on hand-computed cases."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cellpop import metrics, tl


def frame(values, index=None):
    values = np.asarray(values, dtype=float)
    values = values[:, None] if values.ndim == 1 else values
    index = index or [f"s{i}" for i in range(len(values))]
    return pd.DataFrame(values, index=index)


def test_dataset_silhouette_by_hand():
    rep = frame([0.0, 1.0, 10.0, 11.0])
    labels = pd.Series(["a", "a", "b", "b"], index=rep.index)
    # point 0: a = 1, b = (10 + 11) / 2; point 1: a = 1, b = (9 + 10) / 2; symmetric for b
    expected = np.mean([1 - 1 / 10.5, 1 - 1 / 9.5])
    assert metrics.dataset_silhouette(rep, labels) == pytest.approx(expected)
    mixed = pd.Series(["a", "b", "a", "b"], index=rep.index)
    assert metrics.dataset_silhouette(rep, mixed) < 0
    with pytest.raises(KeyError, match="labels lack 1 sample"):
        metrics.dataset_silhouette(rep, labels.iloc[:3])
    with pytest.raises(TypeError, match="DataFrame"):
        metrics.dataset_silhouette(rep.to_numpy(), labels)


def test_leiden_ari_separated_and_orthogonal():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (10, 3)), rng.normal(20, 0.1, (10, 3))])
    rep = frame(X)
    same = pd.Series(["a"] * 10 + ["b"] * 10, index=rep.index)
    # "gauss" weights: the default "umap" JIT-compiles numba (~20 s); both give these answers
    ari, n_clusters = metrics.leiden_ari(rep, same, n_neighbors=5, neighbors_method="gauss")
    assert (ari, n_clusters) == (1.0, 2)
    # labels alternate inside each cluster: contingency [[5, 5], [5, 5]];
    # ARI = (40 - 90 * 90 / 190) / (90 - 90 * 90 / 190)
    alt = pd.Series(["a", "b"] * 10, index=rep.index)
    expected = (40 - 8100 / 190) / (90 - 8100 / 190)
    ari = metrics.leiden_ari(rep, alt, n_neighbors=5, neighbors_method="gauss")[0]
    assert ari == pytest.approx(expected)


def test_svm_scores_one_misplaced_positive():
    # 1-D: positives at 1..5, negatives at -1..-5, one more positive at -6 among the negatives.
    x = [1, 2, 3, 4, 5, -1, -2, -3, -4, -5, -6]
    y = ["pos"] * 5 + ["neg"] * 5 + ["pos"]
    rep = frame(x)
    labels = pd.Series(y, index=rep.index)
    # n_splits is capped at the smaller class (5 negatives): 5 folds
    out = metrics.svm_scores(rep, labels, positive="pos", n_splits=11)
    assert out == {"precision": 1.0, "recall": pytest.approx(5 / 6)}
    with pytest.raises(ValueError, match="positive='x' is not a class"):
        metrics.svm_scores(rep, labels, positive="x")
    donors = pd.Series(["d0"] * 6 + ["d1"] * 5, index=rep.index)
    with pytest.raises(ValueError, match="n_splits=5 must be in 2..n_groups"):
        metrics.svm_scores(rep, labels, groups=donors)


def test_folds_never_split_a_donor():
    from cellpop.metrics._population import _folds

    groups = np.repeat([f"d{i}" for i in range(6)], [1, 2, 3, 1, 2, 3])
    y = np.array(["a", "b"] * 6)
    for labels in (y, None):
        folds = list(_folds(labels, groups, 3, seed=0))
        assert len(folds) == 3
        assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(12))
        for train, test in folds:
            assert not set(groups[train]) & set(groups[test])


def test_composition_probe_exact_and_uninformative():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 3))
    Y = X @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]]) + np.array([1.0, -1.0])
    rep, comp = frame(X), frame(Y)
    exact = metrics.composition_probe(rep, comp, n_splits=4, alpha=1e-8)
    assert exact["mse"] == pytest.approx(0.0, abs=1e-12)
    assert exact["r2"] == pytest.approx(1.0)
    # constant embedding: leave-one-out predicts the mean of the other n - 1 samples, so the
    # error of sample i is n / (n - 1) * (y_i - mean): MSE = (n/(n-1))^2 var(y), R^2 = 1 - (n/(n-1))^2
    n = 12
    y = rng.normal(size=(n, 1))
    out = metrics.composition_probe(frame(np.zeros(n)), frame(y), n_splits=n)
    assert out["mse"] == pytest.approx((n / (n - 1)) ** 2 * y.var())
    assert out["r2"] == pytest.approx(1 - (n / (n - 1)) ** 2)


def test_perturbation_cv_by_hand():
    # donor A: perturbations p0, p1, p2 at 0, 1, 3; donor B at 0, 2, 3 (1-D)
    # distances A: (p0,p1)=1, (p0,p2)=3, (p1,p2)=2; B: 2, 3, 1 -> CV 1/3, 0, 1/3
    rep = frame([0, 1, 3, 0, 2, 3])
    donors = pd.Series(list("AAABBB"), index=rep.index)
    perts = pd.Series(["p0", "p1", "p2"] * 2, index=rep.index)
    out = metrics.perturbation_cv(rep, donors, perts)
    assert out == {"cv_mean": pytest.approx(2 / 9), "cv_max": pytest.approx(1 / 3), "n_pairs": 3}
    dup = perts.copy()
    dup.iloc[1] = "p0"
    with pytest.raises(ValueError, match="occurs in more than one sample"):
        metrics.perturbation_cv(rep, donors, dup)


def test_silhouette_auc_by_hand():
    # one donor, 1-D points 0, 1, 10, 11; k = 2: {0,1},{10,11}; k = 3: a pair and two singletons
    rep = frame([0, 1, 10, 11])
    donors = pd.Series(["A"] * 4, index=rep.index)
    s2 = np.mean([1 - 1 / 10.5, 1 - 1 / 9.5])
    s3 = (0.9 + (1 - 1 / 9)) / 4  # singletons score 0; pair {0, 1}: b = 10 and 9
    out = metrics.silhouette_auc(rep, donors, k_range=(2, 20))  # capped at k = n - 1 = 3
    assert out.loc["A"] == pytest.approx((s2 + s3) / 2)
    with pytest.raises(ValueError, match="donor 'A' has 4 samples"):
        metrics.silhouette_auc(rep, donors, k_range=(3, 20))


def test_pooled_pca_and_scvi():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(60, 20)).astype(np.float32)
    a = ad.AnnData(sparse.csr_matrix(np.log1p(counts)), layers={"counts": counts})
    a.obs["donor"] = pd.Categorical(np.repeat(["d0", "d1", "d2"], 20))
    pooled = tl.pooled_pca(a, "donor", n_comps=5)
    assert pooled.shape == (3, 5) and list(pooled.index) == ["d0", "d1", "d2"]
    # the PCs are centred over all cells, so the size-weighted mean of the sample means is 0
    assert np.allclose(pooled.to_numpy().mean(0), 0, atol=1e-5)
    with pytest.raises(ValueError, match="n_comps=20"):
        tl.pooled_pca(a, "donor", n_comps=20)
    z = tl.pooled_scvi(a, "donor", n_latent=4, max_epochs=2)
    assert z.shape == (3, 4) and np.isfinite(z.to_numpy()).all()
    with pytest.raises(KeyError, match="layer='raw'"):
        tl.pooled_scvi(a, "donor", layer="raw")
