"""ScJEPA model tests: input errors, outputs, determinism, save/load, transfer, real data."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from scipy import sparse

from cellpop.model import ScJEPA
from cellpop.nn import sigreg

SMALL = {"n_hidden": (32, 16), "n_latent": 8, "n_projection": 8, "num_directions": 16}


def _adata(n=240, g=40, seed=0):
    rng = np.random.default_rng(seed)
    kind = np.repeat([0, 1], n // 2)
    rate = np.where(kind[:, None] == 0, np.linspace(0.2, 3, g), np.linspace(3, 0.2, g))
    X = rng.poisson(rate).astype(np.float32)
    X[:, 0] += 1  # no empty cells
    a = ad.AnnData(sparse.csr_matrix(X))
    a.var_names = [f"g{i}" for i in range(g)]
    a.obs_names = [f"c{i}" for i in range(n)]
    a.obs["donor"] = pd.Categorical(np.tile(["d1", "d2", "d3", "d4"], n // 4))
    a.obs["ct"] = pd.Categorical(np.where(kind == 0, "A", "B"))
    return a


def _trained(a, seed=0, epochs=3, **kw):
    scvi.settings.seed = seed
    ScJEPA.setup_anndata(a, sample_key="donor", labels_key="ct")
    m = ScJEPA(a, **{**SMALL, **kw})
    m.train(max_epochs=epochs, batch_size=64, enable_progress_bar=False)
    return m


@pytest.fixture(scope="module")
def trained():
    a = _adata()
    return a, _trained(a)


def test_setup_errors():
    a = _adata()
    b = a.copy()
    b.X = b.X.astype(np.float32) * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        ScJEPA.setup_anndata(b)
    c = a.copy()
    c.X = c.X.toarray()
    c.X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ScJEPA.setup_anndata(c)
    d = a.copy()
    d.X = d.X.toarray()
    d.X[5] = 0
    with pytest.raises(ValueError, match="1 empty cell"):
        ScJEPA.setup_anndata(d)
    with pytest.raises(ValueError, match="looks like raw counts"):
        ScJEPA.setup_anndata(a, is_count_data=False)
    with pytest.raises(KeyError, match="sample_key='nope'"):
        ScJEPA.setup_anndata(a, sample_key="nope")


def test_getters_before_training_and_without_sample_key():
    a = _adata()
    ScJEPA.setup_anndata(a)
    m = ScJEPA(a, **SMALL)
    with pytest.raises(RuntimeError, match="not trained"):
        m.get_latent_representation()
    with pytest.raises(RuntimeError, match="not trained"):
        m.get_denoised_expression()
    with pytest.raises(ValueError, match="needs sample_key"):
        m.get_sample_representation()
    with pytest.raises(RuntimeError, match="not trained"):
        m.train_classifier("ct")


def test_loss_is_weighted_sum_of_terms():
    torch.manual_seed(0)
    from cellpop.module import ScJEPAModule

    mod = ScJEPAModule(
        20,
        n_hidden=(16,),
        n_latent=4,
        n_projection=4,
        num_directions=8,
        lambda_sigreg=0.3,
        gamma_recon=2.0,
    )
    x = torch.poisson(torch.full((32, 20), 2.0))
    inf, gen, lo = mod({"X": x}, loss_kwargs={"step": 5})
    assert inf["z"].shape == (9 * 32, 4)  # global + 8 views in one batch
    m = lo.extra_metrics
    expected = 0.7 * m["sim_loss"] + 0.3 * m["sigreg_loss"] + 2.0 * m["recon_loss"]
    torch.testing.assert_close(lo.loss.detach(), expected)
    h = inf["h"].reshape(9, 32, 4).detach()
    torch.testing.assert_close(m["sigreg_loss"], sigreg(h, 8, step=5))
    sim = ((h[1:] - h[0]) ** 2).sum(-1).mean()
    torch.testing.assert_close(m["sim_loss"], sim)
    # masked views: about half the non-zero genes are zeroed in each local view
    xp = mod.preprocess(x)
    assert torch.allclose(xp, torch.log1p(x / x.sum(1, keepdim=True) * 1e4))
    ablation = ScJEPAModule(20, n_hidden=(16,), n_latent=4, use_jepa=False, gamma_recon=1.0)
    _, _, lo2 = ablation({"X": x})
    torch.testing.assert_close(lo2.loss.detach(), lo2.extra_metrics["recon_loss"])


def test_outputs_and_adata_untouched(trained):
    a, m = trained
    before = (a.obs.copy(), dict(a.uns), a.X.copy())
    z = m.get_latent_representation()
    assert z.shape == (a.n_obs, 8) and np.isfinite(z).all()
    assert m.get_latent_representation(representation="projection").shape == (a.n_obs, 8)
    assert m.get_latent_representation(indices=[0, 5]).shape == (2, 8)
    np.testing.assert_allclose(m.get_latent_representation(indices=[0, 5]), z[[0, 5]], atol=1e-5)
    den = m.get_denoised_expression()
    assert den.shape == (a.n_obs, a.n_vars) and list(den.columns) == list(a.var_names)
    s = m.get_sample_representation()
    assert list(s.index) == ["d1", "d2", "d3", "d4"] and s.shape == (4, 8)
    np.testing.assert_allclose(s.loc["d2"].to_numpy(), z[a.obs.donor == "d2"].mean(0), rtol=1e-5)
    pd.testing.assert_frame_equal(a.obs, before[0])
    assert set(a.uns) == set(before[1]) and (a.X != before[2]).nnz == 0
    m.get_sample_representation(key_added="X_scjepa_sample")
    assert "X_scjepa_sample" in a.uns
    assert "validation_loss" in m.history and "sigreg_loss_train" in m.history
    with pytest.raises(ValueError, match="representation"):
        m.get_latent_representation(representation="nope")


def test_seeded_determinism():
    z1 = _trained(_adata(), seed=3, epochs=2).get_latent_representation()
    z2 = _trained(_adata(), seed=3, epochs=2).get_latent_representation()
    z3 = _trained(_adata(), seed=4, epochs=2).get_latent_representation()
    np.testing.assert_array_equal(z1, z2)
    assert not np.allclose(z1, z3)


def test_save_load_roundtrip_with_classifier(tmp_path):
    a = _adata()
    m = _trained(a)
    m.train_classifier("ct", max_epochs=2, batch_size=64)
    z, den, pred = m.get_latent_representation(), m.get_denoised_expression(), m.predict()
    assert set(pred) <= {"A", "B"}
    assert m.predict(soft=True).shape == (a.n_obs, 2)
    m.save(tmp_path / "scjepa", overwrite=True)
    m2 = ScJEPA.load(tmp_path / "scjepa", adata=a)
    np.testing.assert_array_equal(m2.get_latent_representation(), z)
    pd.testing.assert_frame_equal(m2.get_denoised_expression(), den)
    np.testing.assert_array_equal(m2.predict(), pred)
    np.testing.assert_array_equal(m2.classes_, m.classes_)


def test_query_gene_alignment(trained):
    a, m = trained
    z = m.get_latent_representation()
    # reorder genes, add an extra one: same embedding, query unchanged
    q = a[:, a.var_names[::-1]].copy()
    extra = ad.AnnData(sparse.hstack([q.X, sparse.csr_matrix(np.ones((q.n_obs, 1)))]).tocsr())
    extra.var_names = [*q.var_names, "extra_gene"]
    extra.obs_names = q.obs_names
    np.testing.assert_allclose(m.get_latent_representation(extra), z, atol=1e-5)
    assert extra.n_vars == a.n_vars + 1 and "extra_gene" in extra.var_names
    # a few missing genes: warning with the count, zero-filled
    few = a[:, a.var_names[3:]].copy()
    with pytest.warns(UserWarning, match="3 of the model's 40 genes are missing"):
        zq = m.get_latent_representation(few)
    ref = a.copy()
    dense = ref.X.toarray()
    dense[:, :3] = 0
    ref.X = sparse.csr_matrix(dense)
    np.testing.assert_allclose(zq, m.get_latent_representation(ref), atol=1e-5)
    # beyond the tolerance: clear error
    with pytest.raises(ValueError, match=r"30 of the model's 40 genes \(75%\) are missing"):
        m.get_latent_representation(a[:, a.var_names[30:]].copy())
    bad = a.copy()
    bad.X = bad.X * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        m.get_latent_representation(bad)


def test_log_normalised_input():
    a = _adata()
    a.layers["lognorm"] = np.log1p(a.X.toarray() / a.X.sum(1).A * 1e4)
    scvi.settings.seed = 0
    ScJEPA.setup_anndata(a, layer="lognorm", is_count_data=False)
    m = ScJEPA(a, **SMALL)
    assert m.module.normalize_counts is False
    m.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    assert m.get_latent_representation().shape == (a.n_obs, 8)


@pytest.mark.realdata
def test_kang_heldout_donor_annotation(data_dir):
    """Short training on 6 Kang donors (3,000 cells); probe F1 on 2 held-out donors."""
    from cellpop.metrics import annotation_f1

    a = ad.read_h5ad(data_dir / "kang2018_ctrl_8donors.h5ad")
    donors = a.obs["donor_id"].cat.categories
    test_donors = list(donors[:2])
    is_ref = ~a.obs["donor_id"].isin(test_donors).to_numpy()
    rng = np.random.default_rng(0)
    ref_idx = rng.choice(np.flatnonzero(is_ref), 3000, replace=False)
    test_idx = np.flatnonzero(~is_ref)
    ref = a[ref_idx].copy()
    scvi.settings.seed = 0
    ScJEPA.setup_anndata(ref, layer="counts", sample_key="donor_id")
    m = ScJEPA(ref, n_hidden=(256, 128), n_views=4, num_directions=64)
    m.train(max_epochs=4, batch_size=256, enable_progress_bar=False)
    z = np.concatenate([m.get_latent_representation(), m.get_latent_representation(a[test_idx])])
    idx = np.concatenate([ref_idx, test_idx])  # the held-out donors are a zero-shot query
    res = annotation_f1(
        z, a.obs["cell_type"].to_numpy()[idx], a.obs["donor_id"].to_numpy()[idx], test_donors
    )
    # 8 cell types: chance macro-F1 ~0.125, majority-class micro-F1 ~0.42
    assert res["f1_macro"] > 0.5 and res["f1_micro"] > 0.75, res


def test_annotation_f1_probe():
    from cellpop.metrics import annotation_f1

    rng = np.random.default_rng(0)
    lab = np.repeat(["A", "B", "C"], 100)
    don = np.tile(["d1", "d2", "d3", "d4"], 75)
    sep = rng.normal(size=(300, 5)) + 5 * (lab[:, None] == np.array(["A", "B", "C", "A", "B"]))
    for probe in ("logistic", "knn"):
        res = annotation_f1(sep, lab, don, ["d4"], probe=probe)
        assert res["f1_macro"] == 1.0 and res["f1_micro"] == 1.0
        assert res["n_test"] == 75 and res["n_train"] == 225
    noise = annotation_f1(rng.normal(size=(300, 5)), lab, don, ["d3", "d4"])
    assert noise["f1_macro"] < 0.6
    with pytest.raises(ValueError, match="same length"):
        annotation_f1(sep[:10], lab, don, ["d4"])
    with pytest.raises(ValueError, match="some but not all"):
        annotation_f1(sep, lab, don, ["nope"])
    with pytest.raises(ValueError, match="probe must be"):
        annotation_f1(sep, lab, don, ["d4"], probe="svm")


def test_integration_scores_copy_and_table():
    from cellpop.metrics import integration_scores

    rng = np.random.default_rng(0)
    n = 240
    a = ad.AnnData(np.abs(rng.normal(size=(n, 30))).astype(np.float32))
    a.obs["batch"] = pd.Categorical(np.tile(["b1", "b2"], n // 2))
    a.obs["ct"] = pd.Categorical(np.repeat(["A", "B", "C"], n // 3))
    onehot = (a.obs["ct"].cat.codes.to_numpy()[:, None] == np.arange(3)).astype(np.float32)
    a.obsm["good"] = onehot * 5 + rng.normal(size=(n, 3)).astype(np.float32)
    a.obsm["bad"] = rng.normal(size=(n, 3)).astype(np.float32)
    before = (set(a.obsm), set(a.uns), list(a.obs.columns))
    from scib_metrics.benchmark import BatchCorrection, BioConservation

    bio = BioConservation(isolated_labels=False, nmi_ari_cluster_labels_kmeans=False,
                          clisi_knn=False)  # fmt: skip
    batch = BatchCorrection(bras=False, ilisi_knn=False, kbet_per_label=False,
                            pcr_comparison=False)  # fmt: skip
    res = integration_scores(a, "batch", "ct", ["good", "bad"], bio_conservation_metrics=bio,
                             batch_correction_metrics=batch)  # fmt: skip
    assert set(res.index) == {"good", "bad"} and {"Total", "Bio conservation"} <= set(res.columns)
    assert res.loc["good", "Bio conservation"] > res.loc["bad", "Bio conservation"]
    assert (set(a.obsm), set(a.uns), list(a.obs.columns)) == before
    with pytest.raises(KeyError, match="'missing' is not in adata.obsm"):
        integration_scores(a, "batch", "ct", ["missing"])
