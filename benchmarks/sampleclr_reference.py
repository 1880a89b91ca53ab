"""SampleCLR next to the public reference code, same process, same data, same work per step.

Usage::

    # the reference (github.com/sampleclr-iclr2026/SampleCLR, commit 918d812) is not vendored:
    # extract its package and tiny preset from a clone, then point --reference at the folder
    git -C SampleCLR archive 918d812 src/sampleclr configs/models | tar -x -C /tmp/ref
    CELLPOP_DATA_DIR=../shared/data python benchmarks/sampleclr_reference.py --reference /tmp/ref
    # on a GPU machine (both codes on the device; ratios from wall time):
    python benchmarks/sampleclr_reference.py --reference /tmp/ref --device cuda

The reference is imported at run time from ``<reference>/src`` (its own dependencies: torch,
numpy, pandas, scikit-learn, scanpy, matplotlib, seaborn, umap-learn); without it the script says
so and exits. Data: Stephenson 2021 (20 donors x 500 cells, the authors' 50 PCs,
:func:`cellpop.datasets.stephenson2021_covid`). Both codes run their tiny preset
(reference: ``configs/models/tiny.json``; cellpop: ``model_size="tiny"``; ``--preset large``:
both large presets) with every donor in one
step: 20 donors x 2 views x ``--n-cells`` cells (500: the whole donor, drawn without
replacement), no validation split, no early stopping, cellpop with the reference's network depth
(``REFERENCE_ARCH``; the preset as shipped is timed too). The reference runs its own training loop
(``ContrastiveModel.train_epoch`` over its ``DataLoader``, the stage-1 loop of its ``train``:
scheduler, loss tracker); cellpop runs ``SampleCLR.train``. Each run is timed from start to end
(process CPU time and wall); the marginal time per epoch is
``(t(hi epochs) - t(lo epochs)) / (hi - lo)``, which removes the fixed costs of both (trainer
set-up, model construction). Runs alternate (reference, cellpop) so that load changes hit both.
On ``--device cuda`` both codes train on the GPU (the reference moves each step's padded
subsets from its ``Dataset`` to the device, cellpop keeps the cells on the device and draws
there); process CPU time then does not measure the GPU's work and the wall-time ratio is the
figure (the issue's goal there: >= 5x). ``--with-before`` adds cellpop with its epoch end as before issue 12 (:class:`LoggedPlan`: Lightning
``log`` calls, scvi-tools' pandas history logger), in the same alternation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import scvi
import torch
from lightning.pytorch import LightningModule
from scvi.train._logger import SimpleLogger

import cellpop
import cellpop.model.base._base as base
from cellpop.train import TrainingPlan

warnings.filterwarnings("ignore")
for _name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
    logging.getLogger(_name).setLevel(logging.ERROR)

REF_COMMIT = "918d812"
#: cellpop's depth arguments for the reference's tiny networks: its ``DynamicNetwork`` with
#: ``num_layers=L`` has ``L - 1`` residual hidden blocks (``models.py``), cellpop's
#: ``n_layers`` / ``aggregator_layers`` count the hidden blocks; tiny: ``num_layers=4``,
#: ``aggregator_num_layers=2``. The tiny preset has these depths, but without supervised heads
#: its encoder gains one block (paper App. A.4; the reference does not): one more layer per
#: sample vector, not per cell, timed as its own row.
REFERENCE_ARCH = {
    "tiny": {"n_layers": 3, "aggregator_layers": 1},  # parameters: 2,785 + 6,048, as the reference
    "large": {"n_layers": 15, "aggregator_layers": 1},  # num_layers=16, aggregator_num_layers=2
}


def load_reference(root: Path, preset: str = "tiny"):
    """``(ContrastiveModel, DataLoader, preset config)`` from an extracted reference folder."""
    src, cfg = root / "src", root / "configs" / "models" / f"{preset}.json"
    if not (src / "sampleclr" / "contrastive_model.py").is_file() or not cfg.is_file():
        return None
    sys.path.insert(0, str(src))
    from sampleclr import ContrastiveModel  # noqa: PLC0415 (run-time import of the reference)
    from torch.utils.data import DataLoader

    return ContrastiveModel, DataLoader, json.loads(cfg.read_text())


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_reference(
    ref, adata, epochs: int, n_cells: int, n_donors: int, device: str = "cpu"
) -> tuple[float, float]:
    """CPU and wall seconds of the reference's stage-1 loop over ``epochs`` epochs."""
    ContrastiveModel, DataLoader, cfg = ref
    model = ContrastiveModel(
        adata, sample_key="donor_id", layer="X_pca", device=torch.device(device),
        batch_size=n_donors, n_cells_per_sample=n_cells, num_epochs_stage1=epochs, **cfg,
    )  # fmt: skip
    _sync(device)
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    loader = DataLoader(model.train_pair_dataset, batch_size=n_donors, shuffle=True, drop_last=True)
    model.initialize_lr_schedulers(model.num_warmup_epochs_stage1, epochs * 2)
    for _ in range(epochs):
        losses = model.train_epoch(loader, stage="contrastive")
        model.loss_tracker.add_epoch({"total_loss": losses[0], "contrastive_loss": losses[1]})
    _sync(device)
    return time.process_time() - t_cpu, time.perf_counter() - t_wall


