"""The scvi-tools contract every cellpop model passes: a new model joins with one ``CASES`` line.

setup -> train -> getters (shapes, sample index, ``key_added`` writes exactly that key) ->
save/load equality of every getter -> query with genes reordered equals the original -> query
with unseen donors/batches -> a second ``train()`` runs in train mode -> ``max_epochs=0`` ->
seeded determinism -> the user's AnnData unchanged -> input formats -> bad inputs -> out-of-core
input (backed ``.h5ad``, zarr store) equals in-memory.
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scvi
from scipy import sparse

import cellpop.data._lazy as lazy
from cellpop.data import read_backed
from cellpop.model import PopulationJEPA, SampleCLR, ScJEPA, ScProto
from cellpop.train import ModeProbe


@dataclass
class Case:
    """One model under the contract: its class, setup/init/train arguments, collapse monitor."""

    cls: type
    setup: dict
    init: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    monitor: str = "train_loss"

    @property
    def id(self) -> str:
        x = self.setup.get("obsm_key") or self.setup.get("layer") or "X"
        return f"{self.cls.__name__}-{x}"

    @property
    def genes(self) -> bool:
        return self.setup.get("obsm_key") is None


POPJ = dict(d_model=16, n_heads=2, n_layers=1, predictor_layers=1)
CELL = dict(sample_key="donor", batch_key="batch", labels_key="ct", layer="counts")
CASES = [
    Case(SampleCLR, dict(sample_key="donor", obsm_key="X_pca"), {}, dict(n_cells=(20, 40)), "embedding_std_train"),
    Case(SampleCLR, dict(sample_key="donor", layer="lognorm"), {}, dict(n_cells=(20, 40)), "embedding_std_train"),
    Case(ScJEPA, CELL, dict(n_hidden=(32, 16), n_latent=8, n_projection=8, num_directions=16), dict(batch_size=64), "proj_std_train"),
    Case(ScProto, CELL, dict(n_prototypes=8, n_neighbors=10, n_pcs=10), dict(batch_size=64), "latent_std_train"),
    Case(PopulationJEPA, dict(sample_key="donor", obsm_key="X_pca"), POPJ, dict(datasplitter_kwargs={"n_cells": (16, 24)}), "context_std_train"),
    Case(PopulationJEPA, dict(sample_key="donor", layer="lognorm", dataset_key="batch"), POPJ, dict(datasplitter_kwargs={"n_cells": (16, 24)}), "population_std_train"),
]  # fmt: skip
IDS = [c.id for c in CASES]
TRAIN = dict(max_epochs=2, enable_progress_bar=False)


def make_adata(n_donors: int = 6, n_cells: int = 50, n_genes: int = 30, seed: int = 0):
    """Counts (X and layers['counts']), log-normalised layer, a PCA-like obsm, donors in 2
    batches and 2 cell types whose gene profiles differ."""
    rng = np.random.default_rng(seed)
    n = n_donors * n_cells
    ct = rng.integers(0, 2, n)
    donor = np.repeat(np.arange(n_donors), n_cells)
    rate = np.where(ct[:, None] == 0, np.linspace(0.3, 4, n_genes), np.linspace(4, 0.3, n_genes))
    rate = rate * rng.uniform(0.7, 1.3, (n_donors, 1))[donor]
    X = rng.poisson(rate).astype(np.float32)
    X[:, 0] += 1  # no empty cells
    a = ad.AnnData(sparse.csr_matrix(X))
    a.var_names = [f"g{i}" for i in range(n_genes)]
    a.obs_names = [f"c{i}" for i in range(n)]
    a.obs["donor"] = pd.Categorical([f"d{i}" for i in donor])
    a.obs["batch"] = pd.Categorical([f"b{i % 2}" for i in donor])
    a.obs["ct"] = pd.Categorical(np.where(ct == 0, "A", "B"))
    a.layers["counts"] = a.X.copy()
    a.layers["lognorm"] = sparse.csr_matrix(np.log1p(X / X.sum(1, keepdims=True) * 1e4))
    a.obsm["X_pca"] = (rng.normal(size=(n, 6)) + ct[:, None] * 2.0).astype(np.float32)
    return a


def _new(case: Case, adata, seed: int = 0):
    scvi.settings.seed = seed
    getattr(case.cls, getattr(case, "setup_method", "setup_anndata"))(adata, **case.setup)
    return case.cls(adata, **case.init)


def _trained(case: Case, adata, seed: int = 0, **kw):
    model = _new(case, adata, seed)
    model.train(**{**TRAIN, **case.train, **kw})
    return model


def _digest(adata) -> str:
    """Hash of X, layers, obs, var, obsm and uns (what the contract promises not to touch)."""
    h = hashlib.sha256()

    def add(x):
        if sparse.issparse(x):
            x = x.toarray()
        if isinstance(x, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
            h.update(pickle.dumps(list(x.columns)))
        elif isinstance(x, np.ndarray):
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            h.update(pickle.dumps(x))

    add(adata.X)
    for k in sorted(adata.layers):
        add(adata.layers[k])
    add(adata.obs)
    add(adata.var)
    for k in sorted(adata.obsm):
        add(np.asarray(adata.obsm[k]))
    add({k: v for k, v in adata.uns.items() if not k.startswith("_scvi")})
    return h.hexdigest()


@pytest.fixture(scope="module")
def trained():
    """One trained model per case (module scope: trained once)."""
    out = {}
    for case in CASES:
        a = make_adata()
        out[case.id] = (a, _trained(case, a))
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_getters_and_key_added(case, trained):
    a, m = trained[case.id]
    z = m.get_latent_representation()
    assert z.shape[0] == a.n_obs and z.ndim == 2 and np.isfinite(z).all()
    assert z.std(0).mean() > 1e-3  # not a constant embedding
    sub = m.get_latent_representation(indices=np.arange(7))
    np.testing.assert_allclose(sub, z[:7], rtol=1e-5, atol=1e-6)
    s = m.get_sample_representation()
    assert list(s.index) == [f"d{i}" for i in range(6)] and s.index.name == "donor"
    assert np.isfinite(s.to_numpy()).all()
    obsm, uns = set(a.obsm), set(a.uns)
    z2 = m.get_latent_representation(key_added="X_test")
    s2 = m.get_sample_representation(key_added="X_test_s")
    assert set(a.obsm) - obsm == {"X_test"} and set(a.uns) - uns == {"X_test_s"}
    np.testing.assert_array_equal(a.obsm["X_test"], z2)
    assert a.uns["X_test_s"] is s2
    with pytest.raises(ValueError, match="indices=None"):
        m.get_latent_representation(indices=[0, 1], key_added="X_bad")
    del a.obsm["X_test"], a.uns["X_test_s"]
    # the collapse monitor of the SSL objective is in history
    assert case.monitor in m.history
    assert np.isfinite(m.history[case.monitor].to_numpy(dtype=float)).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_save_load_and_gene_order(case, trained, tmp_path):
    a, m = trained[case.id]
    z, s = m.get_latent_representation(), m.get_sample_representation()
    m.save(tmp_path / "m", overwrite=True)
    loaded = case.cls.load(tmp_path / "m", adata=a)
    np.testing.assert_array_equal(loaded.get_latent_representation(), z)
    pd.testing.assert_frame_equal(loaded.get_sample_representation(), s)
    if not case.genes:
        return
    perm = a.var_names[np.random.default_rng(1).permutation(a.n_vars)]
    q = a[:, perm].copy()
    np.testing.assert_allclose(m.get_latent_representation(q), z, rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(m.get_sample_representation(q), s, rtol=1e-5, atol=1e-5)
    # load() onto an AnnData whose genes are in another order gives the same outputs
    reloaded = case.cls.load(tmp_path / "m", adata=q)
    np.testing.assert_allclose(reloaded.get_latent_representation(), z, rtol=1e-5, atol=1e-5)
    # missing genes: zero-filled with a warning; too many: a clear error
    with pytest.warns(UserWarning, match="3 of the model's 30 genes are missing"):
        m.get_latent_representation(a[:, a.var_names[3:]].copy())
    with pytest.raises(ValueError, match="genes .* are missing"):
        m.get_latent_representation(a[:, a.var_names[:5]].copy())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_query_with_unseen_donors_and_batches(case, trained, tmp_path):
    a, m = trained[case.id]
    q = make_adata()  # the same cells, never set up
    q.obs["donor"] = pd.Categorical(["new_" + str(d) for d in q.obs["donor"]])
    q.obs["batch"] = pd.Categorical(["new_batch"] * q.n_obs)
    before = _digest(q)
    z = m.get_latent_representation(q)
    assert z.shape[0] == q.n_obs and np.isfinite(z).all()
    s = m.get_sample_representation(q)
    assert list(s.index) == [f"new_d{i}" for i in range(6)]
    assert _digest(q) == before and not any(c.startswith("_scvi") for c in q.obs)
    if case.cls is not ScProto:  # no batch conditioning: the donors' names change nothing
        np.testing.assert_allclose(z, m.get_latent_representation(), rtol=1e-5, atol=1e-5)
    m.save(tmp_path / "m", overwrite=True)
    loaded = case.cls.load(tmp_path / "m", adata=q)
    np.testing.assert_allclose(loaded.get_latent_representation(), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_second_train_runs_in_train_mode(case):
    a = make_adata()
    m = _trained(case, a)
    n0 = len(m.history["train_loss"])
    m.get_latent_representation()  # leaves the module in eval mode
    assert not m.module.training
    probe = ModeProbe()
    m.train(**{**TRAIN, **case.train, "max_epochs": 1}, callbacks=[probe])
    assert probe.modes and all(probe.modes)
    assert len(m.history["train_loss"]) == n0 + 1  # history continues
    assert not m.module.training  # eval after training


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_epochs_zero_and_untrained(case):
    m = _new(case, make_adata())
    with pytest.raises(ValueError, match="max_epochs must be >= 1"):
        m.train(max_epochs=0)
    assert not m.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        m.get_latent_representation()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_seeded_determinism_and_adata_unchanged(case, trained):
    a = make_adata()
    m1 = _new(case, a)
    after_setup = _digest(a)
    m1.train(**{**TRAIN, **case.train})
    z1 = m1.get_latent_representation()
    m1.get_sample_representation()
    assert _digest(a) == after_setup  # training and getters write nothing
    z2 = _trained(case, make_adata()).get_latent_representation()
    np.testing.assert_array_equal(z1, z2)
    z3 = _trained(case, make_adata(), seed=1).get_latent_representation()
    assert not np.array_equal(z1, z3)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_input_formats(case, trained):
    a, m = trained[case.id]
    z = m.get_latent_representation()
    key = case.setup.get("layer")
    if key is None:  # obsm input: float64 and DataFrame obsm
        for conv in (lambda x: x.astype(np.float64), lambda x: pd.DataFrame(x, index=a.obs_names)):
            q = a.copy()
            q.obsm["X_pca"] = conv(np.asarray(a.obsm["X_pca"]))
            np.testing.assert_allclose(m.get_latent_representation(q), z, rtol=1e-5, atol=1e-5)
        return
    formats = {
        "dense32": lambda x: x.toarray().astype(np.float32),
        "dense64": lambda x: x.toarray().astype(np.float64),
        "csc": lambda x: sparse.csc_matrix(x),
        "csr_array": lambda x: sparse.csr_array(x),
    }
    for name, conv in formats.items():
        q = a.copy()
        q.layers[key] = conv(a.layers[key])
        np.testing.assert_allclose(
            m.get_latent_representation(q), z, rtol=1e-4, atol=1e-5, err_msg=name
        )
    # training from csr_array input works too
    b = make_adata()
    b.layers[key] = sparse.csr_array(b.layers[key])
    assert np.isfinite(_trained(case, b, max_epochs=1).get_latent_representation()).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_inputs(case):
    a = make_adata()
    for col in ("donor", "batch") if "batch_key" in case.setup else ("donor",):
        b = a.copy()
        b.obs[col] = b.obs[col].astype(object)
        b.obs.iloc[3, b.obs.columns.get_loc(col)] = np.nan
        with pytest.raises(ValueError, match=rf"{col}.*1 missing value|{col}.*missing"):
            case.cls.setup_anndata(b, **case.setup)
    with pytest.raises(KeyError, match="nope"):
        case.cls.setup_anndata(a, **{**case.setup, "sample_key": "nope"})
    if "obsm_key" not in inspect.signature(case.cls.setup_anndata).parameters:
        with pytest.raises(TypeError, match="obsm_key"):
            case.cls.setup_anndata(a, **case.setup, obsm_key="X_pca")
    if "batch_key" in case.setup:  # an unused category is ignored, not an error
        b = a.copy()
        b.obs["batch"] = (
            b.obs["batch"]
            .cat.add_categories(["empty"])
            .cat.reorder_categories(["empty", "b0", "b1"])
        )
        m = _new(case, b)
        m.train(**{**TRAIN, **case.train, "max_epochs": 1})
        assert m.is_trained
    # a query with NaN in a registered column: a clear error naming it
    m = _new(case, make_adata())
    m.train(**{**TRAIN, **case.train, "max_epochs": 1})
    q = make_adata()
    q.obs["donor"] = q.obs["donor"].astype(object)
    q.obs.iloc[0, q.obs.columns.get_loc("donor")] = None
    with pytest.raises(ValueError, match="donor.*missing"):
        m.get_sample_representation(q)


class _Boom(Exception):
    pass


class _FailAtSecondBatch(ModeProbe):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if len(self.modes) == 2:
            raise _Boom("interrupted")


@pytest.mark.parametrize("case", CASES[:1] + CASES[2:3], ids=[IDS[0], IDS[2]])
def test_failed_run_leaves_a_documented_state(case):
    """A run that fails keeps the weights of its last step, eval mode and the trained flag and
    history it had before."""
    a = make_adata()
    m = _new(case, a)
    with pytest.raises(_Boom):
        m.train(**{**TRAIN, **case.train}, callbacks=[_FailAtSecondBatch()])
    assert not m.is_trained and not m.module.training  # a first run that failed: untrained
    m.train(**{**TRAIN, **case.train})
    n, z = len(m.history["train_loss"]), m.get_latent_representation()
    with pytest.raises(_Boom):
        m.train(**{**TRAIN, **case.train}, callbacks=[_FailAtSecondBatch()])
    assert m.is_trained and len(m.history["train_loss"]) == n and not m.module.training
    z2 = m.get_latent_representation()  # usable; one optimiser step moved the weights
    assert z2.shape == z.shape and np.isfinite(z2).all()


ON_DISK = [c for c in CASES if c.genes]  # an obsm input is always in memory (backed mode too)
FORMATS = ("h5ad", "zarr")


def on_disk(a, layer: str, fmt: str, path):
    """``a`` written to ``path`` and opened without loading its input: ``"h5ad"``, backed with
    ``layer`` moved to X (backed mode loads layers); ``"zarr"``, :func:`read_backed` (layers
    stay on disk). Returns the AnnData and the ``layer`` to register."""
    if fmt == "h5ad":
        b = a.copy()
        b.X = b.layers[layer]
        b.write_h5ad(path / "a.h5ad")
        return ad.read_h5ad(path / "a.h5ad", backed="r"), None
    a.write_zarr(path / "a.zarr")
    return read_backed(path / "a.zarr"), layer


@pytest.mark.parametrize("case", ON_DISK, ids=[c.id for c in ON_DISK])
def test_out_of_core_equals_in_memory(case, disk_reads, tmp_path):
    """Training and getters from a backed .h5ad and from a zarr store equal the in-memory run
    (same seed) and read row blocks only: the AnnData stays on disk, no read covers every cell.

    The reference is trained here: the module fixture's model can differ from a fresh run in
    the last float digits (it is not the first model trained in the process)."""
    m = _trained(case, make_adata(), max_epochs=1)
    z, s = m.get_latent_representation(), m.get_sample_representation()
    opened = {fmt: on_disk(make_adata(), case.setup["layer"], fmt, tmp_path) for fmt in FORMATS}
    reads = disk_reads()  # opened (backed mode loads the layers): guard from now on
    for fmt, (b, layer) in opened.items():
        reads.clear()
        disk_case = Case(case.cls, {**case.setup, "layer": layer}, case.init, case.train)
        m2 = _trained(disk_case, b, max_epochs=1)
        assert reads and max(reads) < b.n_obs, fmt  # row blocks, never the whole matrix
        assert lazy.is_on_disk(b.X if layer is None else b.layers[layer])
        assert b.isbacked == (fmt == "h5ad")
        z2 = m2.get_latent_representation()
        np.testing.assert_allclose(z2, z, rtol=1e-5, atol=1e-6, err_msg=fmt)
        s2 = m2.get_sample_representation()
        pd.testing.assert_frame_equal(s2, s, rtol=1e-5, atol=1e-6)
        m2.save(tmp_path / fmt, overwrite=True)  # load() onto the on-disk AnnData
        loaded = case.cls.load(tmp_path / fmt, adata=b)
        np.testing.assert_array_equal(loaded.get_latent_representation(), z2)
    # an on-disk query of the in-memory model, genes reordered (zarr: the layer is on disk)
    (tmp_path / "rev").mkdir()
    a = make_adata()
    q, _ = on_disk(a[:, a.var_names[::-1]].copy(), case.setup["layer"], "zarr", tmp_path / "rev")
    np.testing.assert_allclose(m.get_latent_representation(q), z, rtol=1e-5, atol=1e-5)


def test_public_docstrings_have_no_unfilled_placeholders():
    """Every public method of every model has its shared-docstring placeholders filled
    (a method that loses its ``doc.dedent`` decorator would show ``%(name)s`` to users)."""
    import inspect

    import cellpop

    names = ["SampleCLR", "ScJEPA", "ScProto", "PopulationJEPA", "POPPY"]
    missing = []
    for name in names:
        cls = getattr(cellpop.model, name)
        for attr, fn in inspect.getmembers(cls, callable):
            if attr.startswith("_") and attr != "__init__":
                continue
            doc = getattr(fn, "__doc__", None) or ""
            if "%(" in doc:
                missing.append(f"{name}.{attr}")
    assert not missing, missing
