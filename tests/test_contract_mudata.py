"""The scvi-tools contract for MuData models (cells + bulk profiles): POPPY.

The same promises as ``test_contract.py`` (whose ``Case``, ``TRAIN``, ``_new``, ``_trained`` and
``_digest`` are reused: ``Case.setup_method`` picks ``setup_mudata``),
adapted to a MuData whose modalities hold different observations: setup -> train -> getters of
both modalities (shapes, sample index, ``key_added`` writes exactly that key) -> save/load
equality -> bulk genes reordered / missing on queries -> unseen donors -> a second ``train()``
in train mode -> ``max_epochs=0`` -> seeded determinism -> the user's MuData unchanged -> input
formats -> bad inputs -> out-of-core cells (backed ``.h5mu``, zarr store) equal in-memory. A new
MuData model joins with one ``CASES`` line.
"""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
from _poppy_data import make_mudata, toy_ontology
from scipy import sparse
from test_contract import TRAIN, Case, _digest, _new, _trained

import cellpop.data._lazy as lazy
from cellpop.data import read_backed
from cellpop.model import POPPY
from cellpop.train import ModeProbe


class MuCase(Case):
    """A :class:`test_contract.Case` set up with ``setup_mudata``."""

    setup_method = "setup_mudata"

    @property
    def id(self) -> str:
        return (
            f"{self.cls.__name__}-{self.setup.get('rna_obsm_key') or self.setup.get('rna_layer')}"
        )


POPPY_SETUP = dict(sample_key="donor", cell_type_key="ct", cohort_key="cohort")
POPPY_INIT = dict(n_latent=8, n_hidden=16, n_token=4)
POPPY_TRAIN = dict(n_cells=(20, 40), ontology=toy_ontology())
CASES = [
    MuCase(POPPY, {**POPPY_SETUP, "rna_obsm_key": "X_pca"}, POPPY_INIT, POPPY_TRAIN, "embedding_std_train"),
    MuCase(POPPY, {**POPPY_SETUP, "rna_layer": "lognorm"}, POPPY_INIT, POPPY_TRAIN, "embedding_std_train"),
]  # fmt: skip
IDS = [c.id for c in CASES]


def _mu_digest(mdata) -> str:
    return "/".join(_digest(mdata.mod[k]) for k in sorted(mdata.mod))


