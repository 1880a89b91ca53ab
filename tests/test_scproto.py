"""ScProto model tests: bad input, outputs, save/load, determinism, real-data quality."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from anndata import AnnData

from cellpop.model import ScProto
from cellpop.model._scproto import default_n_prototypes, knn_index

QUIET = {"enable_progress_bar": False}


def _synthetic(n=360, g=40, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.gamma(1.0, 2.0, size=(3, g))
    means[:, :6] = 0.1
    for t in range(3):  # two marker genes per type
        means[t, 2 * t : 2 * t + 2] = 15.0
    lab = np.repeat(np.arange(3), n // 3)
    batch = np.tile(["s0", "s1"], n // 2)
    mu = means[lab] * np.where(batch == "s1", 1.3, 1.0)[:, None]
    X = rng.poisson(mu).astype(np.float32)
    obs = pd.DataFrame(
        {
            "study": batch,
            "ct": np.array(["A", "B", "C"])[lab],
            "donor": [f"d{i % 6}" for i in range(n)],
        },
        index=[f"c{i}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(g)])
    return AnnData(X=X, obs=obs, var=var)


def _fit(adata, seed=0, epochs=6, **kw):
    scvi.settings.seed = seed
    ScProto.setup_anndata(adata, batch_key="study", labels_key="ct", sample_key="donor")
    model = ScProto(adata, n_prototypes=9, n_neighbors=10, **kw)
    model.train(max_epochs=epochs, batch_size=120, **QUIET)
    return model


@pytest.fixture(scope="module")
def trained():
    adata = _synthetic()
    before = adata.copy()
    model = _fit(adata)
    return adata, before, model


def test_bad_input_errors():
    a = _synthetic(n=60)
    b = a.copy()
    b.X[0, 0] = 0.5
    with pytest.raises(ValueError, match="non-integer"):
        ScProto.setup_anndata(b)
    c = a.copy()
    c.X[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ScProto.setup_anndata(c)
    with pytest.raises(KeyError, match="batch_key='nope'"):
        ScProto.setup_anndata(a, batch_key="nope")
    with pytest.raises(KeyError, match="layer='counts'"):
        ScProto.setup_anndata(a, layer="counts")
    ScProto.setup_anndata(a, batch_key="study")
    with pytest.raises(ValueError, match="n_prototypes=61"):
        ScProto(a, n_prototypes=61)
    with pytest.raises(ValueError, match="sample_key"):
        ScProto(a, n_prototypes=5).get_sample_representation()
    # a study with a single cell: too few cells for its per-batch Sinkhorn
    d = a.copy()
    d.obs["study"] = ["tiny"] + ["big"] * (d.n_obs - 1)
    ScProto.setup_anndata(d, batch_key="study")
    with pytest.raises(ValueError, match="'tiny' \\(1 cells\\)"):
        ScProto(d, n_prototypes=5).train(max_epochs=1, **QUIET)


def test_default_n_prototypes_rule():
    assert default_n_prototypes(12261) == 123
    assert default_n_prototypes(500) == 10
    assert default_n_prototypes(5) == 5
    assert default_n_prototypes(10**7) == 500


def test_knn_index_same_type_neighbours():
    a = _synthetic()
    X0 = a.X.copy()
    idx = knn_index(a.X, n_neighbors=10, n_pcs=10)
    assert idx.shape == (a.n_obs, 10) and idx.dtype == np.int64
    assert np.array_equal(a.X, X0)  # input untouched
    assert not (idx == np.arange(a.n_obs)[:, None]).any()  # self excluded
    lab = a.obs["ct"].to_numpy()
    assert (lab[idx] == lab[:, None]).mean() > 0.9


def test_knn_index_approximate_branch_recall(monkeypatch):
    """Above EXACT_KNN_MAX_CELLS the graph is pynndescent's: near-exact, no self, duplicates ok."""
    from cellpop.model import _scproto

    a = _synthetic()
    exact = knn_index(a.X, n_neighbors=10, n_pcs=10)
    monkeypatch.setattr(_scproto, "EXACT_KNN_MAX_CELLS", 100)
    approx = knn_index(a.X, n_neighbors=10, n_pcs=10)
    assert approx.shape == exact.shape and approx.dtype == np.int64
    rows = np.arange(a.n_obs)[:, None]
    assert not (approx == rows).any()
    recall = np.mean([len(np.intersect1d(e, p)) / 10 for e, p in zip(exact, approx)])
    assert recall > 0.95
    # identical cells: the cell itself may come after a copy of it and is still dropped
    pcs = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    pcs[1:12] = pcs[0]
    idx = _scproto._approximate_knn(pcs, 8, random_state=0)
    assert idx.shape == (200, 8) and not (idx == np.arange(200)[:, None]).any()
    assert set(idx[0]) <= set(range(1, 12))  # the 11 copies are its nearest neighbours


