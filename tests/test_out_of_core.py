"""Out-of-core data: row-block reads (LazyRows), prefetch, read_backed, AnnCollection input, and
loaders that give the same batches from disk as from memory."""

from __future__ import annotations

import threading

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from anndata.experimental import AnnCollection
from scipy import sparse
from test_contract import CASES, Case, _trained, make_adata

from cellpop.data import (
    CellDataModule,
    LazyRows,
    SampleSets,
    align_columns,
    collection_anndata,
    is_on_disk,
    prefetch,
    read_backed,
)
from cellpop.data._lazy import check_blocks, streaming_pca
from cellpop.data._validation import check_finite
from cellpop.model import SampleCLR


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """make_adata() in memory, and the same written as .h5ad and as a zarr store (once)."""
    path = tmp_path_factory.mktemp("stored")
    a = make_adata()
    a.write_h5ad(path / "a.h5ad")
    a.write_zarr(path / "a.zarr")
    return a, path


def test_lazy_rows_read_any_order_and_columns(stored):
    a, path = stored
    X = a.layers["counts"].toarray()
    disk = read_backed(path / "a.h5ad").layers["counts"]
    assert is_on_disk(disk) and not is_on_disk(a.layers["counts"])
    rows = LazyRows([disk])
    idx = np.array([7, 3, 3, 250, 0, 7])  # unsorted, repeated
    np.testing.assert_array_equal(rows.rows(idx), X[idx])
    np.testing.assert_array_equal(rows.rows(idx, dense=False).toarray(), X[idx])
    pos = np.array([5, -1, 0, 29])  # a missing gene is a zero column
    np.testing.assert_array_equal(
        rows.with_columns(pos).rows(idx), align_columns(X, pos)[idx].astype(np.float32)
    )
    np.testing.assert_array_equal(
        rows.with_columns(pos).with_columns([3, 0]).rows(idx), X[idx][:, [29, 5]]
    )
    with pytest.raises(IndexError, match=r"\[0, 300\)"):
        rows.rows([300])
    # two parts, the second a dense h5py dataset with its genes reversed
    with h5py.File(path / "d.h5", "w") as f:
        f["x"] = X[:40, ::-1]
    f = h5py.File(path / "d.h5", "r")
    both = LazyRows([disk, f["x"]], [None, np.arange(29, -1, -1)])
    assert both.shape == (340, 30)
    full = np.concatenate([X, X[:40]])
    idx = np.array([339, 5, 300, 299, 301])
    np.testing.assert_array_equal(both.rows(idx), full[idx])
    np.testing.assert_array_equal(both[10:12].toarray(), full[10:12])
    np.testing.assert_array_equal(both[[3, 1], 2:4].toarray(), full[[3, 1], 2:4])
    np.testing.assert_array_equal(both.to_memory().toarray(), full)
    blocks = list(both.blocks(128))
    assert [s for s, _ in blocks] == [0, 128, 256]
    np.testing.assert_array_equal(sparse.vstack([b for _, b in blocks]).toarray(), full)


def test_check_blocks_names_the_input(stored):
    a, path = stored
    b = a.copy()
    b.X = b.X.toarray()
    b.X[123, 4] = np.nan
    b.write_h5ad(path / "nan.h5ad")
    disk = ad.read_h5ad(path / "nan.h5ad", backed="r")
    with pytest.raises(ValueError, match="adata.X contains 1 NaN"):
        check_blocks(LazyRows([disk.X]), check_finite, "adata.X")
    with pytest.raises(ValueError, match="adata.X contains 1 NaN"):  # at setup, streamed
        SampleCLR.setup_anndata(disk, sample_key="donor")


def test_prefetch_order_errors_and_early_stop():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise RuntimeError("boom at 2")

    got = []
    with pytest.raises(RuntimeError, match="boom at 2"):
        for x in prefetch(failing()):
            got.append(x)
    assert got == [1]
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # stops the worker
    assert threading.active_count() == before and len(produced) <= 3 + 2 + 1


