"""Cross-modal metrics (POPPY §3.3-3.4) on hand-computed cases."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from cellpop.metrics import cross_modal_recall, cross_modal_scores, distance_correlation

IDS = ["s0", "s1", "s2", "s3"]


def _df(values, ids):
    return pd.DataFrame(np.asarray(values, dtype=float).reshape(len(ids), -1), index=ids)


def test_recall_hand_computed_ranks_both_directions():
    cells = _df([0, 1, 2, 3], IDS)
    # shuffled rows, plus a bulk profile of a sample without cells (ignored)
    bulk = _df([3.0, 1.1, 0.1, 2.2, 50.0], ["s3", "s2", "s0", "s1", "other"])
    r = cross_modal_recall(cells, bulk, ks=(1, 2, 3), metric="euclidean")
    # cell->bulk ranks of the true match: s0 0, s1 2 (s2 at .1, s0 at .9 are closer), s2 1, s3 0;
    # bulk->cell: the same ranks (s1's bulk 2.2 is closer to cells 2 and 3)
    for d in ("cell->bulk", "bulk->cell"):
        assert [r[f"{d} R@{k}"] for k in (1, 2, 3)] == [0.5, 0.75, 1.0]
    assert [r[f"chance R@{k}"] for k in (1, 2, 3)] == [0.25, 0.5, 0.75]
    assert r["n_samples"] == 4


def test_recall_counts_ties_against_the_match():
    same = _df(np.ones((4, 2)), IDS)  # collapsed: every cosine distance is 0
    r = cross_modal_recall(same, same, ks=(1, 3, 4))
    assert r["cell->bulk R@1"] == r["bulk->cell R@3"] == 0.0
    assert r["cell->bulk R@4"] == 1.0


def test_recall_errors():
    cells = _df([0, 1, 2], IDS[:3])
    with pytest.raises(KeyError, match="s2"):
        cross_modal_recall(cells, _df([0, 1], IDS[:2]))
    with pytest.raises(ValueError, match="ks must be >= 1"):
        cross_modal_recall(cells, cells, ks=(0,))
    with pytest.raises(ValueError, match="at least 2"):
        cross_modal_recall(cells.iloc[:1], cells)
    with pytest.raises(ValueError, match="width"):
        cross_modal_recall(cells, _df(np.ones((3, 2)), IDS[:3]))


def _two_cohorts():
    ids = [f"s{i}" for i in range(6)]
    x = _df([0, 1, 3, 10, 11, 13], ids)
    groups = pd.Series(list("AAABBB"), index=ids)
    d = np.abs(x.to_numpy() - x.to_numpy().T)
    same = groups.to_numpy()[:, None] == groups.to_numpy()[None, :]
    ref = np.where(same, d**2, 100.0 - d)  # monotone within cohorts, reversed across
    np.fill_diagonal(ref, 0.0)
    return x, groups, pd.DataFrame(ref, index=ids, columns=ids), d


def test_distance_correlation_within_and_across():
    x, groups, ref, d = _two_cohorts()
    rho = distance_correlation(x, ref, groups, metric="euclidean")
    assert rho["within"] == pytest.approx(1.0)
    assert rho["within A"] == pytest.approx(1.0) and rho["within B"] == pytest.approx(1.0)
    assert rho["across"] == pytest.approx(-1.0)
    iu = np.triu_indices(6, 1)
    assert rho["all"] == pytest.approx(spearmanr(d[iu], ref.to_numpy()[iu]).statistic)
    assert (rho["n_pairs within"], rho["n_pairs across"], rho["n_pairs all"]) == (6, 9, 15)
    # samples in another order, reference with an extra sample: same answer
    extra = ref.reindex(index=[*ref.index, "z"], columns=[*ref.index, "z"]).fillna(7.0)
    extra.loc["z", "z"] = 0.0
    again = distance_correlation(x.iloc[::-1], extra, groups, metric="euclidean")
    assert again["across"] == pytest.approx(-1.0) and again["all"] == pytest.approx(rho["all"])
    assert set(distance_correlation(x, ref, metric="euclidean")) == {"all", "n_pairs all"}


def test_distance_correlation_errors():
    x, groups, ref, _ = _two_cohorts()
    with pytest.raises(KeyError, match="s5"):
        distance_correlation(x, ref.iloc[:5, :5])
    bad = ref.copy()
    bad.iloc[0, 1] = 5.0  # not symmetric
    with pytest.raises(ValueError, match="symmetric"):
        distance_correlation(x, bad)
    with pytest.raises(TypeError, match="DataFrame"):
        distance_correlation(x, ref.to_numpy())
    with pytest.raises(KeyError, match="groups"):
        distance_correlation(x, ref, groups.iloc[:3])


def test_cross_modal_scores_silhouette_and_spearman():
    x, groups, ref, _ = _two_cohorts()
    # bulk: cohort A at directions e1, e2, e1 and cohort B at e2, e1, e2 (cosine distance 0 or 1)
    e = np.eye(2)
    bulk = pd.DataFrame(e[[0, 1, 0, 1, 0, 1]], index=x.index)
    # silhouette by hand: s0 (A, e1): a = mean(1, 0) = .5, b = mean(1, 0, 1) = 2/3
    # -> s = (2/3 - 1/2) / (2/3) = .25; same for s2, s3, s5. s1 (A, e2): a = 1, b = 1/3
    # -> s = (1/3 - 1) / 1 = -2/3; same for s4. Mean: (4 * .25 - 2 * 2/3) / 6 = -1/18
    cells = pd.DataFrame(np.c_[x.to_numpy(), np.ones(6)], index=x.index)
    s = cross_modal_scores(cells, bulk, ref, groups, ks=(1,))
    assert s["cohort silhouette (bulk)"] == pytest.approx(-1 / 18)
    rho = distance_correlation(cells, ref, groups)
    assert s["Spearman cells vs EMD (across)"] == pytest.approx(rho["across"])
    assert s["chance R@1"] == pytest.approx(1 / 6)
