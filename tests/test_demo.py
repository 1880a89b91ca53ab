"""``cellpop demo``: every output of every model section, from the data embedded in the package."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellpop._cli import main
from cellpop.benchmark import _demo

FILES = (
    "report.md",
    "scores.csv",
    "stephenson2021_cells.h5ad",
    "donors.h5ad",
    "kang2018_cells.h5ad",
    "scproto_metacells.h5ad",
    "donor_umap.png",
    "cell_importance.png",
    "cell_umap.png",
    "metacell_dotplot.png",
    "poppy_matching.png",
)


def test_demo_quick_offline_writes_every_output(tmp_path, monkeypatch, capsys):
    # no data folder: the embedded Stephenson 2021 and Kang 2018 subsets, no network
    monkeypatch.delenv("CELLPOP_DATA_DIR", raising=False)
    messages = []
    run_demo = _demo.run_demo

    def spy(*args, progress, **kwargs):
        def record(msg):
            messages.append(msg)
            progress(msg)

        return run_demo(*args, progress=record, **kwargs)

    monkeypatch.setattr(_demo, "run_demo", spy)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
        assert str(out / name) in printed, f"where {name} went is not printed"
    # one progress bar: its total is the number of steps the run reports
    assert len(messages) == _demo.n_steps(quick=True), messages

    report = (out / "report.md").read_text()
    for title in ("## SampleCLR", "## PopulationJEPA", "## ScJEPA", "## ScProto", "## POPPY"):
        assert title in report, title
    scores = pd.read_csv(out / "scores.csv").set_index("method")
    # deterministic baseline: the METHODS.md probe number
    assert (
        abs(scores.loc["pseudobulk (mean PCs)", "LOO probe AUROC (disease)"].iloc[0] - 0.75) < 0.02
    )
    # ScJEPA after 1 epoch on 600 cells annotates held-out donors far above chance (0.07); an
    # untrained encoder gives 0.32 and a collapsed one 0.07 (measured with the same split)
    f1 = scores.loc["ScJEPA zero-shot, logistic probe", "F1 macro"]
    assert f1 > 0.4 > 0.1 > scores.loc["majority class (chance)", "F1 macro"]
    # k-means baseline with ScProto's K on PCA: far purer than the majority share (0.42)
    assert scores.loc[scores.index.str.startswith("k-means"), "purity"].iloc[0] > 0.8

    cells = ad.read_h5ad(out / "stephenson2021_cells.h5ad")
    assert cells.obsm["X_sampleclr_cell"].shape[0] == cells.n_obs == 10_000
    assert cells.obsm["X_popjepa_tokens"].shape[0] == 10_000
    assert "sampleclr_importance" in cells.obsm
    for key in ("X_sampleclr", "X_sampleclr_prior", "X_sampleclr_disease", "X_popjepa"):
        assert cells.uns[key].shape[0] == 20, key
    donors = ad.read_h5ad(out / "donors.h5ad")
    assert donors.n_obs == 20 and "disease" in donors.obs
    assert {"X_sampleclr", "X_popjepa", "X_pseudobulk"} <= set(donors.obsm)
    kang = ad.read_h5ad(out / "kang2018_cells.h5ad")
    assert kang.n_obs == 2508
    for key in ("X_scjepa", "X_scproto", "X_umap_scjepa", "X_umap_scproto"):
        assert np.isfinite(kang.obsm[key]).all() and kang.obsm[key].shape[0] == 2508, key
    meta = ad.read_h5ad(out / "scproto_metacells.h5ad")
    assert meta.n_obs == 26  # K = clip(ceil(2,508 / 100), 10, 500) prototypes
    assert kang.obs["scproto_prototype"].astype(int).between(0, 25).all()
    assert meta.n_vars == kang.n_vars and "majority_label" in meta.obs
    assert kang.uns["X_scproto_occupancy"].shape == (8, meta.n_obs)
    # POPPY: per-cell embeddings of the Kang cells, one cell-set embedding per sample (8 + 40)
    assert kang.obsm["X_poppy"].shape == (2508, 64)
    assert np.allclose(np.linalg.norm(kang.obsm["X_poppy"], axis=1), 1, atol=1e-4)
    assert kang.uns["X_poppy_samples"].shape == (48, 64)
    # 10 held-out samples: chance recall@k = k / 10
    chance = scores.loc["chance"]
    assert chance["cell→bulk R@1"] == pytest.approx(0.1)
    assert chance["bulk→cell R@3"] == pytest.approx(0.3)
    assert 0 <= scores.loc["POPPY", "cell→bulk R@1"] <= 1


def test_pair_recall_hand_computed():
    from cellpop.benchmark._demo_poppy import pair_recall

    zc = pd.DataFrame([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], index=["a", "b", "c"])
    # bulks: a's own bulk is best for a; b's own bulk is 2nd for b (c's bulk is closer);
    # c's own bulk is best for c
    zb = pd.DataFrame([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], index=["a", "c", "b"])
    r = pair_recall(zc, zb, ks=(1, 2))
    # cell->bulk sims: a: a 1, b 0, c .8 -> rank 0; b: a 0, b 1, c .6 -> rank 0;
    # c: a .6, b .8, c .96 -> rank 0
    assert r["cell→bulk R@1"] == 1.0
    # bulk->cell: bulk a: cells a 1, b 0, c .6 -> 0; bulk b (0,1): a 0, b 1, c .8 -> 0;
    # bulk c (.8,.6): a .8, b .6, c .96 -> 0
    assert r["bulk→cell R@1"] == 1.0
    zb2 = zb.copy()
    zb2.loc["b"] = [0.6, 0.8]  # b's own bulk now equals c's cell: c's cell prefers it (1.0)
    r2 = pair_recall(zc, zb2, ks=(1, 2))
    # cell c: a .6, b 1.0, c .96 -> rank 1; cells a, b still rank 0
    assert r2["cell→bulk R@1"] == pytest.approx(2 / 3)
    assert r2["cell→bulk R@2"] == 1.0


def test_unknown_section(tmp_path):
    with pytest.raises(KeyError, match="Unknown demo section"):
        _demo.run_demo(tmp_path, sections=["nope"])


def test_summarize_mean_sd_and_counts():
    scores = pd.DataFrame(
        {"method": ["a", "a", "b"], "seed": [0, 1, -1], "x": [0.1, 0.3, np.nan], "n": [3, 5, 8]}
    )
    table = _demo.summarize(scores)
    assert table.loc["a", "x"] == "0.200 ± 0.100" and table.loc["b", "x"] == "–"
    assert table.loc["a", "n"] == "4 ± 1" and table.loc["b", "n"] == "8"


def test_benchmark_list(capsys):
    assert main(["benchmark", "list"]) == 0
    assert "sampleclr" in capsys.readouterr().out


def test_benchmark_set_passes_suite_keywords(monkeypatch):
    import cellpop.benchmark as bench

    seen = {}
    monkeypatch.setitem(bench.SUITES, "fake", "x")
    monkeypatch.setattr(bench, "get_suite", lambda name: lambda **kw: seen.update(kw) or "done")
    argv = ["benchmark", "fake", "--set", "max_epochs=150", "--set", "n_cells=2500"]
    assert main([*argv, "--set", "datasets=['kang2018_ctrl']", "--set", "tag=abc"]) == 0
    assert seen["max_epochs"] == 150 and seen["n_cells"] == 2500
    assert seen["datasets"] == ["kang2018_ctrl"] and seen["tag"] == "abc"
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["benchmark", "fake", "--set", "no_equals_sign"])
