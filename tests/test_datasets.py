"""Tests of cellpop.datasets: registry, loaders on the real files, the embedded demo files and
the lookup order (the download path is in test_datasets_download.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellpop
from cellpop import datasets

_DATA_DIR = os.environ.get("CELLPOP_DATA_DIR")
_skip_without_data = pytest.mark.skipif(
    not _DATA_DIR or not Path(_DATA_DIR).is_dir(),
    reason="real data not available: set CELLPOP_DATA_DIR to the shared data directory",
)


def needs_data(test):
    """Mark a test ``realdata`` and skip it without ``$CELLPOP_DATA_DIR``."""
    return pytest.mark.realdata(_skip_without_data(test))


CONVENTION_OBS = ["donor_id", "sample_id", "cell_type", "cell_type_ontology_term_id"]


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """No data dir, an empty temporary cache, and an unreachable originals mirror."""
    monkeypatch.delenv("CELLPOP_DATA_DIR", raising=False)
    monkeypatch.setenv("CELLPOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", "http://127.0.0.1:9/")  # discard port: refused
    return tmp_path / "cache"


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
    assert len(table) == 11
    assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert table["original_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert (
        table["original_url"]
        .str.match(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/")
        .all()
    )
    assert set(table.index[table["embedded"]]) == {
        "stephenson2021_covid",
        "kang2018_ctrl_demo",
        "onek1k_demo",
        "hoek2015_sorted_bulk_demo",
        "cell_ontology_2022-12-15_demo",
    }
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
    with pytest.raises(OSError, match="Could not download the public original.*'onek1k'.*data_dir"):
        datasets.fetch("onek1k")


# ---------------------------------------------------------------- embedded demo files


def test_embedded_files_offline(no_data_env):
    """Both embedded files load with no data dir, no cache and no network; hashes pinned."""
    steph = datasets.stephenson2021_covid()
    assert datasets.fetch("stephenson2021_covid") == datasets.embedded_path("stephenson2021_covid")
    assert steph.shape == (10000, 0) and steph.obsm["X_pca"].shape == (10000, 50)
    assert steph.obs["donor_id"].nunique() == 20
    assert "epurdom/GloScope" in steph.uns["provenance"]

    kang = datasets.kang2018_ctrl_demo()
    _check_counts(kang, 2508, 1287)
    sizes = kang.obs["donor_id"].value_counts()
    assert len(sizes) == 8 and sizes.min() == 86 and sizes.max() == 557
    assert kang.obs["cell_type"].nunique() == 8
    assert "stratified by donor_id x cell_type" in kang.uns["subset"]
    assert "HelenaLC/muscat" in kang.uns["provenance"]
    mapping = kang.uns["cell_type_mapping"].set_index("author_cell_type")["n_obs"]
    assert mapping.sum() == 2508
    assert not no_data_env.exists()  # nothing was downloaded or cached

    table = datasets.list_datasets()
    total = sum(datasets.embedded_path(n).stat().st_size for n in table.index[table["embedded"]])
    assert total <= 6e6


def test_poppy_demo_files_offline(no_data_env):
    """The POPPY demo's embedded OneK1K subset, Hoek bulk gene subset and CL subset."""
    onek = datasets.onek1k_demo()
    _check_counts(onek, 1644, 190)
    assert onek.obs["donor_id"].nunique() == 40 and onek.obs["cell_type"].nunique() == 4
    kang_genes = set(datasets.kang2018_ctrl_demo().var_names)
    assert set(onek.var_names) <= kang_genes
    assert "190 of the 1,000" in onek.uns["subset"]
    hoek = datasets.hoek2015_sorted_bulk_demo()
    assert hoek.shape == (14, 1099) and set(hoek.var_names) <= kang_genes
    assert np.array_equal(hoek.X, hoek.layers["counts"])
    co = datasets.cell_ontology("2022-12-15-demo")
    assert len(co) == 71 and co["CL:0000624"].name == "CD4-positive, alpha-beta T cell"
    assert not no_data_env.exists()


def test_embedded_hash_checked(no_data_env, monkeypatch):
    import dataclasses

    info = datasets.REGISTRY["kang2018_ctrl_demo"]
    monkeypatch.setitem(
        datasets.REGISTRY, info.name, dataclasses.replace(info, embedded_sha256="0" * 64)
    )
    with pytest.raises(ValueError, match=r"embedded in the package.*kang2018_ctrl_demo\.h5ad"):
        datasets.kang2018_ctrl_demo()


