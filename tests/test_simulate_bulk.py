"""simulate_bulk, match_compositions and paired_bulk (POPPY §2.1, App. A.3.2)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cellpop.tl import match_compositions, paired_bulk, simulate_bulk


def _sorted():
    # two populations, A with 2 replicate profiles, B with one; libraries of different size
    X = np.array([[1.0, 3.0, 0.0], [2.0, 6.0, 0.0], [0.0, 1.0, 1.0]])
    a = ad.AnnData(X)
    a.var_names = ["g0", "g1", "g2"]
    a.obs_names = ["A1", "A2", "B1"]
    a.obs["ct"] = ["A", "A", "B"]
    return a


def test_simulate_bulk_is_the_weighted_mixture_of_normalised_profiles():
    props = pd.DataFrame({"A": [0.25, 1.0], "B": [0.75, 0.0]}, index=["s0", "s1"])
    sim = simulate_bulk(_sorted(), props, cell_type_key="ct", target_sum=4.0)
    # both A replicates normalise to [1, 3, 0] (library 4), B to [0, 2, 2]
    expected = np.array([[0.25 * 1, 0.25 * 3 + 0.75 * 2, 0.75 * 2], [1.0, 3.0, 0.0]])
    np.testing.assert_allclose(sim.X, expected, rtol=1e-6)
    assert list(sim.obs_names) == ["s0", "s1"]
    pd.testing.assert_frame_equal(sim.obsm["cell_type_fractions"], props, check_dtype=False)
    np.testing.assert_allclose(sim.X.sum(1), 4.0, rtol=1e-6)


def test_simulate_bulk_resamples_replicates_with_the_seed():
    a = _sorted()
    a.X[1] = [0.0, 0.0, 5.0]  # replicate A2 now differs from A1
    props = pd.DataFrame({"A": np.ones(40)}, index=[f"s{i}" for i in range(40)])
    sim = simulate_bulk(a, props, cell_type_key="ct", target_sum=1.0)
    rows = {tuple(np.round(r, 3)) for r in np.asarray(sim.X)}
    assert rows == {(0.25, 0.75, 0.0), (0.0, 0.0, 1.0)}  # both replicates are used
    again = simulate_bulk(a, props, cell_type_key="ct", target_sum=1.0)
    np.testing.assert_array_equal(sim.X, again.X)
    other = simulate_bulk(a, props, cell_type_key="ct", target_sum=1.0, seed=5)
    assert not np.array_equal(sim.X, other.X)


def test_simulate_bulk_errors():
    a = _sorted()
    with pytest.raises(ValueError, match="do not sum to one"):
        simulate_bulk(a, pd.DataFrame({"A": [0.5], "B": [0.3]}), cell_type_key="ct")
    with pytest.raises(KeyError, match=r"\['C'\]"):
        simulate_bulk(a, pd.DataFrame({"A": [0.5], "C": [0.5]}), cell_type_key="ct")
    with pytest.raises(ValueError, match="negative"):
        simulate_bulk(a, pd.DataFrame({"A": [1.5], "B": [-0.5]}), cell_type_key="ct")
    with pytest.raises(KeyError, match="nope"):
        simulate_bulk(a, pd.DataFrame({"A": [1.0]}), cell_type_key="nope")


def test_match_compositions_exact_and_through_ancestors():
    comp = pd.DataFrame({"CD4": [0.5, 0.0], "B": [0.25, 0.0], "X": [0.25, 1.0]}, index=["d0", "d1"])
    props, cov = match_compositions(comp, ["B", "T"])
    np.testing.assert_allclose(cov.to_numpy(), [0.25, 0.0])
    assert list(props.index) == ["d0"] and list(props.columns) == ["B"]
    np.testing.assert_allclose(props.to_numpy(), [[1.0]])
    anc = {"CD4": frozenset({"T", "lymph"}), "B": frozenset({"lymph"}), "X": frozenset()}
    props, cov = match_compositions(comp, ["B", "T"], ancestors=anc)
    np.testing.assert_allclose(cov.to_numpy(), [0.75, 0.0])
    np.testing.assert_allclose(props.loc["d0", ["B", "T"]].to_numpy(), [1 / 3, 2 / 3])
    with pytest.raises(ValueError, match="no sample shares"):
        match_compositions(comp.iloc[[1]], ["B"])


def test_paired_bulk_pseudobulk_and_in_silico():
    X = sparse.csr_matrix(np.array([[1, 0, 2], [3, 1, 0], [0, 2, 2], [1, 1, 1]], dtype=np.float32))
    sc = ad.AnnData(X)
    sc.var_names = ["g0", "g1", "g9"]
    sc.obs["donor"] = pd.Categorical(["d0", "d0", "d1", "d1"])
    sc.obs["ct"] = ["A", "B", "A", "A"]
    pb = paired_bulk(sc, "donor", "ct", sorted_bulk=_sorted(), sorted_cell_type_key="ct")
    assert list(pb.obs_names) == ["d0", "d1", "d0_in_silico", "d1_in_silico"]
    assert list(pb.var_names) == ["g0", "g1"]  # genes shared with the sorted profiles
    np.testing.assert_allclose(pb.X[:2], [[4, 1], [1, 3]])  # summed counts
    assert list(pb.obs["donor"]) == ["d0", "d1", "d0", "d1"]
    assert list(pb.obs["source"]) == ["pseudobulk"] * 2 + ["in_silico"] * 2
    fr = pb.obsm["cell_type_fractions"]
    np.testing.assert_allclose(fr.loc["d0", ["A", "B"]].to_numpy(), [0.5, 0.5])
    np.testing.assert_allclose(fr.loc["d1_in_silico", ["A", "B"]].to_numpy(), [1.0, 0.0])
    # d1 is all A: its in-silico profile is A's normalised profile on the shared genes
    np.testing.assert_allclose(pb.X[3], np.array([1, 3]) / 4 * 1e6, rtol=1e-5)
