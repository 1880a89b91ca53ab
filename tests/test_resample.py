"""cellpop.datasets.resample: thinned real cells, exact donor counts, seeded, no duplicate rows."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cellpop.datasets import kang2018_ctrl, resample


def _counts(sizes=(30, 10), n_genes=20, rate=15.0, seed=0) -> ad.AnnData:
    """Poisson counts of donors ``A``, ``B``, ... with ``sizes`` cells each."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    X = rng.poisson(rate, (n, n_genes)).astype(np.float32)
    a = ad.AnnData(sparse.csr_matrix(X))
    a.obs_names = [f"c{i}" for i in range(n)]
    a.var_names = [f"g{i}" for i in range(n_genes)]
    a.obs["donor_id"] = pd.Categorical(np.repeat([chr(65 + i) for i in range(len(sizes))], sizes))
    a.obs["cell_type"] = pd.Categorical(rng.choice(["T", "B"], n))
    return a


def _row_keys(X) -> set:
    X = sparse.csr_matrix(X)
    return {
        (X.indices[X.indptr[i] : X.indptr[i + 1]].tobytes(), X.data[X.indptr[i] : X.indptr[i + 1]].tobytes())
        for i in range(X.shape[0])
    }  # fmt: skip


def _source_rows(a, r) -> np.ndarray:
    return a.obs_names.get_indexer(r.obs["source_cell"])


def test_split_donors_allotted_in_proportion_to_their_cells():
    a = _counts((30, 10))
    # 5 new donors: splits of A, B, A, B, A; weights 30/3, 10/2, 10, 5, 10 of 40; 45 - 5 = 40
    # cells shared in proportion plus one each -> 11, 6, 11, 6, 11
    r = resample(a, n_cells=45, n_donors=5, seed=0)
    sizes = r.obs["donor_id"].value_counts().reindex([f"donor{k}" for k in range(5)])
    assert sizes.tolist() == [11, 6, 11, 6, 11]
    assert r.obs["donor_id"].cat.categories.tolist() == [f"donor{k}" for k in range(5)]
    src = r.obs.groupby("donor_id", observed=True)["source_donor"].unique()
    assert [list(v) for v in src] == [["A"], ["B"], ["A"], ["B"], ["A"]]
    # every cell comes from its donor's source donor
    np.testing.assert_array_equal(
        a.obs["donor_id"].to_numpy()[_source_rows(a, r)], r.obs["source_donor"].to_numpy()
    )
    # other obs columns follow the source cell
    np.testing.assert_array_equal(
        a.obs["cell_type"].to_numpy()[_source_rows(a, r)], r.obs["cell_type"].to_numpy()
    )


def test_merged_donors_and_largest_remainder():
    a = _counts((30, 10, 20))
    # 2 new donors: A+C (50 cells) and B (10): 12 - 2 = 10 shared 50:10 -> 8.33, 1.67 -> 8, 2, plus one each
    r = resample(a, n_cells=12, n_donors=2, seed=0)
    assert r.obs["donor_id"].value_counts()[["donor0", "donor1"]].tolist() == [9, 3]
    assert set(r.obs["source_donor"]) == {"A+C", "B"}
    src = a.obs["donor_id"].to_numpy()[_source_rows(a, r)]
    assert set(src[r.obs["donor_id"] == "donor0"]) <= {"A", "C"}
    assert set(src[r.obs["donor_id"] == "donor1"]) == {"B"}


@pytest.mark.parametrize("fraction", [0.3, 0.8])
def test_thinning_scales_library_size_and_gene_means(fraction):
    a = _counts((100, 100), n_genes=30, rate=10.0)  # library ~300 counts per cell
    r = resample(a, n_cells=3000, n_donors=4, seed=1, fraction=fraction)
    src = sparse.csr_matrix(a.X)[_source_rows(a, r)]
    ratio = np.asarray(r.X.sum(1)).ravel() / np.asarray(src.sum(1)).ravel()
    # per-cell ratio sd = sqrt(f(1-f)/300) <= 0.029; over 3000 cells the mean's sd < 0.001
    assert abs(ratio.mean() - fraction) < 0.005
    assert (
        0.5 * np.sqrt(fraction * (1 - fraction) / 300)
        < ratio.std()
        < 2 * np.sqrt(fraction * (1 - fraction) / 300)
    )
    # thinning never adds counts and keeps integers
    assert (r.X.toarray() <= src.toarray()).all()
    np.testing.assert_array_equal(r.X.data, np.round(r.X.data))
    assert r.X.dtype == np.float32 and sparse.issparse(r.X) and r.X.format == "csr"