def test_outputs(trained):
    adata, before, model = trained
    hist = model.history
    for key in ("validation_loss", "swav_loss_train", "propagation_loss_train", "cvae_loss_train"):
        assert key in hist and np.isfinite(hist[key].to_numpy(dtype=float)).all()
    z = model.get_latent_representation()
    assert z.shape == (adata.n_obs, 8)
    hard = model.get_prototype_assignment()
    soft = model.get_prototype_assignment(soft=True)
    assert hard.shape == (adata.n_obs,) and hard.dtype == np.int64
    assert soft.shape == (adata.n_obs, 9)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    assert np.array_equal(soft.argmax(1), hard)
    # user's data untouched apart from scvi-tools' registry columns
    assert np.array_equal(adata.X, before.X)
    assert set(adata.obsm) == set(before.obsm) and set(adata.layers) == set(before.layers)
    assert [c for c in adata.obs.columns if not c.startswith("_scvi")] == list(before.obs.columns)


def test_metacells_valid_for_dotplot(trained):
    import scanpy as sc

    adata, _, model = trained
    mc = model.get_metacells()
    assert mc.shape == (9, adata.n_vars)
    assert list(mc.var_names) == list(adata.var_names)
    np.testing.assert_allclose(mc.X.sum(1), 1e4, rtol=1e-4)
    assert mc.obs["n_cells"].sum() == adata.n_obs
    assert mc.obsm["X_scproto"].shape == (9, 8)
    used = mc.obs["n_cells"] > 0
    assert mc.obs.loc[used, "purity"].between(0, 1).all()
    assert set(mc.obs.loc[used, "majority_label"]) <= {"A", "B", "C"}
    ax = sc.pl.dotplot(mc, ["g0", "g2", "g4"], groupby="majority_label", show=False)
    assert ax is not None
    assert "majority_label" in mc.obs and "X_scproto" not in adata.obsm


@pytest.fixture(scope="module")
def trained_long():
    """20 epochs x 9 steps (batch 40) at lr 1e-2: the decoder's softmax needs logit gaps of ~5
    between types, which Adam at lr 1e-3 reaches only after ~1,000 steps (too slow here)."""
    adata = _synthetic()
    scvi.settings.seed = 0
    ScProto.setup_anndata(adata, batch_key="study", labels_key="ct", sample_key="donor")
    model = ScProto(adata, n_prototypes=9, n_neighbors=10)
    model.train(max_epochs=20, batch_size=40, plan_kwargs={"lr": 1e-2}, **QUIET)
    return model


def test_metacells_carry_type_markers(trained_long):
    # measured (seed 0): own/other marker ratio A 16, B 44, C 64 with the default Adam eps
    # (0.01 * cvae_weight); 1.3, 0.9, 5.0 with the former eps 0.01 (metacells ~ mean profile)
    model = trained_long
    assert model.module.cvae_weight == 0.01 and model.module.uses_prototype_losses
    mc = model.get_metacells()
    # the synthetic markers (type A: g0-g1, B: g2-g3, C: g4-g5) peak in their type's metacells
    markers = {"A": ["g0", "g1"], "B": ["g2", "g3"], "C": ["g4", "g5"]}
    pure = mc[(mc.obs["purity"] > 0.8).to_numpy()]
    assert pure.n_obs >= 3
    for label in pure.obs["majority_label"].astype(str):
        row = pure[pure.obs["majority_label"] == label].X.mean(0)
        own = row[[mc.var_names.get_loc(g) for g in markers[label]]].mean()
        others = [
            row[[mc.var_names.get_loc(g) for g in gs]].mean()
            for t, gs in markers.items()
            if t != label
        ]
        assert own > 2 * max(others), (label, own, others)


