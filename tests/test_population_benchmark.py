"""Smoke test: the PopulationJEPA benchmark suite runs end to end on tiny synthetic data."""

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

from cellpop.benchmark import SUITES, get_suite
from cellpop.benchmark import _population_jepa as suite
from cellpop.metrics import composition_probe


def _source(name, n_donors, disease, rng, genes):
    n = n_donors * 40
    counts = rng.poisson(3.0, size=(n, len(genes))).astype(np.float32)
    a = ad.AnnData(sparse.csr_matrix(counts))
    a.layers["counts"] = a.X.copy()
    a.var_names = [f"sym{g}" for g in genes]
    a.var["gene_ids"] = [f"ENSG{g:05d}" for g in genes]
    a.obs_names = [f"c{i}" for i in range(n)]
    a.obs["donor_id"] = np.repeat([f"d{i}" for i in range(n_donors)], 40)
    a.obs["cell_type_ontology_term_id"] = rng.choice(
        ["CL:0000624", "CL:0000860", "CL:0000787", "CL:0000625"], n
    )
    a.obs["disease"] = disease
    return a


def test_integration_and_disease_smoke(tmp_path):
    rng = np.random.default_rng(0)
    parts = {
        "kang": _source("kang", 4, "SLE", rng, range(0, 60)),
        "onek": _source("onek", 4, "normal", rng, range(5, 70)),  # 55 shared Ensembl IDs
    }
    adata = suite.combine_datasets(parts)
    assert adata.n_vars == 55 and adata.obsm["X_pca"].shape == (320, 50)
    assert adata.obs["donor_id"].nunique() == 8
    comp = suite._shared_clr(adata)
    # CD8 T (CL:0000625) is not shared; memory B (CL:0000787) counts as B cell (CL:0000236)
    assert sorted(comp.columns) == ["CL:0000236", "CL:0000624", "CL:0000860"]
    assert np.allclose(comp.sum(1), 0)
    settings = dict(suite.QUICK_SETTINGS)
    scores, curves = suite.evaluate(
        adata, "integration", settings, (0,), lambda m: None, comp, with_scvi=True
    )
    assert list(scores["method"]) == [
        "Pooled-PCA", "Cell-type proportions (CLR)", "Pooled-VAE (scVI)", "PopulationJEPA",
        "JEA (DINOv2-like)",
    ]  # fmt: skip
    assert scores["silhouette (dataset)"].between(-1, 1).all()
    assert np.isnan(scores.loc[1, "CT MSE"])  # the composition does not predict itself
    pca = scores.loc[0]
    ref = composition_probe(_pooled(adata), comp)
    assert pca["CT MSE"] == pytest.approx(ref["mse"])
    assert set(curves["curve"]) == {"validation_loss", "train_loss"}
    assert (curves.groupby(["method", "curve"]).size() == settings["max_epochs"]).all()
    suite.plot_curves(curves, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0

    adata.obs["disease"] = np.where(
        adata.obs["donor_id"].astype(str).str.endswith(("d0", "d1")), "normal", "COVID-19"
    )
    scores, _ = suite.evaluate(adata, "disease", settings, (0,), lambda m: None, comp, False)
    assert scores["COVID-19 recall"].between(0, 1).all()
    table = suite.summary(scores.assign(task="disease"))
    assert ("disease", "PopulationJEPA") in table.index
    assert "population_jepa" in SUITES and get_suite("population_jepa") is suite.run


def _pooled(adata):
    from cellpop import tl

    return tl.pseudobulk(adata, "donor_id", obsm_key="X_pca")
