import numpy as np
import pandas as pd
import pytest
import scvi
from conftest import make_sample_adata

from cellpop.model import SampleCLR

FAST = dict(
    max_epochs=3, n_cells=(20, 40), enable_progress_bar=False, plan_kwargs={"warmup_epochs": 1}
)


def _setup(adata, **kw):
    kw.setdefault("sample_key", "donor_id")
    kw.setdefault("obsm_key", "X_pca")
    SampleCLR.setup_anndata(adata, **kw)
    return SampleCLR(adata)


def _snapshot(adata):
    return (
        adata.obs[[c for c in adata.obs.columns if not c.startswith("_scvi")]].copy(),
        {k: v.copy() for k, v in adata.obsm.items()},
        set(k for k in adata.uns if not k.startswith("_scvi")),
    )


def test_train_and_outputs(sample_adata):
    before = _snapshot(sample_adata)
    model = _setup(sample_adata, classification_keys=["disease"])
    model.train(**FAST)
    reps = model.get_sample_representation(key_added="X_sampleclr")
    assert reps.shape == (6, model.module.n_output)
    assert list(reps.index) == [f"D{i}" for i in range(6)] and reps.index.name == "donor_id"
    assert sample_adata.uns["X_sampleclr"] is reps
    assert np.isfinite(reps.to_numpy()).all()
    cells = model.get_latent_representation()
    assert cells.shape == (360, model.module.n_output)
    sub = model.get_latent_representation(indices=np.arange(10))
    np.testing.assert_allclose(sub, cells[:10], rtol=1e-5, atol=1e-6)
    imp = model.get_cell_importance(kind="probability")
    assert imp.shape == (360, model.module.n_heads)
    codes = sample_adata.obs["donor_id"].cat.codes.to_numpy()
    np.testing.assert_allclose(pd.DataFrame(imp).groupby(codes).sum().to_numpy(), 1.0, rtol=1e-6)
    rel = model.get_cell_importance()
    np.testing.assert_allclose(rel.mean(0), 1.0, rtol=1e-6)  # equal-size samples: mean 1
    pred = model.predict(return_proba=True)
    assert set(pred["disease"].astype(str)) <= {"covid", "healthy"}
    np.testing.assert_allclose(pred[["disease:covid", "disease:healthy"]].sum(1), 1.0, atol=1e-5)
    assert "contrastive_loss_train" in model.history and "cls_disease_loss_train" in model.history
    # the user's AnnData: nothing changed but the requested key
    obs, obsm, uns = _snapshot(sample_adata)
    pd.testing.assert_frame_equal(obs, before[0])
    for k in before[1]:
        np.testing.assert_array_equal(obsm[k], before[1][k])
    assert uns - before[2] == {"X_sampleclr"}


def test_getters_need_training(sample_adata):
    model = _setup(sample_adata)
    for getter in (model.get_sample_representation, model.get_latent_representation):
        with pytest.raises(RuntimeError, match="train"):
            getter()


def test_determinism_and_save_load(sample_adata, tmp_path):
    reps = []
    for _ in range(2):
        scvi.settings.seed = 7
        adata = make_sample_adata()
        model = _setup(adata, classification_keys=["disease"], regression_keys=["age"])
        model.train(**FAST)
        reps.append(model.get_sample_representation())
    pd.testing.assert_frame_equal(reps[0], reps[1])
    model.save(tmp_path / "m", overwrite=True)
    loaded = SampleCLR.load(tmp_path / "m", adata=adata)
    pd.testing.assert_frame_equal(loaded.get_sample_representation(), reps[1])
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), model.get_latent_representation()
    )
    np.testing.assert_array_equal(loaded.get_cell_importance(), model.get_cell_importance())
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    assert loaded.target_info_ == model.target_info_


