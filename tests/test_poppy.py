"""POPPY specifics: setup and training errors, exact pooling, bulk encoder, fine-tuning."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from _poppy_data import make_mudata, toy_ontology

from cellpop.model import POPPY, ScJEPA

SETUP = dict(sample_key="donor", cell_type_key="ct", cohort_key="cohort", rna_obsm_key="X_pca")
INIT = dict(n_latent=8, n_hidden=16, n_token=4)
TRAIN = dict(max_epochs=2, n_cells=(20, 40), ontology=toy_ontology(), enable_progress_bar=False)


def _model(m=None, setup=None, **init):
    m = make_mudata() if m is None else m
    POPPY.setup_mudata(m, **(setup or SETUP))
    return POPPY(m, **{**INIT, **init})


@pytest.fixture(scope="module")
def trained():
    scvi.settings.seed = 0
    m = make_mudata()
    model = _model(m)
    model.train(**TRAIN)
    return m, model


def test_setup_errors():
    m = make_mudata()
    rna = m.mod["rna"]
    rna.obs["ct"] = rna.obs["ct"].cat.rename_categories({"CL:0000003": "T cell"})
    with pytest.raises(ValueError, match=r"without a Cell Ontology ID.*'T cell'"):
        POPPY.setup_mudata(m, **SETUP)
    m = make_mudata()
    m.mod["bulk"].X[0, 0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        POPPY.setup_mudata(m, **SETUP)
    m = make_mudata()
    bulk = m.mod["bulk"][m.mod["bulk"].obs["donor"] != "d2"].copy()
    with pytest.raises(ValueError, match=r"no bulk profile.*\['d2'\]"):
        POPPY.setup_mudata(md.MuData({"rna": m.mod["rna"], "bulk": bulk}), **SETUP)
    m = make_mudata()
    m.mod["rna"].obs["cohort"] = pd.Categorical(np.arange(m.mod["rna"].n_obs) % 2)
    with pytest.raises(ValueError, match="cohort_key='cohort' varies within"):
        POPPY.setup_mudata(m, **SETUP)
    with pytest.raises(TypeError, match="MuData"):
        POPPY(make_mudata().mod["rna"])


def test_train_errors():
    model = _model(setup={k: v for k, v in SETUP.items() if k != "cohort_key"})
    with pytest.raises(ValueError, match="needs cohort_key"):
        model.train(**TRAIN, cross_cohort=True)
    m = make_mudata()
    rna = m.mod["rna"]
    rna.obs["cohort"] = pd.Categorical(np.where(rna.obs["donor"] == "d0", "solo", "many"))
    model = _model(m)
    with pytest.raises(ValueError, match=r"one sample: \['solo'\]"):
        model.train(**TRAIN)
    model.train(**{**TRAIN, "max_epochs": 1}, cross_cohort=False)  # fine without the sampler
    bad = pd.DataFrame(np.eye(2), index=["d0", "d1"], columns=["d0", "d1"])
    with pytest.raises(ValueError, match="similarity lacks 4 sample"):
        model.train(**TRAIN, similarity=bad)


def test_similarity_is_the_ontology_kernel(trained):
    _, model = trained
    from cellpop.ontology import adaptive_kernel, composition_distances

    co = toy_ontology()
    comp = model.compositions()
    np.testing.assert_allclose(comp.sum(1), 1.0)
    D = composition_distances(comp, co.prune(comp.columns))
    np.testing.assert_allclose(model.similarity_.to_numpy(), adaptive_kernel(D, 100), rtol=1e-6)


def test_sample_similarity_cache(trained, tmp_path):
    _, model = trained
    co = toy_ontology()
    path = tmp_path / "emd.npz"
    S = model.sample_similarity(co, k=3, cache=path)
    assert path.is_file()
    with np.load(path) as f:  # the cached EMD matrix, rewritten with a changed value
        key, dist = str(f["key"]), f["distances"].copy()
    dist[0, 1] = dist[1, 0] = 0.0  # sample 1 becomes sample 0's exact neighbour
    np.savez(path, key=np.array(key), distances=dist)
    S2 = model.sample_similarity(co, k=3, cache=path)  # read from the cache, not re-solved
    assert S2.iloc[0, 1] == 1.0 and S.iloc[0, 1] < 1.0


def test_attention_and_exact_full_set_pooling(trained):
    m, model = trained
    z, alpha = model.get_latent_representation(return_attention=True)
    donors = m.mod["rna"].obs["donor"].to_numpy()
    sums = pd.Series(alpha).groupby(donors).sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-5)
    # the sample vector is E_c over all the sample's cells (one set, eq. 2)
    s = model.get_sample_representation()
    x = torch.as_tensor(np.asarray(m.mod["rna"].obsm["X_pca"])[donors == "d3"][None])
    with torch.no_grad():
        ref, w = model.module.embed_sets(x)
    np.testing.assert_allclose(s.loc["d3"].to_numpy(), ref[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w[0].numpy(), alpha[donors == "d3"], rtol=1e-4, atol=1e-6)


def test_sample_pooling_reads_sparse_input_in_blocks(monkeypatch):
    """Sparse layer input, cells read 7 at a time: E_c still pools every cell exactly."""
    from scipy import sparse

    import cellpop.model.base._base as base
    from cellpop.data._device import DeviceMatrix

    scvi.settings.seed = 0
    m = make_mudata()
    m.mod["rna"].layers["counts"] = sparse.csr_matrix(m.mod["rna"].layers["counts"])
    model = _model(m, {**SETUP, "rna_obsm_key": None, "rna_layer": "counts"})
    model.train(**{**TRAIN, "max_epochs": 1})
    monkeypatch.setattr(base, "INFERENCE_BATCH_SIZE", 7)
    dense, blocks = [], []  # rows densified by scipy; rows gathered per block
    toarray, rows = sparse.csr_matrix.toarray, DeviceMatrix.rows
    monkeypatch.setattr(
        sparse.csr_matrix, "toarray", lambda self, *a: dense.append(self.shape[0]) or toarray(self)
    )
    monkeypatch.setattr(
        DeviceMatrix, "rows", lambda self, i: blocks.append(len(i)) or rows(self, i)
    )
    s = model.get_sample_representation()
    assert max(dense, default=0) <= 7  # the whole matrix is never densified
    assert blocks and max(blocks) == 7
    donors = m.mod["rna"].obs["donor"].to_numpy()
    x = m.mod["rna"].layers["counts"][donors == "d2"].toarray()
    with torch.no_grad():
        ref, _ = model.module.embed_sets(torch.as_tensor(x, dtype=torch.float32)[None])
    np.testing.assert_allclose(s.loc["d2"].to_numpy(), ref[0].numpy(), rtol=1e-4, atol=1e-5)


def test_bulk_embedding_ignores_library_size(trained):
    m, model = trained
    b = model.get_sample_representation(modality="bulk")
    q = m.mod["bulk"].copy()
    q.X = q.X * 7.5  # log-normalisation per profile: the scale is irrelevant
    np.testing.assert_allclose(
        model.get_sample_representation(q, modality="bulk").to_numpy(), b.to_numpy(), atol=1e-5
    )


def test_training_uses_in_silico_and_pseudobulk_slots(trained):
    _, model = trained
    bulk, mask = model._paired_bulk()
    assert bulk.shape[:2] == (6, 2) and mask.all()
    model.module.train()
    torch.manual_seed(0)
    picks = {tuple(model.module.pick_bulk(bulk, mask)[0, :3].tolist()) for _ in range(30)}
    assert len(picks) == 2  # both the pseudobulk and the in-silico profile are drawn
    model.module.eval()
    torch.testing.assert_close(model.module.pick_bulk(bulk, mask), bulk[:, 0])  # pseudobulk


def test_fine_tune_and_predict_phenotype(tmp_path):
    scvi.settings.seed = 0
    m = make_mudata()
    model = _model(m)
    model.train(**TRAIN)
    bulk = m.mod["bulk"]
    with pytest.raises(RuntimeError, match="fine_tune"):
        model.predict_phenotype(m)
    bulk.obs["resp"] = np.where(bulk.obs["donor"].isin(["d0", "d1", "d2"]), "R", "NR")
    bulk.X[:, :3] *= np.where(bulk.obs["resp"] == "R", 4.0, 1.0)[:, None]  # a learnable signal
    bad = bulk.copy()
    bad.obs["resp"] = [str(i % 3) for i in range(bad.n_obs)]
    with pytest.raises(ValueError, match="exactly 2 classes"):
        model.fine_tune(bad, "resp")
    with pytest.raises(ValueError, match="positive='X'"):
        model.fine_tune(m, "resp", positive="X")
    model.fine_tune(m, "resp", positive="R", max_epochs=60, train_size=1.0,
                    enable_progress_bar=False)  # fmt: skip
    proba, att = model.predict_phenotype(m, key_added="resp")
    assert list(proba.index) == list(bulk.obs_names)
    assert ((proba["probability"] > 0) & (proba["probability"] < 1)).all()
    acc = (proba["prediction"].astype(str).to_numpy() == bulk.obs["resp"].to_numpy()).mean()
    assert acc >= 0.75  # the head learns the training labels (12 profiles, 6 donors)
    assert att.shape == (bulk.n_obs, m.mod["rna"].n_obs)
    np.testing.assert_allclose(att.sum(1), 1.0, rtol=1e-5)
    obs = m.mod["rna"].obs
    np.testing.assert_allclose(
        obs["resp_attention"].to_numpy(), att.mean(0) * att.shape[1], rtol=1e-5
    )
    _, contrib = model.predict_phenotype(m, attribution="contribution")
    bias = model.module.phenotype.bias.item()
    np.testing.assert_allclose(
        contrib.sum(1) + bias, proba["logit"].to_numpy(), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        contrib / att,
        np.broadcast_to(obs["resp_score"].to_numpy(), att.shape),
        rtol=1e-3,
        atol=1e-5,
    )
    model.save(tmp_path / "ft", overwrite=True)
    loaded = POPPY.load(tmp_path / "ft", m)
    pd.testing.assert_frame_equal(loaded.predict_phenotype(m)[0], proba)


def test_frozen_scjepa_bulk_encoder(tmp_path):
    scvi.settings.seed = 0
    m = make_mudata()
    rna = m.mod["rna"].copy()
    ScJEPA.setup_anndata(rna, layer="counts")
    sc = ScJEPA(rna, n_hidden=(16,), n_latent=6, n_projection=6, num_directions=8)
    with pytest.raises(RuntimeError, match="not trained"):
        _model(m, bulk_encoder=sc)
    sc.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    model = _model(m, bulk_encoder=sc)
    before = {k: v.clone() for k, v in model.module.bulk_backbone.state_dict().items()}
    for k, v in sc.module.encoder.state_dict().items():
        torch.testing.assert_close(before[f"encoder.{k}"], v)  # the ScJEPA's weights
    model.train(**TRAIN)
    for k, v in model.module.bulk_backbone.state_dict().items():
        torch.testing.assert_close(v, before[k])  # frozen
    b = model.get_sample_representation(modality="bulk")
    model.save(tmp_path / "sj", overwrite=True)
    loaded = POPPY.load(tmp_path / "sj", m)
    pd.testing.assert_frame_equal(loaded.get_sample_representation(modality="bulk"), b)
