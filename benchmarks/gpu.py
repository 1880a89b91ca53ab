"""One prepared GPU check of every cellpop model next to scvi-tools' SCVI (a few minutes).

Usage: ``python benchmarks/gpu.py [--cells 100000] [--donors 1000] [--epochs 3]
[--set-epochs 10] [--models SampleCLR ...] [--no-bf16] [--source demo|kang]``

Data: :func:`cellpop.datasets.resample` of Kang 2018 (default: the 2,508 real cells embedded in
the package, so no data directory is needed) to ``--cells`` x ``--donors``; see
``throughput.py`` for inputs, set sizes and the throughput definition. Per model it prints
cells/s on the device and the ratio to SCVI on the same cells and device; GPU utilisation
during training (mean of samples every 0.2 s: pynvml, else ``torch.cuda.utilization()``, else
``nvidia-smi``); the share of steady epoch wall time spent between one step's end and the next
step's start (data fetch and transfer to the device, the loop's own hooks included); peak
allocated device memory; and the bf16-autocast run (Lightning ``precision="bf16-mixed"``): its
speed-up over float32 and its effect on one quality metric, the 15-NN cell-type accuracy of the
cell embeddings (3-fold cross-validation on at most 5,000 cells).

Without a GPU it runs a tiny CPU mode (600 cells, 6 donors, 2 epochs) that checks the script
end to end and says so on every line: none of its figures are GPU figures.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _scale import GPU, MODELS, SET_MODELS, device_line, prepare, run_model  # noqa: E402


def _util_reader():
    """A function returning the GPU utilisation in percent, and its name (``None`` on CPU)."""
    if not GPU:
        return None, "no GPU"
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        return (lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)), "pynvml"
    except Exception:  # noqa: BLE001 - any failure: try the next reader
        pass
    try:
        torch.cuda.utilization()
        return (lambda: float(torch.cuda.utilization())), "torch.cuda.utilization"
    except Exception:  # noqa: BLE001
        pass
    if shutil.which("nvidia-smi"):
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
               f"--id={torch.cuda.current_device()}"]  # fmt: skip
        return (lambda: float(subprocess.check_output(cmd, text=True).split()[0])), "nvidia-smi"
    return None, "no reader"


class Utilization:
    """Mean GPU utilisation (%) over samples taken every ``interval`` s in a ``with`` block."""

    def __init__(self, reader, interval: float = 0.2):
        self.reader, self.interval, self.samples = reader, interval, []

    def __enter__(self):
        self._stop = threading.Event()
        if self.reader is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.reader())
            except Exception:  # noqa: BLE001 - a failed sample is skipped
                pass

    def __exit__(self, *exc):
        self._stop.set()
        if self.reader is not None:
            self._thread.join()

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


def knn_accuracy(z: np.ndarray, labels: np.ndarray, n_max: int = 5000) -> float:
    """15-NN cell-type accuracy, 3-fold cross-validation, on at most ``n_max`` cells."""
    idx = np.random.default_rng(0).permutation(len(z))[:n_max]
    clf = KNeighborsClassifier(n_neighbors=15)
    return float(cross_val_score(clf, z[idx], labels[idx], cv=3).mean())


def _measure(name, adata, epochs, reader, precision="32"):
    with Utilization(reader) as util:
        run = run_model(name, adata, epochs, precision=precision, keep_latent=True)
    acc = knn_accuracy(run.latent, adata.obs["cell_type"].astype(str).to_numpy())
    return run, util.mean, acc


def _format(row: dict) -> str:
    """One markdown row (``-`` for what was not measured)."""

    def f(key, fmt):
        return format(row[key], fmt) if key in row else "-"

    return (
        f"| {row['device']} | {row['model']} | {f('cells_per_s', ',.0f')} | "
        f"{f('x_scvi', '.2f')} | {f('util', '.0f')} | {f('wait', '.0f')} | "
        f"{f('device_mib', ',.0f')} | {f('bf16_cells_per_s', ',.0f')} | "
        f"{f('bf16_speedup', '.2f')} | {f('acc', '.3f')} | {f('acc_bf16', '.3f')} |"
        + (f" FAILED: {row['error']}" if "error" in row else "")
    )


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--donors", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3, help="epochs of per-cell models and SCVI")
    p.add_argument("--set-epochs", type=int, default=10, help="epochs of set models")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16-autocast runs")
    p.add_argument("--source", default="demo", choices=("demo", "kang"))
    args = p.parse_args(argv)
    tag = "GPU"
    if not GPU:
        args.cells, args.donors, args.epochs, args.set_epochs = 600, 6, 2, 2
        tag = "CPU tiny mode, NOT GPU"
        print("NO GPU PRESENT: tiny CPU mode (600 cells, 6 donors, 2 epochs) to check the "
              "script; none of the figures below are GPU figures.", flush=True)  # fmt: skip
    reader, reader_name = _util_reader()
    print(f"machine: {device_line()}; utilisation reader: {reader_name}; "
          f"TF32 matmul: {torch.backends.cuda.matmul.allow_tf32}", flush=True)  # fmt: skip
    adata = prepare(args.cells, args.donors, source=args.source)
    print(f"data: {adata.n_obs:,} cells x {adata.n_vars:,} genes, {args.donors:,} donors "
          f"(resampled from {adata.uns['resample']['n_source_cells']:,} Kang cells)\n"
          "| device | model | cells/s | x SCVI | GPU util % | data wait % | peak device MiB "
          "| bf16 cells/s | bf16 speed-up | kNN acc fp32 | kNN acc bf16 |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|", flush=True)  # fmt: skip
    rows, ref = [], None
    for name in ["SCVI", *args.models]:
        epochs = args.set_epochs if name in SET_MODELS else args.epochs
        row = dict(device=tag, model=name)
        try:
            run, util, acc = _measure(name, adata, epochs, reader)
            ref = run if name == "SCVI" else ref
            row.update(
                cells_per_s=run.cells_per_s, x_scvi=run.cells_per_s / ref.cells_per_s,
                util=util, wait=100 * run.data_wait, device_mib=run.device_mib, acc=acc,
            )  # fmt: skip
            if name != "SCVI" and not args.no_bf16:
                bf, _, acc_bf = _measure(name, adata, epochs, reader, "bf16-mixed")
                row.update(bf16_cells_per_s=bf.cells_per_s, acc_bf16=acc_bf,
                           bf16_speedup=bf.cells_per_s / run.cells_per_s)  # fmt: skip
        except Exception as err:  # noqa: BLE001 - report and go on to the next model
            row["error"] = f"{type(err).__name__}: {err}"
            traceback.print_exc()
        rows.append(row)
        print(_format(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