def test_no_duplicate_or_empty_rows_even_when_likely():
    # 2 cells with counts (2, 2, 2): thinning at 0.5 gives one of 26 distinct non-empty rows
    a = _counts((1, 1), n_genes=3)
    a.X = sparse.csr_matrix(np.full((2, 3), 2.0, dtype=np.float32))
    r = resample(a, n_cells=20, n_donors=2, seed=0, fraction=0.5)
    assert len(_row_keys(r.X)) == 20
    assert (np.asarray(r.X.sum(1)).ravel() > 0).all()
    with pytest.raises(ValueError, match="no 30 distinct non-empty thinned cells"):
        resample(a, n_cells=30, n_donors=2, seed=0, fraction=0.5)


def test_seeded_and_input_unchanged():
    a = _counts()
    before = a.X.copy()
    r1, r2 = resample(a, 50, 3, seed=7), resample(a, 50, 3, seed=7)
    np.testing.assert_array_equal(r1.X.toarray(), r2.X.toarray())
    pd.testing.assert_frame_equal(r1.obs, r2.obs)
    r3 = resample(a, 50, 3, seed=8)
    assert not np.array_equal(r1.X.toarray(), r3.X.toarray())
    assert (a.X != before).nnz == 0 and a.n_obs == 40
    assert r1.uns["resample"]["seed"] == 7 and r1.n_vars == a.n_vars


def test_thinning_in_chunks_and_row_replacement_are_exact(monkeypatch):
    from cellpop.datasets import _resample

    # chunks of 7 counts draw the same values as one call over all counts
    a = _counts((40, 25))
    whole = resample(a, 90, 4, seed=3)
    monkeypatch.setattr(_resample, "_CHUNK", 7)
    np.testing.assert_array_equal(resample(a, 90, 4, seed=3).X.toarray(), whole.X.toarray())
    # rows 1 and 3 of a 4 x 3 matrix replaced by two new rows of other lengths
    X = sparse.csr_matrix(np.array([[1, 0, 2], [0, 3, 0], [4, 5, 6], [0, 0, 7]], np.float32))
    new = sparse.csr_matrix(np.array([[8, 9, 0], [0, 0, 0]], np.float32))
    out = _resample._replace_rows(X, np.array([1, 3]), new)
    expected = [[1, 0, 2], [8, 9, 0], [4, 5, 6], [0, 0, 0]]
    np.testing.assert_array_equal(out.toarray(), expected)
    assert out.nnz == 7 and out.dtype == np.float32


def test_dense_layer_input():
    a = _counts()
    a.layers["counts"] = a.X.toarray()
    a.X = sparse.csr_matrix(a.X.shape, dtype=np.float32)  # X is not counts
    r = resample(a, 20, 2, layer="counts")
    assert r.X.sum() > 0 and r.n_obs == 20


def test_errors():
    a = _counts()
    with pytest.raises(ValueError, match="sample_key='donor'"):
        resample(a, 10, 2, sample_key="donor")
    with pytest.raises(ValueError, match="layer='raw'"):
        resample(a, 10, 2, layer="raw")
    with pytest.raises(ValueError, match="n_donors must be at least 1"):
        resample(a, 10, 0)
    with pytest.raises(ValueError, match="n_cells=3 must be at least n_donors=5"):
        resample(a, 3, 5)
    for f in (0.0, 1.0):
        with pytest.raises(ValueError, match="fraction must be in"):
            resample(a, 10, 2, fraction=f)
    b = a.copy()
    b.X = b.X * 0.5
    with pytest.raises(ValueError, match="X must hold non-negative integer counts"):
        resample(b, 10, 2)


@pytest.mark.realdata
def test_kang_to_more_donors(data_dir):
    kang = kang2018_ctrl(data_dir=data_dir)
    r = resample(kang, n_cells=20_000, n_donors=100, seed=0)
    assert r.shape == (20_000, kang.n_vars)
    assert r.obs["donor_id"].nunique() == 100
    assert len(_row_keys(r.X)) == 20_000
    src = sparse.csr_matrix(kang.X)[_source_rows(kang, r)]
    ratio = r.X.sum() / src.sum()
    assert abs(ratio - 0.8) < 0.005
    # composition follows the source: CD4 T cells are 5,154 / 12,261 = 42 % of Kang
    assert abs((r.obs["cell_type"] == "CD4+ T cell").mean() - 5154 / 12261) < 0.02