@pytest.fixture(scope="module")
def trained():
    out = {}
    for case in CASES:
        m = make_mudata()
        out[case.id] = (m, _trained(case, m))
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_getters_and_key_added(case, trained):
    m, model = trained[case.id]
    rna, bulk = m.mod["rna"], m.mod["bulk"]
    z = model.get_latent_representation()
    assert z.shape[0] == rna.n_obs and z.ndim == 2 and np.isfinite(z).all()
    assert z.std(0).mean() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)  # L2-normalised
    sub = model.get_latent_representation(indices=np.arange(7))
    np.testing.assert_allclose(sub, z[:7], rtol=1e-5, atol=1e-6)
    s = model.get_sample_representation()
    assert list(s.index) == [f"d{i}" for i in range(6)] and s.index.name == "donor"
    b = model.get_sample_representation(modality="bulk")
    assert list(b.index) == list(bulk.obs_names) and b.shape[1] == s.shape[1]
    assert np.isfinite(s.to_numpy()).all() and np.isfinite(b.to_numpy()).all()
    obsm, uns, buns = set(rna.obsm), set(rna.uns), set(bulk.uns)
    z2 = model.get_latent_representation(key_added="X_test")
    s2 = model.get_sample_representation(key_added="X_test_s")
    b2 = model.get_sample_representation(modality="bulk", key_added="X_test_b")
    assert set(rna.obsm) - obsm == {"X_test"} and set(rna.uns) - uns == {"X_test_s"}
    assert set(bulk.uns) - buns == {"X_test_b"} and bulk.uns["X_test_b"] is b2
    np.testing.assert_array_equal(rna.obsm["X_test"], z2)
    assert rna.uns["X_test_s"] is s2
    with pytest.raises(ValueError, match="indices=None"):
        model.get_latent_representation(indices=[0, 1], key_added="X_bad")
    del rna.obsm["X_test"], rna.uns["X_test_s"], bulk.uns["X_test_b"]
    assert case.monitor in model.history
    assert np.isfinite(model.history[case.monitor].to_numpy(dtype=float)).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_save_load_and_bulk_gene_order(case, trained, tmp_path):
    m, model = trained[case.id]
    z, s = model.get_latent_representation(), model.get_sample_representation()
    b = model.get_sample_representation(modality="bulk")
    model.save(tmp_path / "m", overwrite=True)
    loaded = case.cls.load(tmp_path / "m", m)
    np.testing.assert_array_equal(loaded.get_latent_representation(), z)
    pd.testing.assert_frame_equal(loaded.get_sample_representation(), s)
    pd.testing.assert_frame_equal(loaded.get_sample_representation(modality="bulk"), b)
    bulk = m.mod["bulk"]
    perm = bulk.var_names[np.random.default_rng(1).permutation(bulk.n_vars)]
    q = bulk[:, perm].copy()
    pd.testing.assert_frame_equal(
        model.get_sample_representation(q, modality="bulk"), b, rtol=1e-5, atol=1e-5
    )
    with pytest.warns(UserWarning, match="3 of the model's 30 genes are missing"):
        model.get_sample_representation(bulk[:, bulk.var_names[3:]].copy(), modality="bulk")
    with pytest.raises(ValueError, match="genes .* are missing"):
        model.get_sample_representation(bulk[:, bulk.var_names[:5]].copy(), modality="bulk")
    other = bulk.copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="share no gene"):
        model.get_sample_representation(other, modality="bulk")
    with pytest.raises(TypeError, match="MuData"):
        case.cls.load(tmp_path / "m", m.mod["rna"])
    with pytest.raises(ValueError, match="save_anndata"):
        model.save(tmp_path / "m2", save_anndata=True)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_query_with_unseen_donors(case, trained):
    _, model = trained[case.id]
    q = make_mudata()
    for k in ("rna", "bulk"):
        q.mod[k].obs["donor"] = pd.Categorical(["new_" + str(d) for d in q.mod[k].obs["donor"]])
    q.mod["rna"].obs["cohort"] = pd.Categorical(["new_cohort"] * q.mod["rna"].n_obs)
    before = _mu_digest(q)
    z = model.get_latent_representation(q)
    s = model.get_sample_representation(q)
    b = model.get_sample_representation(q, modality="bulk")
    assert list(s.index) == [f"new_d{i}" for i in range(6)]
    assert _mu_digest(q) == before and not any(c.startswith("_scvi") for c in q.mod["rna"].obs)
    np.testing.assert_allclose(z, model.get_latent_representation(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        s.to_numpy(), model.get_sample_representation().to_numpy(), atol=1e-5
    )
    assert b.shape == (q.mod["bulk"].n_obs, s.shape[1])
    with pytest.raises(KeyError, match="bulk"):
        model.get_sample_representation(md.MuData({"rna": q.mod["rna"]}), modality="bulk")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_second_train_runs_in_train_mode(case):
    model = _trained(case, make_mudata())
    n0 = len(model.history["train_loss"])
    model.get_latent_representation()
    assert not model.module.training
    probe = ModeProbe()
    model.train(**{**TRAIN, **case.train, "max_epochs": 1}, callbacks=[probe])
    assert probe.modes and all(probe.modes)
    assert len(model.history["train_loss"]) == n0 + 1
    assert not model.module.training


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_epochs_zero_and_untrained(case):
    model = _new(case, make_mudata())
    with pytest.raises(ValueError, match="max_epochs must be >= 1"):
        model.train(max_epochs=0)
    assert not model.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        model.get_latent_representation()
    with pytest.raises(RuntimeError, match="not trained"):
        model.get_sample_representation(modality="bulk")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_seeded_determinism_and_mudata_unchanged(case):
    m = make_mudata()
    m1 = _new(case, m)
    after_setup = _mu_digest(m)
    m1.train(**{**TRAIN, **case.train})
    z1 = m1.get_latent_representation()
    b1 = m1.get_sample_representation(modality="bulk")
    m1.get_sample_representation()
    assert _mu_digest(m) == after_setup
    m2 = _trained(case, make_mudata())
    np.testing.assert_array_equal(z1, m2.get_latent_representation())
    pd.testing.assert_frame_equal(b1, m2.get_sample_representation(modality="bulk"))
    z3 = _trained(case, make_mudata(), seed=1).get_latent_representation()
    assert not np.array_equal(z1, z3)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_input_formats(case, trained):
    m, model = trained[case.id]
    b = model.get_sample_representation(modality="bulk")
    for conv in (sparse.csr_matrix, sparse.csr_array, lambda x: np.asarray(x, np.float64)):
        q = m.mod["bulk"].copy()
        q.X = conv(np.asarray(q.X))
        got = model.get_sample_representation(q, modality="bulk")
        np.testing.assert_allclose(got.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6)
    z = model.get_latent_representation()
    q = m.mod["rna"].copy()
    key = case.setup.get("rna_layer")
    if key is None:
        q.obsm["X_pca"] = pd.DataFrame(np.asarray(q.obsm["X_pca"], np.float64), index=q.obs_names)
    else:
        q.layers[key] = sparse.csr_array(q.layers[key])
    np.testing.assert_allclose(model.get_latent_representation(q), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_inputs(case):
    m = make_mudata()
    rna = m.mod["rna"]
    b = rna.copy()
    b.obs["donor"] = b.obs["donor"].astype(object)
    b.obs.iloc[3, b.obs.columns.get_loc("donor")] = np.nan
    with pytest.raises(ValueError, match="donor.*missing"):
        case.cls.setup_mudata(md.MuData({"rna": b, "bulk": m.mod["bulk"]}), **case.setup)
    with pytest.raises(KeyError, match="nope"):
        case.cls.setup_mudata(m, **{**case.setup, "sample_key": "nope"})
    with pytest.raises(KeyError, match=r"bulk_key='protein'.*modalities"):
        case.cls.setup_mudata(m, **case.setup, bulk_key="protein")
    with pytest.raises(TypeError, match="setup_mudata"):
        case.cls.setup_anndata(rna, **case.setup)
    with pytest.raises(TypeError, match="MuData"):
        case.cls.setup_mudata(rna, **case.setup)
    with pytest.raises(TypeError, match="unexpected keyword"):
        case.cls.setup_mudata(m, **case.setup, obsm_key="X_pca")
    m = make_mudata()
    model = _trained(case, m, max_epochs=1)
    q = make_mudata()
    q.mod["rna"].obs["donor"] = q.mod["rna"].obs["donor"].astype(object)
    q.mod["rna"].obs.iloc[0, q.mod["rna"].obs.columns.get_loc("donor")] = None
    with pytest.raises(ValueError, match="donor.*missing"):
        model.get_sample_representation(q)


ON_DISK = [c for c in CASES if c.setup.get("rna_layer") is not None]


@pytest.mark.parametrize("case", ON_DISK, ids=[c.id for c in ON_DISK])
def test_out_of_core_equals_in_memory(case, disk_reads, tmp_path):
    """POPPY trained on cells read by row blocks from a backed .h5mu (``rna`` input moved to X:
    backed mode loads layers) and from a zarr store (:func:`read_backed`) equals the in-memory
    run; the cells stay on disk and no read covers every cell."""
    m = _trained(case, make_mudata(), max_epochs=1)
    z, s = m.get_latent_representation(), m.get_sample_representation()
    layer = case.setup["rna_layer"]
    src = make_mudata()
    src.mod["bulk"].obs.index.name = None  # h5mu cannot store an index named like a column
    src.mod["rna"].X = src.mod["rna"].layers[layer]
    src.write_h5mu(tmp_path / "m.h5mu")
    src.mod["rna"].write_zarr(tmp_path / "rna.zarr")
    opened = {
        "h5mu": (md.read_h5mu(tmp_path / "m.h5mu", backed=True), None),
        "zarr": (
            md.MuData({"rna": read_backed(tmp_path / "rna.zarr"), "bulk": src["bulk"]}),
            layer,
        ),
    }
    reads = disk_reads()
    for fmt, (mdata, rna_layer) in opened.items():
        reads.clear()
        disk_case = MuCase(case.cls, {**case.setup, "rna_layer": rna_layer}, case.init, case.train)
        m2 = _trained(disk_case, mdata, max_epochs=1)
        rna = mdata.mod["rna"]
        assert reads and max(reads) < rna.n_obs, fmt
        assert lazy.is_on_disk(rna.X if rna_layer is None else rna.layers[rna_layer])
        np.testing.assert_allclose(m2.get_latent_representation(), z, rtol=1e-5, atol=1e-6)
        pd.testing.assert_frame_equal(m2.get_sample_representation(), s, rtol=1e-5, atol=1e-6)
