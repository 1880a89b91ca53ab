"""benchmarks/gpu.py in its CPU tiny mode: runs end to end and never labels a figure as GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU tiny mode runs only without GPU")
def test_gpu_script_cpu_tiny_mode(capsys):
    spec = importlib.util.spec_from_file_location("cellpop_gpu_benchmark", SCRIPT)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    rows = gpu.main(["--models", "SampleCLR", "ScJEPA"])
    out = capsys.readouterr().out
    assert "NO GPU PRESENT" in out and "none of the figures below are GPU figures" in out
    assert [r["model"] for r in rows] == ["SCVI", "SampleCLR", "ScJEPA"]
    for r in rows:
        assert "error" not in r, r
        assert r["device"] == "CPU tiny mode, NOT GPU"
        assert r["cells_per_s"] > 0 and 0 <= r["wait"] <= 100
        # 15-NN cell-type accuracy of 600 Kang cells: above the majority class (CD4 T, ~42 %)
        assert 0.5 < r["acc"] <= 1.0
    assert rows[0]["x_scvi"] == pytest.approx(1.0)
    for r in rows[1:]:
        assert r["bf16_speedup"] > 0 and 0.5 < r["acc_bf16"] <= 1.0
    # every table row says CPU, no device memory is reported as GPU memory
    table = [line for line in out.splitlines() if line.startswith("| CPU")]
    assert len(table) == 3 and all("NOT GPU" in line for line in table)
