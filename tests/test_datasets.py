"""Tests of cellpop.datasets: loaders on the real files, and the download/cache path for real
against a loopback HTTP server."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellpop
from cellpop import datasets

CONVENTION_OBS = ["donor_id", "sample_id", "cell_type", "cell_type_ontology_term_id"]


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """No data dir, an empty temporary cache, and an unreachable default URL."""
    monkeypatch.delenv("CELLPOP_DATA_DIR", raising=False)
    monkeypatch.setenv("CELLPOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CELLPOP_DATA_URL", "http://127.0.0.1:9/")  # discard port: refused
    return tmp_path / "cache"


@pytest.fixture
def serve():
    """Start a loopback HTTP server on a random port serving a directory; yields a starter."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *args, **kwargs: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _check_counts(adata, n_obs, n_vars):
    assert adata.shape == (n_obs, n_vars)
    assert sp.issparse(adata.X) and adata.X.dtype == np.float32
    data = adata.X.data
    assert np.all(data >= 0) and np.array_equal(data, np.round(data))
    assert (adata.X != adata.layers["counts"]).nnz == 0
    for col in CONVENTION_OBS:
        assert col in adata.obs, col
    assert adata.obs["cell_type_ontology_term_id"].str.match(r"^CL:\d{7}$").all()


# ---------------------------------------------------------------- registry / API


def test_list_datasets_table():
    table = datasets.list_datasets()
    assert isinstance(table, pd.DataFrame)
    assert set(table.index) == set(datasets.REGISTRY)
    assert len(table) == 7
    assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    # every loader named in the table exists in the public API
    for loader in table["loader"]:
        assert callable(getattr(cellpop.datasets, loader))


def test_unknown_dataset_keyerror():
    with pytest.raises(KeyError, match="Unknown dataset 'nope'.*kang2018_ctrl"):
        datasets.fetch("nope")


def test_unknown_ontology_version():
    with pytest.raises(ValueError, match="2022-12-15, 2026-03-26"):
        datasets.cell_ontology("2020-01-01")


def test_download_failure_is_clear(no_data_env):
    with pytest.raises(OSError, match="Could not download dataset 'onek1k'.*data_dir"):
        datasets.fetch("onek1k")


# ---------------------------------------------------------------- real files


@pytest.mark.realdata
def test_stephenson2021_covid(data_dir):
    adata = cellpop.datasets.stephenson2021_covid()
    assert adata.shape == (10000, 0)
    assert adata.obsm["X_pca"].shape == (10000, 50)
    assert np.isfinite(adata.obsm["X_pca"]).all()
    assert adata.obs["donor_id"].nunique() == 20
    assert (adata.obs["donor_id"].value_counts() == 500).all()
    assert adata.obs["cell_type"].nunique() == 18
    assert (adata.obs.groupby("donor_id", observed=True)["disease"].first() == "COVID-19").sum()
    assert (
        adata.obs.groupby("donor_id", observed=True)["author_phenotype"]
        .first()
        .value_counts()["Healthy"]
        == 4
    )
    for col in CONVENTION_OBS:
        assert col in adata.obs


@pytest.mark.realdata
def test_kang2018_ctrl(data_dir):
    adata = datasets.kang2018_ctrl()
    _check_counts(adata, 12261, 1287)
    sizes = adata.obs["donor_id"].value_counts()
    assert len(sizes) == 8 and sizes.min() == 408 and sizes.max() == 2738
    assert adata.obs["cell_type"].nunique() == 8
    assert (adata.obs["cell_type_ontology_term_id"] == "CL:0000624").sum() == 5154
    assert np.median(np.asarray(adata.X.sum(axis=1)).ravel()) == pytest.approx(993, abs=1)


@pytest.mark.realdata
def test_onek1k(data_dir):
    adata = datasets.onek1k()
    _check_counts(adata, 7811, 1000)
    sizes = adata.obs["donor_id"].value_counts()
    assert len(sizes) == 40 and sizes.min() == 85 and sizes.max() == 318
    sex = adata.obs.groupby("donor_id", observed=True)["sex"].first().value_counts()
    assert sex["female"] == 21 and sex["male"] == 19
    assert adata.obs["cell_type"].nunique() == 4
    assert adata.var["gene_ids"].str.startswith("ENSG").all()


