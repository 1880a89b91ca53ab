import anndata as ad
import pandas as pd

from cellpop._cli import main


def test_demo_quick_writes_outputs(data_dir, tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    for name in (
        "report.md",
        "scores.csv",
        "adata_sampleclr.h5ad",
        "donors.h5ad",
        "sample_umap.png",
        "cell_importance.png",
    ):
        assert (out / name).stat().st_size > 0, name
    scores = pd.read_csv(out / "scores.csv")
    methods = set(scores["method"])
    assert {
        "pseudobulk (mean PCs)",
        "composition (CLR)",
        "GloScope (10 PCs)",
        "SampleCLR",
    } <= methods
    # the deterministic baselines reproduce the METHODS.md probe numbers
    pb = scores.set_index("method").loc["pseudobulk (mean PCs)", "LOO probe AUROC (disease)"]
    assert abs(pb - 0.75) < 0.02
    cells = ad.read_h5ad(out / "adata_sampleclr.h5ad")
    assert cells.obsm["X_sampleclr_cell"].shape[0] == 10_000
    assert cells.uns["X_sampleclr"].shape[0] == 20
    donors = ad.read_h5ad(out / "donors.h5ad")
    assert donors.n_obs == 20 and "X_sampleclr" in donors.obsm and "disease" in donors.obs
    assert "| SampleCLR |" in (out / "report.md").read_text()


def test_benchmark_list(capsys):
    assert main(["benchmark", "list"]) == 0
    assert "sampleclr" in capsys.readouterr().out