def test_read_backed_keeps_matrices_on_disk(stored):
    a, path = stored
    for name in ("a.h5ad", "a.zarr"):
        b = read_backed(path / name)
        assert is_on_disk(b.X) and all(is_on_disk(b.layers[k]) for k in ("counts", "lognorm"))
        pd.testing.assert_frame_equal(b.obs, a.obs)
        np.testing.assert_array_equal(b.obsm["X_pca"], a.obsm["X_pca"])
        np.testing.assert_array_equal(
            b.layers["lognorm"][np.arange(5)].toarray(), a.layers["lognorm"][:5].toarray()
        )
    with pytest.raises(FileNotFoundError, match="nope"):
        read_backed(path / "nope.h5ad")


def _minibatches(dm: CellDataModule, loader: str) -> list[dict]:
    dm.setup("fit")
    return [dict(b) for b in getattr(dm, loader)()]


def test_cell_and_set_loaders_equal_in_memory(stored):
    a, path = stored
    disk = read_backed(path / "a.zarr").layers["counts"]
    partners = np.random.default_rng(0).integers(0, a.n_obs, (a.n_obs, 4))
    kw = dict(batch=a.obs["batch"].cat.codes, batch_size=64, seed=3, partners=partners)
    mem, dsk = CellDataModule(a.layers["counts"], **kw), CellDataModule(disk, **kw)
    for loader in ("train_dataloader", "val_dataloader"):
        for bm, bd in zip(_minibatches(mem, loader), _minibatches(dsk, loader), strict=True):
            assert bm.keys() == bd.keys()
            for k in bm:
                torch.testing.assert_close(bd[k], bm[k], rtol=0, atol=0)
    codes = a.obs["donor"].cat.codes.to_numpy()
    sm, sd = SampleSets(a.layers["counts"], codes, 6), SampleSets(disk, codes, 6)
    for small in ("replace", "mask"):
        xm = sm.draw(np.array([0, 2, 5]), 70, torch.Generator().manual_seed(1), small)
        xd = sd.draw(np.array([0, 2, 5]), 70, torch.Generator().manual_seed(1), small)
        for m, d in zip(xm, xd, strict=True):
            torch.testing.assert_close(d, m, rtol=0, atol=0)


def test_streaming_pca_matches_exact_pca(stored):
    a, path = stored
    X = a.layers["lognorm"].toarray().astype(np.float64)
    scores = streaming_pca(LazyRows([read_backed(path / "a.h5ad").layers["lognorm"]]), 4)
    Xc = X - X.mean(0)
    u, sv, _ = np.linalg.svd(Xc, full_matrices=False)
    ref = u[:, :4] * sv[:4]
    signs = np.sign((scores * ref).sum(0))
    np.testing.assert_allclose(scores * signs, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="max_features=10"):
        streaming_pca(LazyRows([a.layers["lognorm"]]), 2, max_features=10)


def test_anncollection_trains_like_the_concatenated_anndata(tmp_path):
    """Two files (the second with its genes in another order) as one AnnCollection: the model
    trained on :func:`collection_anndata` equals the one trained on the concatenation."""
    a1, a2 = make_adata(n_donors=3, seed=0), make_adata(n_donors=3, seed=1)
    a2.obs_names = [f"x{i}" for i in range(a2.n_obs)]
    a2.obs["donor"] = pd.Categorical([f"e{d}" for d in a2.obs["donor"]])
    a1.write_h5ad(tmp_path / "1.h5ad")
    a2[:, a2.var_names[::-1]].copy().write_h5ad(tmp_path / "2.h5ad")
    files = [read_backed(tmp_path / f"{i}.h5ad") for i in (1, 2)]
    coll = collection_anndata(AnnCollection(files, join_vars="inner", label="file"))
    assert isinstance(coll.layers["lognorm"], LazyRows) and coll.n_obs == 300
    assert list(coll.obs["file"].unique()) == ["0", "1"]
    full = ad.concat([a1, a2])
    np.testing.assert_array_equal(
        coll.layers["lognorm"].rows(np.arange(300)), full.layers["lognorm"].toarray()
    )
    case = Case(CASES[1].cls, CASES[1].setup, CASES[1].init, CASES[1].train)
    z = _trained(case, coll, max_epochs=1).get_latent_representation()
    z0 = _trained(case, full, max_epochs=1).get_latent_representation()
    np.testing.assert_allclose(z, z0, rtol=1e-5, atol=1e-6)