def test_new_samples_and_feature_mismatch(sample_adata):
    model = _setup(sample_adata)
    model.train(**FAST)
    query = make_sample_adata(n_samples=3, seed=5)
    query.obs["donor_id"] = query.obs["donor_id"].cat.rename_categories(lambda c: "Q" + c)
    reps = model.get_sample_representation(query)
    assert list(reps.index) == ["QD0", "QD1", "QD2"]
    bad = query.copy()
    bad.obsm["X_pca"] = bad.obsm["X_pca"][:, :5]
    with pytest.raises(ValueError, match="features"):
        model.get_sample_representation(bad)
    nan = query.copy()
    nan.obsm["X_pca"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.get_latent_representation(nan)


def test_prior_similarity_and_supervised_kinds(sample_adata):
    sample_adata.obs["severity"] = pd.Categorical(
        sample_adata.obs["severity"], categories=["mild", "moderate", "severe"], ordered=True
    )
    model = _setup(sample_adata, ordinal_regression_keys=["severity"], regression_keys=["age"])
    names = sample_adata.obs["donor_id"].cat.categories
    prior = pd.DataFrame(np.eye(6), index=names, columns=names)
    model.train(prior_similarity=prior, **FAST)
    pred = model.predict()
    assert pred["severity"].cat.ordered and list(pred.columns) == ["severity", "age"]
    assert model.prior_similarity_ is prior
    with pytest.raises(ValueError, match="lacks"):
        model.train(prior_similarity=prior.iloc[:3, :3], **FAST)
    # the prior reaches the loss: same seed, uniform prior vs none -> other contrastive losses
    losses = []
    for p in (None, pd.DataFrame(1.0, index=names, columns=names)):
        scvi.settings.seed = 0
        m = _setup(sample_adata.copy())
        m.train(prior_similarity=p, **FAST)
        losses.append(m.history["contrastive_loss_train"].to_numpy(dtype=float).ravel())
    assert np.abs(losses[0] - losses[1]).max() > 1e-3


def test_missing_supervised_labels_are_masked(sample_adata):
    obs = sample_adata.obs
    obs["disease"] = obs["disease"].astype(object)
    obs.loc[obs["donor_id"] == "D0", "disease"] = np.nan
    model = _setup(sample_adata, classification_keys=["disease"])
    model.train(**FAST)
    assert np.isfinite(model.history["train_loss"].to_numpy(dtype=float)).all()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(sample_key="nope"), KeyError, "nope"),
        (dict(obsm_key="X_umap"), KeyError, "X_umap"),
        (dict(batch_key="lane"), KeyError, "lane"),
        (dict(classification_keys=["nope"]), KeyError, "nope"),
        (dict(classification_keys=["cell_type"]), ValueError, "not constant"),
        (dict(regression_keys=["disease"]), ValueError, "numeric"),
        (dict(ordinal_regression_keys=["severity"]), ValueError, "order unknown"),
        (
            dict(ordinal_regression_keys=["severity"], ordinal_orders={"severity": ["mild"]}),
            ValueError,
            "outside its order",
        ),
        (dict(min_cells_per_sample=100), ValueError, "fewer than"),
    ],
)
def test_setup_errors(sample_adata, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _setup(sample_adata, **kwargs)


def test_setup_rejects_nan_single_sample_and_missing_donor(sample_adata):
    a = sample_adata.copy()
    a.obsm["X_pca"][3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        _setup(a)
    one = sample_adata[sample_adata.obs["donor_id"] == "D0"].copy()
    with pytest.raises(ValueError, match="at least 2"):
        _setup(one)
    a = sample_adata.copy()
    a.obs["donor_id"] = a.obs["donor_id"].astype(object)
    a.obs.iloc[0, a.obs.columns.get_loc("donor_id")] = None
    with pytest.raises(ValueError, match="missing"):
        _setup(a)
    # early stopping (the default) without a validation set is switched off, not an error
    m = _setup(sample_adata)
    m.train(early_stopping=True, train_size=1.0, **FAST)
    assert "validation_loss" not in m.history and len(m.history["train_loss"]) == 3


def test_sample_info_one_row_per_sample(sample_adata):
    model = _setup(sample_adata)
    info = model.sample_info
    assert list(info.index) == [f"D{i}" for i in range(6)]
    assert {"disease", "severity", "age", "n_cells"} <= set(info.columns)
    assert "cell_type" not in info.columns  # varies within samples
    assert (info["n_cells"] == 60).all()


def test_presets_diversity_and_early_stopping():
    a = make_sample_adata(n_samples=8)
    SampleCLR.setup_anndata(a, sample_key="donor_id", obsm_key="X_pca")
    tiny = SampleCLR(a)
    assert tiny.model_size_ == "tiny" and tiny.module.n_heads == 1
    assert len(tiny.module.encoder.blocks) == 4  # 3 + 1 without supervised heads (App. A.4)
    assert len(tiny.module.pool.score.blocks) == 1


def test_tiny_preset_matches_the_public_code_parameter_counts():
    """The public code's tiny config (``num_layers=4``, ``aggregator_num_layers=2``,
    ``classifier_num_layers=2``; 50 PCs in, width 32, 32 outputs, one importance head)
    has 2,785 importance-head and 6,048 encoder parameters, and a 2-class head of
    ``32*16 + 16 + 16*2 + 2 = 562`` (counted from its ``DynamicNetwork``/``build_mlp``)."""
    a = make_sample_adata(n_samples=8, n_features=50)
    SampleCLR.setup_anndata(
        a, sample_key="donor_id", obsm_key="X_pca", classification_keys=["disease"]
    )
    m = SampleCLR(a).module

    def count(mod):
        return sum(p.numel() for p in mod.parameters())

    assert (count(m.pool), count(m.encoder), count(m.heads)) == (2785, 6048, 562)
    # large: one importance network with 8 outputs (the public code's
    # MultiHeadAggregationNetwork): 50*128+128 + (128*128+128+2*128) + 128*8+8
    large = SampleCLR(a, model_size="large").module
    assert count(large.pool) == 6528 + 16768 + 1032
    large = SampleCLR(a, model_size="large", n_layers=2, diversity_weight=0.1)
    assert large.module.n_heads == 8 and large.module.n_output == 192
    large.train(
        max_epochs=4, n_cells=(20, 30), train_size=0.75, early_stopping=True,
        early_stopping_patience=1, check_val_every_n_epoch=1, enable_progress_bar=False,
    )  # fmt: skip
    h = large.history
    assert "validation_loss" in h and "diversity_penalty_train" in h
    assert len(large.validation_samples_) == 2 and not set(large.validation_samples_) & set(
        large.train_samples_
    )
    rand = large.get_sample_representation(cell_selection="random", n_cells=30)
    assert rand.shape == (8, 192)
    with pytest.raises(ValueError, match="model_size"):
        SampleCLR(a, model_size="huge")


def test_default_view_size_rule():
    from cellpop.model._sampleclr import default_view_size

    # floor(0.2 N), floor(0.4 N) of the median N, capped at the paper's (1000, 2000)
    assert default_view_size([500] * 20) == (100, 200)
    assert default_view_size([4900, 4900]) == (980, 1960)  # the paper's donors: 20-40 %
    assert default_view_size([100, 5000, 20000]) == (1000, 2000)  # median 5000, capped
    assert default_view_size([300, 700]) == (100, 200)  # median 500
    assert default_view_size([3, 4]) == (1, 1)  # floor(0.7), floor(1.4) -> at least 1
    for bad in ([], [10, 0]):
        with pytest.raises(ValueError, match="sample_sizes"):
            default_view_size(bad)


def test_default_views_of_500_cells_overlap_partially():
    a = make_sample_adata(n_samples=4, n_cells=500)
    a.obsm["X_pca"][:, 0] = np.arange(a.n_obs)  # cell id, to find shared cells
    model = _setup(a)
    scvi.settings.seed = 0
    model.train(max_epochs=1, train_size=1.0, enable_progress_bar=False)
    assert model.view_size_ == (100, 200)
    dm = model._set_datamodule(4, 1.0, False, n_cells=model.view_size_)
    shared = []
    for _ in range(25):
        for batch in dm.train_dataloader():
            ids = batch["x"][..., 0].long().numpy()  # (2 views, B, n)
            for v0, v1 in zip(ids[0], ids[1]):
                shared.append(len(np.intersect1d(v0, v1)) / len(v0))
    # expected share of a view: n / N with n uniform in 100..200 -> 0.30 (the old 250-500: 0.75)
    assert 0.25 < np.mean(shared) < 0.35
    assert max(shared) < 0.55
    # an explicit n_cells is used as given
    model.train(max_epochs=1, train_size=1.0, n_cells=(250, 500), enable_progress_bar=False)
    assert model.view_size_ == (250, 500)