def test_stratified_subset_hand_computed():
    """Rule: each stratum keeps min(n, max(round(n * n_cells / n_obs), min_per_stratum))."""
    from cellpop.datasets._convert_sc import stratified_subset

    # strata (d1, A): 60, (d1, B): 2, (d2, A): 30, (d2, B): 8 -> 100 cells, target 20
    donors = ["d1"] * 62 + ["d2"] * 38
    types = ["A"] * 60 + ["B"] * 2 + ["A"] * 30 + ["B"] * 8
    adata = ad.AnnData(
        X=sp.csr_matrix(np.ones((100, 2), np.float32)),
        obs=pd.DataFrame(
            {"donor_id": donors, "cell_type": types, "author_cell_type": types},
            index=[f"c{i}" for i in range(100)],
        ),
    )
    adata.uns["title"] = "t"
    adata.uns["cell_type_mapping"] = pd.DataFrame(
        {"author_cell_type": ["A", "B"], "n_obs": [90, 10]}
    )
    sub = stratified_subset(adata, n_cells=20, min_per_stratum=3, seed=0)
    counts = sub.obs.groupby(["donor_id", "cell_type"]).size()
    # 60*0.2 = 12; 2 -> min(2, 3) = 2; 30*0.2 = 6; 8*0.2 = 1.6 -> 2 -> raised to 3
    assert counts.to_dict() == {("d1", "A"): 12, ("d1", "B"): 2, ("d2", "A"): 6, ("d2", "B"): 3}
    assert list(sub.uns["cell_type_mapping"]["n_obs"]) == [18, 5]
    positions = [int(n[1:]) for n in sub.obs_names]
    assert positions == sorted(positions)


@needs_data
def test_embedded_files_equal_rebuilt_from_curated():
    """Embedded Stephenson = curated file; embedded Kang demo = the rule on the curated file."""
    from cellpop.datasets._convert_sc import stratified_subset
    from cellpop.datasets._curation import compare

    steph = ad.read_h5ad(datasets.embedded_path("stephenson2021_covid"))
    ref = ad.read_h5ad(Path(_DATA_DIR) / "stephenson2021_covid_20donors_pca.h5ad")
    checks = compare(steph, ref)
    assert all(checks.values()), [k for k, ok in checks.items() if not ok]

    demo = datasets.kang2018_ctrl_demo()
    expected = stratified_subset(datasets.kang2018_ctrl())
    checks = compare(demo, expected)
    failed = [k for k, ok in checks.items() if not ok]
    assert failed == ["uns['units']"]  # the demo file stores X only and says so


@needs_data
def test_poppy_demo_files_equal_rebuilt_from_curated():
    """Embedded OneK1K / Hoek demo files = their rule on the curated files; the CL subset gives
    the same pruned graph and hop distances as the full ontology for every curated CL ID."""
    from cellpop.datasets._convert_demo import DEMO_ONTOLOGY_TABLES
    from cellpop.datasets._convert_sc import stratified_subset
    from cellpop.datasets._curation import compare, read_table
    from cellpop.ontology import CellOntology

    genes = list(datasets.kang2018_ctrl_demo().var_names)
    full = datasets.onek1k()
    expected = stratified_subset(full[:, [g for g in full.var_names if g in genes]].copy(), 1600)
    failed = [k for k, ok in compare(datasets.onek1k_demo(), expected).items() if not ok]
    assert set(failed) <= {"uns['units']", "uns['subset']"}, failed
    hoek = datasets.hoek2015_sorted_bulk()
    demo = datasets.hoek2015_sorted_bulk_demo()
    assert np.array_equal(demo.X, hoek[:, demo.var_names].X)
    assert list(demo.var_names) == [g for g in genes if g in set(hoek.var_names)]
    ids = sorted(set().union(*(read_table(t)["cell_type_ontology_term_id"]
                               for t in DEMO_ONTOLOGY_TABLES)))  # fmt: skip
    small = CellOntology(version="2022-12-15-demo").prune(ids)
    big = CellOntology(data_dir=_DATA_DIR).prune(ids)
    assert small.terms == big.terms
    np.testing.assert_array_equal(small.hop_distances(), big.hop_distances())


# ---------------------------------------------------------------- real files


@needs_data
def test_stephenson2021_covid():
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


@needs_data
def test_kang2018_ctrl():
    adata = datasets.kang2018_ctrl()
    _check_counts(adata, 12261, 1287)
    sizes = adata.obs["donor_id"].value_counts()
    assert len(sizes) == 8 and sizes.min() == 408 and sizes.max() == 2738
    assert adata.obs["cell_type"].nunique() == 8
    assert (adata.obs["cell_type_ontology_term_id"] == "CL:0000624").sum() == 5154
    assert np.median(np.asarray(adata.X.sum(axis=1)).ravel()) == pytest.approx(993, abs=1)


@needs_data
def test_onek1k():
    adata = datasets.onek1k()
    _check_counts(adata, 7811, 1000)
    sizes = adata.obs["donor_id"].value_counts()
    assert len(sizes) == 40 and sizes.min() == 85 and sizes.max() == 318
    sex = adata.obs.groupby("donor_id", observed=True)["sex"].first().value_counts()
    assert sex["female"] == 21 and sex["male"] == 19
    assert adata.obs["cell_type"].nunique() == 4
    assert adata.var["gene_ids"].str.startswith("ENSG").all()


@needs_data
def test_bulk_files():
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