def test_adam_eps_keeps_scpoli_steps_for_the_scaled_cvae_loss():
    from cellpop.model._scproto import adam_eps

    assert adam_eps(0.01) == pytest.approx(1e-4) and adam_eps(1.0) == 0.01
    assert adam_eps(0.0) == 1e-8
    # Adam on c * L with eps c * 0.01 takes the same steps as Adam on L with eps 0.01
    torch.manual_seed(0)
    w0, x = torch.randn(5), torch.randn(20, 5)
    steps = []
    for c in (1.0, 0.01):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=1e-3, eps=adam_eps(c))
        for _ in range(5):
            opt.zero_grad()
            (c * (x @ w).exp().mean()).backward()
            opt.step()
        steps.append(w.detach() - w0)
    np.testing.assert_allclose(steps[0], steps[1], rtol=1e-4)
    assert steps[0].abs().min() > 1e-4  # the weights did move
    a = _synthetic(n=60)
    ScProto.setup_anndata(a, batch_key="study")
    assert ScProto(a, n_prototypes=5)._plan_defaults(10)["eps"] == pytest.approx(1e-4)
    assert ScProto(a, n_prototypes=5, cvae_weight=1.0)._plan_defaults(10)["eps"] == 0.01


def test_sample_representation(trained):
    adata, _, model = trained
    occ = model.get_sample_representation()
    assert list(occ.index) == [f"d{i}" for i in range(6)] and occ.shape == (6, 9)
    np.testing.assert_allclose(occ.sum(1), 0.0, atol=1e-9)  # CLR rows are centred
    assert "X_occ" not in adata.uns
    ml = model.get_sample_representation(kind="mean_latent", key_added="X_occ")
    assert ml.shape == (6, 8) and adata.uns["X_occ"] is ml
    del adata.uns["X_occ"]
    with pytest.raises(ValueError, match="kind"):
        model.get_sample_representation(kind="bogus")
    # occupancy = CLR of (cells of each donor per prototype + 0.5), recomputed by hand
    assign = model.get_prototype_assignment()
    counts = pd.crosstab(adata.obs["donor"].to_numpy(), assign).reindex(
        index=occ.index, columns=range(9), fill_value=0
    )
    logp = np.log(counts.to_numpy() + 0.5)
    np.testing.assert_allclose(occ.to_numpy(), logp - logp.mean(1, keepdims=True), atol=1e-9)


def test_save_load_roundtrip(trained, tmp_path):
    adata, _, model = trained
    model.save(tmp_path / "m", overwrite=True)
    loaded = ScProto.load(tmp_path / "m", adata=adata)
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), model.get_latent_representation()
    )
    np.testing.assert_array_equal(
        loaded.get_prototype_assignment(), model.get_prototype_assignment()
    )
    np.testing.assert_array_equal(loaded.get_metacells().X, model.get_metacells().X)
    np.testing.assert_array_equal(loaded.knn_index_, model.knn_index_)


def test_seeded_determinism():
    z = []
    for _ in range(2):
        a = _synthetic()
        m = _fit(a, seed=3, epochs=2)
        z.append(m.get_latent_representation())
    np.testing.assert_array_equal(z[0], z[1])
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.realdata
def test_kang_prototypes_are_pure(data_dir):
    """Short training on Kang PBMC: prototypes are far purer than chance, all types covered."""
    import anndata as ad

    from cellpop.metrics import rare_population_coverage

    adata = ad.read_h5ad(data_dir / "kang2018_ctrl_8donors.h5ad")
    scvi.settings.seed = 0
    ScProto.setup_anndata(adata, layer="counts", batch_key="donor_id", labels_key="cell_type")
    model = ScProto(adata)
    model.train(max_epochs=KANG_EPOCHS, **QUIET)
    mc = model.get_metacells()
    w = mc.obs["n_cells"].to_numpy()
    purity = float(np.nansum(mc.obs["purity"].to_numpy() * w) / w.sum())
    chance = adata.obs["cell_type"].value_counts(normalize=True).max()  # 0.42
    assert purity > 0.8 > chance, f"weighted prototype purity {purity:.3f}"
    cov = rare_population_coverage(model.get_prototype_assignment(), adata.obs["cell_type"])
    assert cov["covered"].sum() >= 6, cov  # of 8 types (megakaryocytes: 95 cells, 0.8%)
    # collapse monitor of the latent SwAV acts on (median per-dimension std; 0 when collapsed):
    # measured 0.30 at epoch 0 -> 0.51 at epoch 5
    lat = model.history["latent_std_train"].to_numpy(dtype=float).ravel()
    assert lat[-1] > 0.15, lat