class LoggedPlan(TrainingPlan):
    """The plan's epoch end as before issue 12: one Lightning ``log`` call per scalar, train mode
    set every epoch, Lightning's batch transfer (run with scvi-tools' pandas ``SimpleLogger``)."""

    def _publish(self, means):
        for key, mean in means.items():
            self.log(
                key, mean, on_step=False, on_epoch=True, prog_bar=key == "train_loss",
                batch_size=1, sync_dist=self.use_sync_dist,
            )  # fmt: skip

    def on_train_epoch_start(self):
        self.module.train()

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return LightningModule.transfer_batch_to_device(self, batch, device, dataloader_idx)


def run_cellpop(
    adata, epochs: int, n_cells: int, n_donors: int, arch: dict, before: bool = False,
    device: str = "cpu", preset: str = "tiny",
) -> tuple[float, float]:  # fmt: skip
    """CPU and wall seconds of ``SampleCLR.train`` over ``epochs`` epochs."""
    scvi.settings.seed = 0
    model = cellpop.model.SampleCLR(adata, model_size=preset, **arch)
    base.TrainingPlan = LoggedPlan if before else TrainingPlan
    kwargs = {"logger": SimpleLogger()} if before else {}
    _sync(device)
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    model.train(
        max_epochs=epochs, n_cells=(n_cells, n_cells), batch_size=n_donors, train_size=1.0,
        early_stopping=False, accelerator="gpu" if device == "cuda" else "cpu",
        enable_progress_bar=False, **kwargs,
    )  # fmt: skip
    _sync(device)
    base.TrainingPlan = TrainingPlan
    return time.process_time() - t_cpu, time.perf_counter() - t_wall


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", type=Path, default=os.environ.get("SAMPLECLR_REFERENCE"),
                   help="folder holding the reference's src/sampleclr and configs/models/")  # fmt: skip
    p.add_argument("--preset", choices=("tiny", "large"), default="tiny")
    p.add_argument("--epochs", type=int, nargs=2, default=(20, 120), metavar=("LO", "HI"))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n-cells", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (both codes)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="both codes train on this device (cuda: ratios from wall time)")  # fmt: skip
    p.add_argument("--with-before", action="store_true",
                   help="also time cellpop with the epoch end before issue 12 (LoggedPlan)")  # fmt: skip
    args = p.parse_args(argv)
    ref = load_reference(args.reference, args.preset) if args.reference else None
    if ref is None:
        print(f"SKIPPED: the SampleCLR reference code (commit {REF_COMMIT}) was not found; extract "
              "it (see this file's docstring) and pass --reference or set SAMPLECLR_REFERENCE.")  # fmt: skip
        return None
    if args.device == "cuda" and not torch.cuda.is_available():
        print("SKIPPED: --device cuda but no CUDA device is visible; no GPU figures.")
        return None
    torch.set_num_threads(args.threads)
    adata = cellpop.datasets.stephenson2021_covid()
    n_donors = adata.obs["donor_id"].nunique()
    cellpop.model.SampleCLR.setup_anndata(adata, sample_key="donor_id", obsm_key="X_pca")
    lo, hi = args.epochs
    dev = args.device
    print(f"device {torch.cuda.get_device_name() if dev == 'cuda' else 'CPU'}; "
          f"torch {torch.__version__}, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}; {n_donors} donors x 2 views x {args.n_cells} cells per step, "
          f"one step per epoch; marginal ms per epoch over {lo} -> {hi} epochs")  # fmt: skip
    arch, ps = REFERENCE_ARCH[args.preset], args.preset
    codes = {
        "reference": lambda e: run_reference(ref, adata, e, args.n_cells, n_donors, dev),
        "cellpop, reference depth": lambda e: run_cellpop(
            adata, e, args.n_cells, n_donors, arch, device=dev, preset=ps
        ),
        f"cellpop {ps} preset": lambda e: run_cellpop(
            adata, e, args.n_cells, n_donors, {}, device=dev, preset=ps
        ),
    }
    if args.with_before:
        codes["cellpop, epoch end before issue 12"] = lambda e: run_cellpop(
            adata, e, args.n_cells, n_donors, arch, before=True, device=dev, preset=ps
        )
    for run in codes.values():
        run(3)  # warm-up (imports, first allocations)
    times = {code: {lo: [], hi: []} for code in codes}
    for _ in range(args.reps):
        for epochs in (lo, hi):
            for code, run in codes.items():
                times[code][epochs].append(run(epochs))
    res = {}
    for code, t in times.items():
        per = [
            [1e3 * (b[k] - a[k]) / (hi - lo) for a, b in zip(t[lo], t[hi], strict=True)]
            for k in (0, 1)
        ]
        res[code] = [statistics.median(v) for v in per]
        print(f"{code}: {res[code][0]:.2f} ms CPU, {res[code][1]:.2f} ms wall per epoch "
              f"(runs: {', '.join(f'{v:.2f}' for v in per[0])} ms CPU)")  # fmt: skip
    for code in [c for c in codes if c != "reference"]:
        cpu = res["reference"][0] / res[code][0]
        wall = res["reference"][1] / res[code][1]
        print(f"{code} speed / reference speed: {cpu:.2f}x (CPU), {wall:.2f}x (wall)")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    return res


if __name__ == "__main__":
    main()
