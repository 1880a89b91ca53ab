"""Tests of cellpop.metrics: SPARE metrics on hand-computed cases, the LOO probe, real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellpop import metrics, tl

_DATA_DIR = os.environ.get("CELLPOP_DATA_DIR")
_STEPH = Path(_DATA_DIR or "") / "stephenson2021_covid_20donors_pca.h5ad"
needs_steph = pytest.mark.skipif(
    not (_DATA_DIR and _STEPH.exists()),
    reason="real data not available: set CELLPOP_DATA_DIR to the shared data directory",
)


def _line(positions, ids=None):
    """1-D sample representation at the given positions."""
    ids = ids or [f"s{i}" for i in range(len(positions))]
    return pd.DataFrame({"x": np.asarray(positions, dtype=float)}, index=ids)


# ----------------------------------------------------------------------------- as_distance
def test_as_distance_representation_and_matrix():
    rep = pd.DataFrame([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], index=["a", "b", "c"])
    D = metrics.as_distance(rep)
    assert D.loc["a", "b"] == pytest.approx(np.sqrt(5)) and D.loc["a", "c"] == pytest.approx(2)
    Dc = metrics.as_distance(rep, metric="cosine")
    assert Dc.loc["a", "c"] == pytest.approx(0.0) and Dc.loc["a", "b"] == pytest.approx(1.0)
    assert metrics.as_distance(D).equals(D)  # a distance matrix is passed through
    bad = D.copy()
    bad.iloc[0, 1] += 1
    with pytest.raises(ValueError, match="not symmetric"):
        metrics.as_distance(bad)
    with pytest.raises(ValueError, match="NaN"):
        metrics.as_distance(rep.replace(3.0, np.nan))
    with pytest.raises(TypeError, match="DataFrame"):
        metrics.as_distance(rep.to_numpy())


# ----------------------------------------------------------------------------- retention
def test_retention_perfect_separation_is_one():
    rep = _line([0, 0.1, 0.2, 0.3, 10, 10.1, 10.2, 10.3])
    meta = pd.DataFrame({"y": list("aaaabbbb")}, index=rep.index)
    assert metrics.information_retention(rep, meta, "y") == 1.0
    assert metrics.batch_mixing(rep, meta, "y") == 0.0


def test_retention_hand_computed_and_self_excluded():
    # cluster 1 = a,b,b,b ; cluster 2 = b,a,a,a. Leave-one-out 3-NN predicts the majority of the
    # cluster for every sample: macro-F1 = 0.75 -> rescaled (0.75 - 1/2) / (1 - 1/2) = 0.5.
    # (Were self included, its zero distance would win and the score would be 1.)
    rep = _line([0, 0.1, 0.2, 0.3, 10, 10.1, 10.2, 10.3])
    meta = pd.DataFrame({"y": list("abbbbaaa")}, index=rep.index)
    assert metrics.information_retention(rep, meta, "y") == pytest.approx(0.5)
    # same on a precomputed distance matrix and with the list form
    D = metrics.as_distance(rep)
    scores = metrics.information_retention(D, meta, ["y"])
    assert isinstance(scores, pd.Series) and scores["y"] == pytest.approx(0.5)


def test_retention_random_is_near_zero():
    rng = np.random.default_rng(0)
    rep = pd.DataFrame(rng.normal(size=(300, 5)), index=[f"s{i}" for i in range(300)])
    meta = pd.DataFrame(
        {"y": rng.choice(list("abc"), size=300), "z": rng.normal(size=300)}, index=rep.index
    )
    assert metrics.information_retention(rep, meta, "y") < 0.15
    assert metrics.information_retention(rep, meta, "z", kind="regression") < 0.15


def test_retention_regression_and_ordinal():
    pos = np.linspace(0, 10, 30)
    rep = _line(pos)
    sev = pd.Categorical(
        np.repeat(["mild", "moderate", "severe"], 10),
        categories=["mild", "moderate", "severe"],
        ordered=True,
    )
    meta = pd.DataFrame({"age": pos * 3 + 20, "severity": sev}, index=rep.index)
    assert metrics.information_retention(rep, meta, "age", kind="regression") > 0.95
    assert metrics.information_retention(rep, meta, "severity", kind="ordinal") > 0.8
    meta.loc["s3", "age"] = np.nan  # missing values are left out, not an error
    assert metrics.information_retention(rep, meta, "age", kind="regression") > 0.95


def test_retention_errors():
    rep = _line(range(6))
    meta = pd.DataFrame({"y": list("aaaaaa"), "c": list("ababab")}, index=rep.index)
    with pytest.raises(ValueError, match="single class"):
        metrics.information_retention(rep, meta, "y")
    with pytest.raises(KeyError, match="'nope'"):
        metrics.information_retention(rep, meta, "nope")
    with pytest.raises(ValueError, match="categorical"):
        metrics.information_retention(rep, meta.astype({"c": "category"}), "c", kind="regression")
    with pytest.raises(KeyError, match="missing from the metadata"):
        metrics.information_retention(rep, meta.iloc[:4], "c")
    with pytest.raises(ValueError, match="k=3 needs more than k"):
        metrics.information_retention(rep.iloc[:3], meta.iloc[:3], "c")
    with pytest.raises(ValueError, match="kind="):
        metrics.information_retention(rep, meta, "c", kind="survival")


# ----------------------------------------------------------------------------- trajectory
def test_trajectory_conservation_on_a_curve():
    t = np.linspace(0, 3, 25)
    rep = pd.DataFrame({"x": np.cos(t), "y": np.sin(t)}, index=[f"s{i}" for i in range(25)])
    order = pd.Series(t, index=rep.index)
    assert metrics.trajectory_conservation(rep, order) > 0.95
    # a root at the wrong end makes pseudotime anti-correlated: clipped to 0
    assert metrics.trajectory_conservation(rep, order, root="s24") == 0.0
    shuffled = pd.Series(np.random.default_rng(0).permutation(t), index=rep.index)
    assert metrics.trajectory_conservation(rep, shuffled) < 0.5
    with pytest.raises(KeyError, match="root="):
        metrics.trajectory_conservation(rep, order, root="zz")
    with pytest.raises(ValueError, match="ordered"):
        metrics.trajectory_conservation(rep, order.astype(str).astype("category"))


# ----------------------------------------------------------------------------- replicates
def test_replicate_robustness_hand_computed():
    rep = _line([0, 1, 2, 3])
    # replicates {s0, s2}: from s0, s2 (d=2) is behind s1 (d=1), ahead of s3 (d=3) -> 1/2;
    # from s2, s0 (d=2) is behind s1 and s3 (d=1) -> 1. Score = 1 - mean(1/2, 1) = 0.25
    groups = pd.Series(["A", "B", "A", "C"], index=rep.index)
    assert metrics.replicate_robustness(rep, groups) == pytest.approx(0.25)
    far = pd.Series(["A", "B", "C", "A"], index=rep.index)  # replicates at both ends
    assert metrics.replicate_robustness(rep, far) == pytest.approx(0.0)


def test_replicate_robustness_permutation():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(10, 3)) * 10
    perm = rng.permutation(10)
    reps = np.concatenate([base, base[perm] + 0.01])  # replicate j of base[perm[j]]
    ids = [f"r{i}" for i in range(20)]
    rep = pd.DataFrame(reps, index=ids)
    groups = pd.Series(list(range(10)) + list(perm), index=ids)
    assert metrics.replicate_robustness(rep, groups) == pytest.approx(1.0)
    wrong = pd.Series(list(range(10)) + list(np.roll(perm, 1)), index=ids)
    assert metrics.replicate_robustness(rep, wrong) < 0.8
    with pytest.raises(ValueError, match="No sample has a replicate"):
        metrics.replicate_robustness(rep, pd.Series(range(20), index=ids))


# ----------------------------------------------------------------------------- total
def test_spare_scores_total_and_renormalisation():
    t = np.linspace(0, 3, 24)
    rep = pd.DataFrame({"x": np.cos(t), "y": np.sin(t)}, index=[f"s{i}" for i in range(24)])
    meta = pd.DataFrame(
        {
            "group": np.repeat(["a", "b"], 12),
            "batch": np.tile(["b1", "b2", "b3"], 8),
            "time": t,
        },
        index=rep.index,
    )
    s = metrics.spare_scores(
        rep, meta, classification_keys=["group"], batch_keys=["batch"], trajectory_key="time"
    )
    assert s["total"] == pytest.approx(
        (s["retention"] + s["trajectory"] + 0.5 * s["batch_mixing"]) / 2.5
    )
    assert s["retention:group"] == s["retention"] > 0.8 and s["batch_mixing"] > 0.5
    s2 = metrics.spare_scores(rep, meta, classification_keys=["group"], batch_keys=["batch"])
    assert "trajectory" not in s2
    assert s2["total"] == pytest.approx((s2["retention"] + 0.5 * s2["batch_mixing"]) / 1.5)
    with pytest.raises(ValueError, match="at least one"):
        metrics.spare_scores(rep, meta)


# ----------------------------------------------------------------------------- probe
def test_loo_probe_separable_and_errors():
    rng = np.random.default_rng(0)
    y = np.repeat(["ctrl", "case"], [6, 14])
    X = rng.normal(size=(20, 8))
    X[:, 0] += np.where(y == "case", 8.0, 0.0)
    rep = pd.DataFrame(X, index=[f"d{i}" for i in range(20)])
    labels = pd.Series(y, index=rep.index)
    assert metrics.loo_probe(rep, labels) == pytest.approx(1.0)
    assert metrics.loo_probe(rep, labels, score="macro_f1") > 0.9
    three = pd.Series(np.tile(["a", "b", "c", "d"], 5), index=rep.index)
    with pytest.raises(ValueError, match="two classes"):
        metrics.loo_probe(rep, three, score="auroc")
    with pytest.raises(ValueError, match="single sample"):
        metrics.loo_probe(rep, pd.Series(["a"] + ["b"] * 19, index=rep.index))
    with pytest.raises(KeyError, match="labels lack"):
        metrics.loo_probe(rep, labels.iloc[:10])


@needs_steph
@pytest.mark.realdata
def test_stephenson_probe_and_spare():
    import anndata as ad

    adata = ad.read_h5ad(_STEPH)
    meta = tl.sample_metadata(adata, "donor_id", majority_keys="barcode_batch")
    pb = tl.pseudobulk(adata, "donor_id", obsm_key="X_pca")
    clr = tl.cell_type_composition(adata, "donor_id", "cell_type", transform="clr")
    auc_pb = metrics.loo_probe(pb, meta["disease"])
    auc_clr = metrics.loo_probe(clr, meta["disease"])
    print(f"LOO probe AUROC disease: pseudobulk {auc_pb:.3f}, CLR composition {auc_clr:.3f}")
    # METHODS.md: 0.75 and 0.80
    assert auc_pb > 0.65 and auc_clr > 0.7
    # SPARE's 3-NN vote on 16 COVID vs 4 healthy donors: always COVID-19 for the pseudobulk
    s_pb = metrics.spare_scores(pb, meta, classification_keys=["disease"])
    assert s_pb["retention"] == 0.0
    s_gs = metrics.spare_scores(
        tl.gloscope(adata, "donor_id"),
        meta,
        classification_keys=["disease"],
        batch_keys=["barcode_batch"],
    )
    print(f"SPARE GloScope: {s_gs.round(3).to_dict()}")
    assert 0.0 <= s_gs["total"] <= 1.0
