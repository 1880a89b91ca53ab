"""Tests of cellpop.tl: pseudobulk, composition, GloScope, sample metadata / sample AnnData."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse
from scipy.spatial.distance import cdist

from cellpop import tl

_STEPH = "stephenson2021_covid_20donors_pca.h5ad"


def _toy(seed=0, n_per=(30, 40, 50), d=4, shift=(0.0, 0.0, 3.0)):
    rng = np.random.default_rng(seed)
    samples = np.repeat([f"s{i}" for i in range(len(n_per))], n_per)
    n = len(samples)
    emb = np.concatenate([rng.normal(size=(m, d)) + s for m, s in zip(n_per, shift, strict=True)])
    counts = sparse.random(n, 6, density=0.4, format="csr", random_state=seed, dtype=np.float32)
    counts.data = np.ceil(counts.data * 10)
    obs = pd.DataFrame(
        {
            # category order deliberately not alphabetical
            "sample": pd.Categorical(samples, categories=["s2", "s0", "s1"]),
            "disease": pd.Categorical(np.where(samples == "s2", "sick", "healthy")),
            "age": np.select([samples == "s0", samples == "s1"], [30, 40], 50),
            "cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], size=n)),
            "batch": pd.Categorical(rng.choice(["b1", "b2"], size=n)),
        },
        index=[f"c{i}" for i in range(n)],
    )
    adata = AnnData(X=counts, obs=obs)
    adata.var_names = [f"g{i}" for i in range(6)]
    adata.layers["counts"] = counts.copy()
    adata.obsm["X_pca"] = emb
    return adata


# ----------------------------------------------------------------------------- pseudobulk
def test_pseudobulk_sum_sparse_and_mean_embedding():
    adata = _toy()
    pb = tl.pseudobulk(adata, "sample", layer="counts")
    assert list(pb.index) == ["s2", "s0", "s1"]  # category order
    assert list(pb.columns) == list(adata.var_names)
    dense = adata.layers["counts"].toarray()
    for s in pb.index:
        np.testing.assert_allclose(pb.loc[s], dense[adata.obs["sample"] == s].sum(0), rtol=1e-6)
    pb_mean = tl.pseudobulk(adata, "sample", obsm_key="X_pca")  # default mode for obsm: mean
    assert pb_mean.shape == (3, 4) and pb_mean.columns[0] == "X_pca_0"
    np.testing.assert_allclose(
        pb_mean.loc["s0"], adata.obsm["X_pca"][adata.obs["sample"] == "s0"].mean(0)
    )
    pb_x_mean = tl.pseudobulk(adata, "sample", mode="mean")
    np.testing.assert_allclose(pb_x_mean.loc["s1"], dense[adata.obs["sample"] == "s1"].mean(0))


def test_pseudobulk_errors():
    adata = _toy()
    with pytest.raises(KeyError, match="nope"):
        tl.pseudobulk(adata, "nope")
    with pytest.raises(ValueError, match="either layer= or obsm_key="):
        tl.pseudobulk(adata, "sample", layer="counts", obsm_key="X_pca")
    with pytest.raises(ValueError, match="mode="):
        tl.pseudobulk(adata, "sample", mode="median")
    with pytest.raises(KeyError, match="X_umap"):
        tl.pseudobulk(adata, "sample", obsm_key="X_umap")
    adata.obsm["X_pca"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tl.pseudobulk(adata, "sample", obsm_key="X_pca")


# ----------------------------------------------------------------------------- composition
def test_cell_type_composition_proportion_and_clr():
    adata = _toy()
    ct = pd.crosstab(adata.obs["sample"], adata.obs["cell_type"])
    prop = tl.cell_type_composition(adata, "sample", "cell_type")
    np.testing.assert_allclose(prop.sum(1), 1.0)
    np.testing.assert_allclose(prop.loc["s1", "NK"], ct.loc["s1", "NK"] / ct.loc["s1"].sum())
    clr = tl.cell_type_composition(adata, "sample", "cell_type", transform="clr", pseudocount=1.0)
    logc = np.log(ct.loc["s0", ["B", "NK", "T"]].to_numpy() + 1.0)
    np.testing.assert_allclose(clr.loc["s0", ["B", "NK", "T"]], logc - logc.mean())
    np.testing.assert_allclose(clr.sum(1), 0.0, atol=1e-12)
    counts = tl.cell_type_composition(adata, "sample", "cell_type", transform="count")
    assert counts.to_numpy().sum() == adata.n_obs


def test_cell_type_composition_errors():
    adata = _toy()
    with pytest.raises(KeyError, match="labels_key='ct'"):
        tl.cell_type_composition(adata, "sample", "ct")
    with pytest.raises(ValueError, match="transform="):
        tl.cell_type_composition(adata, "sample", "cell_type", transform="ilr")
    with pytest.raises(ValueError, match="pseudocount"):
        tl.cell_type_composition(adata, "sample", "cell_type", transform="clr", pseudocount=0)
    adata.obs.loc[adata.obs_names[0], "cell_type"] = np.nan
    with pytest.raises(ValueError, match="without a label"):
        tl.cell_type_composition(adata, "sample", "cell_type")


# ----------------------------------------------------------------------------- GloScope
def _kl_loop(Xi, Xj, k):
    """Direct per-cell formula (independent of the vectorised implementation)."""
    d = Xi.shape[1]
    mi, mj = len(Xi), len(Xj)
    total = 0.0
    for x_idx, x in enumerate(Xi):
        di = np.sort(np.delete(cdist(x[None], Xi)[0], x_idx))
        dj = np.sort(cdist(x[None], Xj)[0])
        total += np.log(dj[k - 1] / di[k - 1])
    return d / mi * total + np.log(mj / (mi - 1))


def test_gloscope_matches_formula_and_separates_shift():
    adata = _toy(n_per=(60, 70, 80), shift=(0.0, 0.0, 3.0))
    before = adata.obsm["X_pca"].copy()
    D = tl.gloscope(adata, "sample", k=5)
    np.testing.assert_array_equal(adata.obsm["X_pca"], before)  # input untouched
    assert list(D.index) == ["s2", "s0", "s1"] and D.index.equals(D.columns)
    np.testing.assert_allclose(D.to_numpy(), D.to_numpy().T)
    np.testing.assert_array_equal(np.diag(D), 0.0)
    X = adata.obsm["X_pca"]
    s = adata.obs["sample"].to_numpy()
    expected = max(
        0.0, _kl_loop(X[s == "s0"], X[s == "s2"], 5) + _kl_loop(X[s == "s2"], X[s == "s0"], 5)
    )
    assert D.loc["s0", "s2"] == pytest.approx(expected, rel=1e-10)
    # same Gaussian: near 0; shifted by 3 SD in every direction: large
    assert D.loc["s0", "s1"] < 1.0
    assert D.loc["s0", "s2"] > 10.0 and D.loc["s1", "s2"] > 10.0
    D2 = tl.gloscope(adata, "sample", k=5, n_dims=2)
    assert D2.loc["s0", "s2"] < D.loc["s0", "s2"]  # fewer shifted dimensions, smaller divergence


def test_gloscope_duplicates_are_jittered():
    adata = _toy(n_per=(30, 30, 30))
    adata.obsm["X_pca"][1:6] = adata.obsm["X_pca"][0]  # identical cells within s0
    adata.obsm["X_pca"][40] = adata.obsm["X_pca"][0]  # and across samples
    D = tl.gloscope(adata, "sample", k=3)
    assert np.isfinite(D.to_numpy()).all()
    np.testing.assert_array_equal(D, tl.gloscope(adata, "sample", k=3))  # seeded jitter


def test_gloscope_query_subset_estimates_the_exact_matrix():
    adata = _toy(n_per=(200, 220, 240), shift=(0.0, 0.0, 3.0))
    exact = tl.gloscope(adata, "sample", k=5).to_numpy()
    # a subset at least as large as every sample is every cell: the exact estimator
    np.testing.assert_allclose(
        tl.gloscope(adata, "sample", k=5, n_query_cells=240).to_numpy(), exact, rtol=1e-12
    )
    sub = tl.gloscope(adata, "sample", k=5, n_query_cells=60).to_numpy()
    np.testing.assert_array_equal(sub, tl.gloscope(adata, "sample", k=5, n_query_cells=60))
    assert not np.array_equal(sub, exact)  # a real subset, seeded
    other = tl.gloscope(adata, "sample", k=5, n_query_cells=60, random_state=1).to_numpy()
    assert not np.array_equal(sub, other)
    # (rows: s2, s0, s1) the shifted s2 stays far, within 15% of the exact value; s0, s1 close
    np.testing.assert_allclose(sub[0, 1:], exact[0, 1:], rtol=0.15)
    assert sub[1, 2] < 1.0 and sub[0, 1] > 10.0
    # the largest error shrinks with more query cells
    err = [
        np.abs(tl.gloscope(adata, "sample", k=5, n_query_cells=q).to_numpy() - exact).max()
        for q in (15, 150)
    ]
    assert err[1] < err[0]


def test_gloscope_errors():
    adata = _toy(n_per=(30, 10, 30))
    with pytest.raises(ValueError, match=r"'s1' \(10 cells\)"):
        tl.gloscope(adata, "sample", k=10)
    with pytest.raises(KeyError, match="X_scVI"):
        tl.gloscope(adata, "sample", obsm_key="X_scVI")
    with pytest.raises(ValueError, match="n_dims"):
        tl.gloscope(adata, "sample", n_dims=9, k=3)
    with pytest.raises(ValueError, match="n_query_cells=0"):
        tl.gloscope(adata, "sample", k=3, n_query_cells=0)
    adata.obsm["X_pca"][3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tl.gloscope(adata, "sample", k=3)


@pytest.mark.realdata
def test_gloscope_stephenson(data_dir):
    import anndata as ad

    adata = ad.read_h5ad(data_dir / _STEPH)
    t0 = time.perf_counter()
    D = tl.gloscope(adata, "donor_id")
    elapsed = time.perf_counter() - t0
    print(f"GloScope on Stephenson (10,000 cells, 50 PCs, k=25): {elapsed:.2f} s")
    assert D.shape == (20, 20)
    np.testing.assert_allclose(D.to_numpy(), D.to_numpy().T)
    assert (np.diag(D) == 0).all() and (D.to_numpy() >= 0).all()
    off = D.to_numpy()[~np.eye(20, dtype=bool)]
    assert (off > 0).all()  # distinct donors have distinct densities


# ----------------------------------------------------------------------------- sample AnnData
def test_sample_metadata_constant_columns():
    adata = _toy()
    meta = tl.sample_metadata(adata, "sample")
    assert list(meta.index) == ["s2", "s0", "s1"] and meta.index.name == "sample"
    assert set(meta.columns) == {"disease", "age", "n_cells"}  # cell_type/batch vary
    assert isinstance(meta["disease"].dtype, pd.CategoricalDtype)
    assert meta.loc["s2", "disease"] == "sick" and meta.loc["s0", "age"] == 30
    assert meta["n_cells"].tolist() == [50, 30, 40]
    maj = tl.sample_metadata(adata, "sample", majority_keys="batch")
    for s in maj.index:
        assert maj.loc[s, "batch"] == adata.obs.loc[adata.obs["sample"] == s, "batch"].mode()[0]
    with pytest.raises(KeyError, match="majority_keys"):
        tl.sample_metadata(adata, "sample", majority_keys="nope")


def test_sample_adata_from_uns_and_representation():
    adata = _toy()
    rep = pd.DataFrame(np.arange(6.0).reshape(3, 2), index=["s0", "s1", "s2"])
    adata.uns["X_rep"] = rep
    adata.uns["cellpop"] = {"sample_key": "sample"}
    sdata = tl.sample_adata(adata, rep_key="X_rep")  # sample_key from uns
    assert sdata.n_obs == 3 and list(sdata.obs_names) == ["s2", "s0", "s1"]
    np.testing.assert_array_equal(sdata.obsm["X_rep"], rep.loc[["s2", "s0", "s1"]].to_numpy())
    assert sdata.obs.loc["s2", "disease"] == "sick" and "n_cells" in sdata.obs
    sub = tl.sample_adata(adata, sample_key="sample", representation=rep.iloc[:2])
    assert list(sub.obs_names) == ["s0", "s1"] and "X_sample" in sub.obsm


def test_sample_adata_errors():
    adata = _toy()
    rep = pd.DataFrame(np.zeros((2, 2)), index=["s0", "zz"])
    with pytest.raises(ValueError, match="sample_key= is required"):
        tl.sample_adata(adata, representation=rep)
    with pytest.raises(ValueError, match=r"not samples.*'zz'"):
        tl.sample_adata(adata, sample_key="sample", representation=rep)
    with pytest.raises(KeyError, match="rep_key='X_missing'"):
        tl.sample_adata(adata, rep_key="X_missing", sample_key="sample")
    with pytest.raises(TypeError, match="DataFrame"):
        tl.sample_adata(adata, sample_key="sample", representation=np.zeros((3, 2)))


def test_sample_adata_infers_sample_key_from_model_output():
    from conftest import make_sample_adata

    from cellpop.tl import sample_adata

    a = make_sample_adata()
    names = a.obs["donor_id"].cat.categories
    rep = pd.DataFrame(
        np.arange(12.0).reshape(6, 2), index=pd.Index(names, name="donor_id"), columns=["d0", "d1"]
    )
    a.uns["X_rep"] = rep
    s = sample_adata(a, "X_rep")  # no sample_key: read from the index name
    assert s.n_obs == 6 and s.uns["cellpop"]["sample_key"] == "donor_id"
    np.testing.assert_array_equal(s.obsm["X_rep"], rep.to_numpy())
    rep.index.name = None
    with pytest.raises(ValueError, match="sample_key"):
        sample_adata(a, "X_rep")