@pytest.mark.realdata
def test_bulk_files(data_dir):
    hoek = datasets.hoek2015_sorted_bulk()
    assert hoek.shape == (14, 34712)
    assert isinstance(hoek.X, np.ndarray) and hoek.X.dtype == np.float32
    assert np.array_equal(hoek.X, np.round(hoek.X)) and np.array_equal(
        hoek.X, hoek.layers["counts"]
    )
    assert hoek.obs["donor_id"].nunique() == 2 and hoek.obs["cell_type"].nunique() == 7

    cbx = datasets.cibersortx_wholeblood_bulk()
    assert cbx.shape == (12, 58581)
    np.testing.assert_allclose(cbx.X.sum(axis=1, dtype=np.float64), 1e6, rtol=1e-4)
    fr = cbx.obsm["cell_type_fractions"]
    assert fr.shape == (12, 8)
    np.testing.assert_allclose(
        fr[["neutrophil", "lymphocyte", "monocyte"]].sum(axis=1), 1, atol=0.01
    )


@pytest.mark.realdata
@pytest.mark.parametrize("version, n_terms", [("2022-12-15", 2804), ("2026-03-26", 3596)])
def test_cell_ontology(data_dir, version, n_terms):
    ont = datasets.cell_ontology(version)
    assert len(ont.terms()) == n_terms
    term = ont["CL:0000624"]
    assert term.name == "CD4-positive, alpha-beta T cell"
    parents = {t.id for t in term.superclasses(distance=1, with_self=False)}
    assert "CL:0000791" in parents  # alpha-beta T cell
    ancestors = {t.id for t in term.superclasses(with_self=False)}
    assert {"CL:0000084", "CL:0000000"} <= ancestors  # T cell, cell


# ---------------------------------------------------------------- lookup order / hashes


@pytest.mark.realdata
def test_data_dir_missing_file_falls_through(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLPOP_DATA_URL", "http://127.0.0.1:9/")
    path = datasets.fetch("cell_ontology_2022-12-15", data_dir=tmp_path)  # empty data_dir
    assert path == data_dir / "cl-basic_2022-12-15.obo"
    # explicit data_dir wins over $CELLPOP_DATA_DIR
    shutil.copy(path, tmp_path / path.name)
    assert datasets.fetch("cell_ontology_2022-12-15", data_dir=tmp_path) == tmp_path / path.name


@pytest.mark.realdata
def test_local_hash_mismatch(data_dir, tmp_path):
    bad = tmp_path / "cl-basic_2022-12-15.obo"
    bad.write_bytes((data_dir / bad.name).read_bytes()[:1000])
    with pytest.raises(
        ValueError, match=r"cl-basic_2022-12-15\.obo.*expected 4427812.*got [0-9a-f]{64}"
    ):
        datasets.cell_ontology(data_dir=tmp_path)


@pytest.mark.realdata
def test_download_verify_and_cache(data_dir, no_data_env, serve, monkeypatch):
    cache = no_data_env
    monkeypatch.setenv("CELLPOP_DATA_URL", serve(data_dir))
    adata = datasets.stephenson2021_covid()
    cached = cache / "stephenson2021_covid_20donors_pca.h5ad"
    assert cached.is_file()
    assert adata.shape == (10000, 0) and adata.obsm["X_pca"].shape == (10000, 50)
    # second call: served from the cache with the server unreachable
    monkeypatch.setenv("CELLPOP_DATA_URL", "http://127.0.0.1:9/")
    assert datasets.fetch("stephenson2021_covid") == cached
    assert datasets.stephenson2021_covid().obs_names.equals(adata.obs_names)


@pytest.mark.realdata
def test_download_hash_mismatch_leaves_nothing(data_dir, no_data_env, serve, monkeypatch, tmp_path):
    cache = no_data_env
    served = tmp_path / "served"
    served.mkdir()
    name = "cl-basic_2022-12-15.obo"
    (served / name).write_bytes((data_dir / name).read_bytes()[:-10] + b"tampered\n")
    monkeypatch.setenv("CELLPOP_DATA_URL", serve(served))
    with pytest.raises(ValueError, match=r"'cell_ontology_2022-12-15'.*hash.*4427812"):
        datasets.cell_ontology("2022-12-15")
    assert not cache.exists() or not any(cache.iterdir())


# ---------------------------------------------------------------- provenance scripts (smoke)


@pytest.mark.realdata
@pytest.mark.parametrize(
    "script, curated",
    [
        ("build_hoek2015_sorted_pbmc_bulk.py", "hoek2015_sorted_pbmc_bulk.h5ad"),
        ("build_cl-basic_2022-12-15.py", "cl-basic_2022-12-15.obo"),
    ],
)
def test_rebuild_script_reproduces(data_dir, script, curated, tmp_path):
    import subprocess
    import sys

    raw = data_dir / "raw"
    if not raw.is_dir():
        pytest.skip("public originals not available ($CELLPOP_DATA_DIR/raw)")
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    result = subprocess.run(
        [sys.executable, str(scripts / script), "--raw-dir", str(raw)]
        + ["--out", str(tmp_path / curated), "--compare", str(data_dir / curated)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "REPRODUCED" in result.stdout and "NOT reproduced" not in result.stdout