@needs_data
@pytest.mark.parametrize("version, n_terms", [("2022-12-15", 2804), ("2026-03-26", 3596)])
def test_cell_ontology(version, n_terms):
    ont = datasets.cell_ontology(version)
    assert len(ont.terms()) == n_terms
    term = ont["CL:0000624"]
    assert term.name == "CD4-positive, alpha-beta T cell"
    parents = {t.id for t in term.superclasses(distance=1, with_self=False)}
    assert "CL:0000791" in parents  # alpha-beta T cell
    ancestors = {t.id for t in term.superclasses(with_self=False)}
    assert {"CL:0000084", "CL:0000000"} <= ancestors  # T cell, cell


# ---------------------------------------------------------------- lookup order / hashes


@needs_data
def test_data_dir_missing_file_falls_through(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", "http://127.0.0.1:9/")
    path = datasets.fetch("cell_ontology_2022-12-15", data_dir=tmp_path)  # empty data_dir
    assert path == Path(_DATA_DIR) / "cl-basic_2022-12-15.obo"
    # explicit data_dir wins over $CELLPOP_DATA_DIR
    shutil.copy(path, tmp_path / path.name)
    assert datasets.fetch("cell_ontology_2022-12-15", data_dir=tmp_path) == tmp_path / path.name


@needs_data
def test_local_hash_mismatch(tmp_path):
    bad = tmp_path / "cl-basic_2022-12-15.obo"
    bad.write_bytes((Path(_DATA_DIR) / bad.name).read_bytes()[:1000])
    with pytest.raises(
        ValueError, match=r"cl-basic_2022-12-15\.obo.*expected 4427812.*got [0-9a-f]{64}"
    ):
        datasets.cell_ontology(data_dir=tmp_path)


# ---------------------------------------------------------------- provenance scripts (smoke)


@needs_data
@pytest.mark.parametrize(
    "script, curated",
    [
        ("build_hoek2015_sorted_pbmc_bulk.py", "hoek2015_sorted_pbmc_bulk.h5ad"),
        ("build_cl-basic_2022-12-15.py", "cl-basic_2022-12-15.obo"),
    ],
)
def test_rebuild_script_reproduces(script, curated, tmp_path, monkeypatch, capsys):
    """The scripts' command line (run in-process: they call the package's converters)."""
    import runpy
    import sys

    raw = Path(_DATA_DIR) / "raw"
    if not raw.is_dir():
        pytest.skip("public originals not available ($CELLPOP_DATA_DIR/raw)")
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    argv = [script, "--raw-dir", str(raw), "--out", str(tmp_path / curated)]
    monkeypatch.setattr(sys, "argv", argv + ["--compare", str(Path(_DATA_DIR) / curated)])
    runpy.run_path(str(scripts / script), run_name="__main__")
    out = capsys.readouterr().out
    assert "REPRODUCED" in out and "NOT reproduced" not in out
    assert (tmp_path / curated).is_file()
    # a different curated file is reported, and the exit status says so
    other = tmp_path / ("other.obo" if curated.endswith(".obo") else "other.h5ad")
    shutil.copy(Path(_DATA_DIR) / "onek1k_40donors.h5ad", other)
    if curated.endswith(".obo"):
        other.write_bytes(b"format-version: 1.2\n")
    monkeypatch.setattr(sys, "argv", argv + ["--compare", str(other)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(scripts / script), run_name="__main__")
    assert exit_info.value.code == 1
    assert "NOT reproduced" in capsys.readouterr().out


def test_cl_json_to_obo_hand_written():
    """The CL 2026 conversion on a two-term JSON: fields, quoting and distance-1 parents."""
    from cellpop.datasets._convert_other import CL_2026_HEADER, cl_json_to_obo

    terms = {
        "CL:1": {"label": "cell", "description": 'a "unit"\nof life', "ancestors": {}},
        "CL:2": {
            "label": "T cell",
            "synonyms": ["T-cell"],
            "deprecated": True,
            "replaced_by": "CL:3",
            "ancestors": {"CL:1": 1, "CL:0": 2},
        },
    }
    text = cl_json_to_obo(json.loads(json.dumps(terms)))
    assert text == CL_2026_HEADER + (
        '\n[Term]\nid: CL:1\nname: cell\ndef: "a \\"unit\\" of life" []\n'
        '\n[Term]\nid: CL:2\nname: T cell\nsynonym: "T-cell" EXACT []\nis_obsolete: true\n'
        "replaced_by: CL:3\nis_a: CL:1\n"
    )


def test_shipped_tables_have_provenance():
    from cellpop.datasets._curation import package_data, read_table

    for name in ["cell_types_kang2018.tsv", "cell_types_onek1k.tsv", "onek1k_gene_symbols.tsv",
                 "cell_types_stephenson2021.tsv", "cell_types_hoek2015.tsv",
                 "fractions_cibersortx.tsv"]:  # fmt: skip
        assert package_data(name).read_text().startswith("# "), name
    genes = read_table("onek1k_gene_symbols.tsv")
    assert genes.shape == (1000, 3) and genes["gene_ids"].str.startswith("ENSG").all()
    assert genes["gene_symbols"].is_unique
    assert (genes["gene_symbol_source"] == "unmapped (Ensembl ID kept)").sum() == 11