KANG_EPOCHS = 5


def test_sinkhorn_min_group_ratio_option_and_agreement_metric(trained):
    import math

    from scvi import REGISTRY_KEYS

    from cellpop.data import PARTNER_BATCH_KEY, PARTNER_X_KEY
    from cellpop.module._scproto import ScProtoModule
    from cellpop.nn._swav import cosine_scores, sinkhorn_knopp

    _, _, model = trained
    h = model.history["target_agreement_train"].to_numpy(dtype=float)
    assert ((h >= 0) & (h <= 1)).all() and "target_agreement_validation" in model.history
    adata = _synthetic()
    ScProto.setup_anndata(adata, batch_key="study")
    assert (
        ScProto(adata, n_prototypes=9, sinkhorn_min_group_ratio=0.5).module.sinkhorn_min_group == 5
    )
    with pytest.raises(ValueError, match="sinkhorn_min_group_ratio"):
        ScProto(adata, n_prototypes=9, sinkhorn_min_group_ratio=-1.0)
    # 8 batches of 2 cells, K = 4: ratio 1 -> every group uses the Sinkhorn of all 16 cells,
    # ratio 0 -> each 2-cell group its own; the logged agreement follows the rule used
    torch.manual_seed(0)
    x = torch.poisson(torch.full((16, 20), 3.0))
    b = torch.arange(8).repeat_interleave(2)
    tensors = {
        REGISTRY_KEYS.X_KEY: x,
        REGISTRY_KEYS.BATCH_KEY: b[:, None],
        PARTNER_X_KEY: x.flip(0),
        PARTNER_BATCH_KEY: b.flip(0)[:, None],
    }
    got = {}
    for ratio in (0.0, 1.0):
        torch.manual_seed(1)
        m = ScProtoModule(n_input=20, n_batch=8, n_prototypes=4, sinkhorn_min_group_ratio=ratio)
        m.eval()
        assert m.sinkhorn_min_group == math.ceil(ratio * 4)
        inf, _, loss = m(tensors)
        ref = []
        for z in (inf["qz_mean"], inf["qz_mean_pos"]):
            s = cosine_scores(z, m.prototypes)
            q = sinkhorn_knopp(s, 0.02, 3, groups=None if ratio else b, hard=True)
            ref.append((q.argmax(1) == s.argmax(1)).float().mean())
        got[ratio] = float(loss.extra_metrics["target_agreement"])
        assert got[ratio] == pytest.approx(float(sum(ref) / 2))
    assert got[0.0] != got[1.0]


def test_marker_log2_fold_hand_computed():
    from cellpop.benchmark._scproto import marker_log2_fold

    cells = np.array([[100.0, 0, 10], [300, 0, 10], [0, 50, 10]])
    labels = np.array(["a", "a", "b"])  # markers (n_markers=1): a -> g0, b -> g1
    profiles = np.array([[63.0, 1, 0], [3, 31, 0], [1000, 1000, 0]])
    plab = np.array(["a", "b", "unassigned"])
    got = marker_log2_fold(cells, labels, profiles, plab, n_markers=1)
    assert got.to_dict() == {"a": pytest.approx(4.0), "b": pytest.approx(4.0)}  # 64/4, 32/2
    own = marker_log2_fold(cells, labels, cells, labels, n_markers=1)
    assert own["a"] == pytest.approx(np.log2(201.0)) and own["b"] == pytest.approx(np.log2(51.0))
    # identical (mean-profile) metacells score 0 for every type
    flat = marker_log2_fold(cells, labels, np.ones((2, 3)), np.array(["a", "b"]), n_markers=1)
    np.testing.assert_allclose(flat.to_numpy(), 0.0)
