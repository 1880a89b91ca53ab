"""Tests of cellpop.pl: functions run headless and draw what they claim."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from anndata import AnnData  # noqa: E402

from cellpop import pl  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _sdata(n=12):
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {"disease": pd.Categorical(np.repeat(["case", "ctrl"], [n - 4, 4]))},
        index=[f"d{i}" for i in range(n)],
    )
    sdata = AnnData(obs=obs)
    sdata.obsm["X_rep"] = rng.normal(size=(n, 5))
    return sdata


def test_sample_embedding_computes_umap_on_a_copy():
    sdata = _sdata()
    ax = pl.sample_embedding(sdata, color="disease")
    assert isinstance(ax, matplotlib.axes.Axes)
    assert ax.collections[0].get_offsets().shape == (12, 2)  # one point per sample
    assert ax.get_title() == "disease"
    assert "X_umap" not in sdata.obsm and "neighbors" not in sdata.uns  # input untouched


def test_sample_embedding_existing_basis_dataframe_and_errors():
    sdata = _sdata()
    sdata.obsm["X_pca"] = np.arange(24.0).reshape(12, 2)
    fig, ax0 = plt.subplots()
    ax = pl.sample_embedding(sdata, color="disease", basis="pca", ax=ax0)
    assert ax is ax0
    np.testing.assert_allclose(ax.collections[0].get_offsets(), sdata.obsm["X_pca"])
    # a representation DataFrame + metadata: UMAP computed, colours from the metadata
    rep = pd.DataFrame(sdata.obsm["X_rep"], index=sdata.obs_names)
    # metadata in another order than the representation (reversed, so that a positional join
    # would give other labels): colours must follow the sample ids
    meta = sdata.obs.copy()
    ctrl = {"d0", "d1", "d5", "d6"}  # not symmetric under reversal
    meta["disease"] = pd.Categorical(["ctrl" if s in ctrl else "case" for s in meta.index])
    palette = {"case": "#ff0000", "ctrl": "#0000ff"}
    ax = pl.sample_embedding(rep, color="disease", metadata=meta.iloc[::-1], palette=palette)
    points = ax.collections[0]
    assert points.get_offsets().shape == (12, 2)
    # scanpy draws categorical points in obs order, i.e. the representation's sample order
    expected = [matplotlib.colors.to_rgba(palette[meta.loc[s, "disease"]]) for s in rep.index]
    np.testing.assert_allclose(points.get_facecolors(), expected)
    legend = {t.get_text() for t in ax.get_legend().get_texts()} if ax.get_legend() else set()
    assert legend == {"case", "ctrl"}


def test_sample_embedding_errors():
    sdata = _sdata()
    with pytest.raises(KeyError, match="color='age'"):
        pl.sample_embedding(sdata, color="age")
    with pytest.raises(ValueError, match="only basis='umap'"):
        pl.sample_embedding(sdata, basis="tsne")
    sdata.obsm["X_other"] = sdata.obsm["X_rep"]
    with pytest.raises(ValueError, match="Give rep_key="):
        pl.sample_embedding(sdata)
    with pytest.raises(ValueError, match=">= 3 samples"):
        pl.sample_embedding(_sdata()[:2].copy())
    rep = pd.DataFrame(np.zeros((3, 2)), index=["a", "b", "c"])
    with pytest.raises(KeyError, match="metadata lacks"):
        pl.sample_embedding(rep, metadata=pd.DataFrame({"x": [1]}, index=["a"]))


def test_cell_importance_heatmap_values_and_labels():
    imp = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0], [2.0, 2.0]])
    cell_types = pd.Categorical(["T", "B", "B", "T"], categories=["T", "B"])
    ax = pl.cell_importance_heatmap(imp, cell_types)
    arr = np.asarray(ax.images[0].get_array())
    assert arr.shape == (2, 2)  # heads x cell types
    # head 0: mean over cells 2.0; T = (1+2)/2 = 1.5 -> 0.75, B = (3+2)/2 = 2.5 -> 1.25
    # head 1: mean 2.0; T = (0+2)/2 = 1 -> 0.5, B = (2+4)/2 = 3 -> 1.5
    np.testing.assert_allclose(arr, [[0.75, 1.25], [0.5, 1.5]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["T", "B"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["head 0", "head 1"]
    raw = pl.cell_importance_heatmap(
        pd.DataFrame(imp, columns=["h_a", "h_b"]), list(cell_types), normalize=False
    )
    # plain labels: cell types in sorted order (B, T)
    np.testing.assert_allclose(np.asarray(raw.images[0].get_array()), [[2.5, 1.5], [3.0, 1.0]])
    assert [t.get_text() for t in raw.get_xticklabels()] == ["B", "T"]
    assert [t.get_text() for t in raw.get_yticklabels()] == ["h_a", "h_b"]
    with pytest.raises(ValueError, match="3 entries"):
        pl.cell_importance_heatmap(imp, ["T", "B", "B"])
    with pytest.raises(ValueError, match="NaN"):
        pl.cell_importance_heatmap(np.full((4, 2), np.nan), cell_types)


def test_metric_bars():
    scores = pd.DataFrame(
        {"retention": [0.1, 0.6, 0.3], "batch_mixing": [0.9, 0.8, 0.7]},
        index=["pseudobulk", "composition", "gloscope"],
    )
    ax = pl.metric_bars(scores)
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(scores.index)
    assert sorted(p.get_height() for p in ax.patches) == sorted(scores.to_numpy().ravel())
    with pytest.raises(ValueError, match="empty"):
        pl.metric_bars(pd.DataFrame())
