"""SampleCLR milliseconds per training epoch and step: the TrainingPlan's epoch-level logging
next to per-step Lightning logging (the plan before issue 12), alternating in one process.

Usage: ``python benchmarks/sampleclr_step.py [--epochs 40] [--reps 3]``

Stephenson 2021 (20 donors x 500 cells, the authors' 50 PCs), SampleCLR tiny preset,
``train_size=1.0``, no early stopping, 1 torch thread. Time = process CPU seconds from one
epoch's start to the next (every hook, log and the epoch's data iteration included; CPU time
does not depend on other jobs sharing the cores), median over epochs 2+, then median over
``--reps`` alternating runs. ``per-step`` logs the loss and every scalar metric with one
Lightning ``self.log`` call per scalar and step, as the plan did before; ``epoch`` is the
current plan (scalars kept on the device, their epoch means handed to the trainer and loggers
without ``self.log``; one ``self.log`` per scalar and epoch before issue 12).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import scvi
import torch
from lightning.pytorch.callbacks import Callback

import cellpop
import cellpop.model.base._base as base
from cellpop.train import TrainingPlan

warnings.filterwarnings("ignore")
for _name in ("lightning", "lightning.pytorch", "scvi", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)


class PerStepLogging(TrainingPlan):
    """The plan with one Lightning ``log`` call per scalar and step (the earlier behaviour)."""

    def _record(self, out, mode):
        items = {f"{mode}_loss": out.loss}
        items.update({f"{k}_{mode}": v for k, v in (out.extra_metrics or {}).items()})
        for key, value in items.items():
            if torch.is_tensor(value) and value.numel() != 1:
                continue
            self.log(
                key, value, on_step=False, on_epoch=True, prog_bar=key == "train_loss",
                batch_size=out.n_obs_minibatch, sync_dist=self.use_sync_dist,
            )  # fmt: skip


class CpuEpochTimer(Callback):
    """Process CPU seconds from each epoch start to the next."""

    def __init__(self):
        self.seconds, self._t = [], None

    def on_train_epoch_start(self, trainer, pl_module):
        t = time.process_time()
        if self._t is not None:
            self.seconds.append(t - self._t)
        self._t = t


def run(adata, plan, epochs, n_cells, batch_size):
    base.TrainingPlan = plan
    scvi.settings.seed = 0
    model = cellpop.model.SampleCLR(adata)
    timer = CpuEpochTimer()
    model.train(
        max_epochs=epochs, n_cells=(n_cells, n_cells), train_size=1.0, batch_size=batch_size,
        early_stopping=False, enable_progress_bar=False, callbacks=[timer],
    )  # fmt: skip
    base.TrainingPlan = TrainingPlan
    return 1e3 * statistics.median(timer.seconds[1:]), float(
        model.history["train_loss"].iloc[-1, 0]
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    adata = cellpop.datasets.stephenson2021_covid()
    cellpop.model.SampleCLR.setup_anndata(adata, sample_key="donor_id", obsm_key="X_pca")
    print("| cells per view | samples per step | steps per epoch | plan | ms per epoch (CPU) | "
          "ms per step | last train_loss |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for n_cells, batch in ((1000, 32), (100, 32), (100, 4), (100, 2)):
        steps = max(1, 20 // batch)
        res = {"per-step": [], "epoch": []}
        run(adata, TrainingPlan, 3, n_cells, batch)  # warm-up
        for _ in range(args.reps):
            for name, plan in (("per-step", PerStepLogging), ("epoch", TrainingPlan)):
                res[name].append(run(adata, plan, args.epochs, n_cells, batch))
        for name, values in res.items():
            ms = statistics.median(v[0] for v in values)
            print(f"| {n_cells} | {min(batch, 20)} | {steps} | {name} | {ms:.2f} | "
                  f"{ms / steps:.2f} | {values[-1][1]:.5f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
