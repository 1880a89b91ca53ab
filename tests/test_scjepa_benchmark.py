"""The ScJEPA and SampleCLR benchmark suites: settings, curves, collapse monitor, split."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cellpop.benchmark import _sampleclr as clr_suite
from cellpop.benchmark import _scjepa as suite


def _kang_like(n_donors=8, n_per=50, n_genes=60, seed=0):
    rng = np.random.default_rng(seed)
    n = n_donors * n_per
    types = np.tile(["T", "B", "Mono", "NK"], n // 4)
    rate = 0.3 + 3.0 * (np.arange(n_genes)[None, :] % 4 == np.searchsorted(
        ["B", "Mono", "NK", "T"], types)[:, None])  # fmt: skip
    X = rng.poisson(rate).astype(np.float32)
    X[:, 0] += 1  # no empty cells
    a = ad.AnnData(sparse.csr_matrix(X))
    a.layers["counts"] = a.X.copy()
    a.obs_names = [f"c{i}" for i in range(n)]
    a.var_names = [f"g{i}" for i in range(n_genes)]
    a.obs["donor_id"] = pd.Categorical(np.repeat([f"d{i}" for i in range(n_donors)], n_per))
    a.obs["cell_type"] = pd.Categorical(types)
    return a


def test_monitors_and_curve_rows_hand_case():
    hist = {
        "proj_std_validation": pd.DataFrame({"v": [0.2, 0.9]}),
        "latent_std_validation": pd.DataFrame({"v": [0.1, 0.4]}),
        "sim_loss_validation": pd.DataFrame({"v": [3.0, 1.5]}),
        "validation_loss": pd.DataFrame({"v": [5.0, 4.0]}),
        "train_loss_epoch": pd.DataFrame({"v": [6.0, 4.5]}),  # SCVI's name
    }
    mon = suite.monitors(hist)
    assert mon["proj_std (val)"] == 0.9 and mon["latent_std (val)"] == 0.4
    assert mon["sim_loss (val)"] == 1.5 and np.isnan(mon["sigreg_loss (val)"])
    rows = pd.DataFrame(suite.curve_rows(hist, method="m", seed=1))
    assert rows["curve"].tolist() == ["validation_loss"] * 2 + ["train_loss"] * 2
    assert rows["loss"].tolist() == [5.0, 4.0, 6.0, 4.5] and rows["epoch"].tolist() == [0, 1] * 2
    assert (rows["method"] == "m").all() and (rows["seed"] == 1).all()


def test_scjepa_suite_end_to_end(tmp_path, monkeypatch):
    data = _kang_like()
    monkeypatch.setattr(suite, "load_dataset", lambda name, data_dir=None: data.copy())
    with pytest.raises(KeyError, match="Unknown ScJEPA benchmark setting"):
        suite.run(tmp_path, quick=True, epoch=3)
    msgs = []
    table = suite.run(tmp_path, quick=True, progress=msgs.append, epochs=2, batch_size=64)
    ann = pd.read_csv(tmp_path / "scjepa_annotation.csv")
    methods = ["PCA (50)", "ScJEPA zero-shot", "ScJEPA fine-tuned",
               "ScJEPA w/o reconstruction", "ScJEPA w/o JEPA/SIGReg", "SCVI (10)"]  # fmt: skip
    assert ann["method"].tolist() == methods
    assert list(table.index.get_level_values("method")) == methods
    assert ann["f1_macro"].between(0, 1).all() and (ann["n_query"] == 100).all()
    scj = ann["method"].str.startswith("ScJEPA")
    # the collapse monitor comes with every ScJEPA row, not with the baselines
    assert ann.loc[scj, "proj_std (val)"].gt(0).all()
    assert ann.loc[~scj, "proj_std (val)"].isna().all()
    # w/o JEPA/SIGReg trains no similarity term: its sim loss is exactly 0
    assert ann.set_index("method").loc["ScJEPA w/o JEPA/SIGReg", "sim_loss (val)"] == 0.0
    assert ann.set_index("method").loc["ScJEPA zero-shot", "sim_loss (val)"] > 0.0
    sweep = pd.read_csv(tmp_path / "scjepa_sweep.csv")
    assert len(sweep) == 1 and sweep.loc[0, "proj_std (val)"] > 0
    curves = pd.read_csv(tmp_path / "scjepa_curves.csv")
    jepa = curves[curves["method"].isin(list(suite.VARIANTS))]
    assert (jepa.groupby(["method", "curve"]).size() == 2).all()  # one row per epoch
    assert set(curves["task"]) == {"sweep", "kang2018_ctrl"}
    assert (tmp_path / "scjepa_curves.png").stat().st_size > 0
    assert any("SCVI" in m for m in msgs)


@pytest.mark.realdata
def test_sampleclr_benchmark_split_and_view_size(tmp_path):
    """The benchmark trains with the data-derived view size and validation donors grouped by
    barcode_batch and stratified by disease (Stephenson is embedded: no data_dir needed)."""
    from cellpop import datasets, tl

    adata = datasets.stephenson2021_covid()
    meta = tl.sample_metadata(adata, "donor_id", majority_keys=["barcode_batch"])
    settings = dict(clr_suite.QUICK_BENCH_SETTINGS, max_epochs=2, max_epochs_supervised=1)
    curves = []
    scores, keep = clr_suite.evaluate(adata, meta, settings, lambda m: None, curves=curves)
    model = keep["SampleCLR"][0]
    assert model.view_size_ == (100, 200)  # 20-40 % of 500 cells per donor
    val, train = model.validation_samples_, model.train_samples_
    # train_size 0.8: about 4 of 20 donors, whole batches only (3 with seed 0)
    assert 2 <= len(val) <= 5 and len(train) + len(val) == 20 and not set(val) & set(train)
    disease = meta["disease"].astype(str)
    assert set(disease[val]) == {"COVID-19", "normal"}  # stratified
    batch = meta["barcode_batch"].astype(str)
    assert not set(batch[val]) & set(batch[train])  # a batch's donors on one side
    c = pd.DataFrame(curves)
    assert set(c["curve"]) == {"validation_loss", "train_loss"}
    assert (c[c["method"] == "SampleCLR"].groupby("curve").size() == 2).all()
    assert (c[c["method"] == "SampleCLR + disease head*"].groupby("curve").size() == 3).all()
    assert scores["LOO probe AUROC (disease)"].iloc[3:].between(0, 1).all()
    with pytest.raises(KeyError, match="Unknown SampleCLR benchmark setting"):
        clr_suite.run(tmp_path, quick=True, epochs=3)
