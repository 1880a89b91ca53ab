"""A Lightning training plan for self-supervised objectives (no ELBO)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from scvi.module.base import LossOutput
from scvi.train import TrainingPlan


def warmup_cosine(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup_epochs``, then cosine decay to 0.

    Parameters
    ----------
    epoch
        Current epoch (0-based).
    warmup_epochs
        Length of the linear warm-up (SampleCLR App. A.4: 10 epochs per stage).
    max_epochs
        Epoch at which the cosine reaches 0.

    Returns
    -------
    Factor in ``(0, 1]`` multiplying the base learning rate.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    span = max(1, max_epochs - warmup_epochs)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return max(1e-3, 0.5 * (1.0 + math.cos(math.pi * progress)))


class SSLTrainingPlan(TrainingPlan):
    """Training plan for contrastive / JEPA / SwAV objectives.

    Logs ``train_loss`` / ``validation_loss`` (the early-stopping monitor) and every entry of
    the module's ``LossOutput.extra_metrics`` as ``<name>_train`` / ``<name>_validation``;
    no ELBO metrics are logged (they mean nothing for these objectives).

    Parameters
    ----------
    module
        An scvi-tools ``BaseModuleClass`` whose ``loss`` returns a :class:`~scvi.module.base.LossOutput`.
    lr
        Base learning rate of AdamW.
    weight_decay
        AdamW weight decay.
    warmup_epochs
        Linear warm-up epochs before the cosine decay (``0``: cosine only).
    max_epochs
        Length of the cosine schedule (the stage's number of epochs).
    frozen_modules
        Names of submodules of ``module`` to keep frozen during the first ``frozen_epochs``.
    frozen_epochs
        Epochs during which ``frozen_modules`` receive no updates (SampleCLR stage 2: 2).
    **loss_kwargs
        Passed to ``module.loss`` on every step.
    """

    def __init__(
        self,
        module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 10,
        max_epochs: int = 100,
        frozen_modules: Iterable[str] = (),
        frozen_epochs: int = 0,
        **loss_kwargs,
    ):
        super().__init__(
            module,
            optimizer="AdamW",
            lr=lr,
            weight_decay=weight_decay,
            n_epochs_kl_warmup=None,
            n_steps_kl_warmup=None,
            **loss_kwargs,
        )
        self.warmup_epochs = int(warmup_epochs)
        self.schedule_epochs = int(max_epochs)
        self.frozen_modules = tuple(frozen_modules)
        self.frozen_epochs = int(frozen_epochs)

    def _set_frozen(self, frozen: bool) -> None:
        for name in self.frozen_modules:
            for p in getattr(self.module, name).parameters():
                p.requires_grad_(not frozen)

    def on_train_epoch_start(self) -> None:
        """Freeze ``frozen_modules`` during the first ``frozen_epochs`` epochs."""
        if self.frozen_modules:
            self._set_frozen(self.current_epoch < self.frozen_epochs)

    def on_train_end(self) -> None:
        """Leave every parameter trainable after training."""
        if self.frozen_modules:
            self._set_frozen(False)

    def configure_optimizers(self):
        """AdamW with a per-epoch warm-up + cosine schedule."""
        params = [p for p in self.module.parameters()]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda e: warmup_cosine(e, self.warmup_epochs, self.schedule_epochs),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def compute_and_log_metrics(self, loss_output: LossOutput, metrics, mode: str) -> None:
        """Log the extra metrics of ``loss_output`` (per epoch), suffixed with ``mode``."""
        n = loss_output.n_obs_minibatch
        for key, value in (loss_output.extra_metrics or {}).items():
            if torch.is_tensor(value) and value.numel() != 1:
                continue
            self.log(
                f"{key}_{mode}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=n,
                sync_dist=self.use_sync_dist,
            )

    def training_step(self, batch, batch_idx):
        """Forward, log ``train_loss`` and the extra metrics, return the loss."""
        _, _, out = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self.log(
            "train_loss",
            out.loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=out.n_obs_minibatch,
            sync_dist=self.use_sync_dist,
        )
        self.compute_and_log_metrics(out, None, "train")
        return out.loss

    def validation_step(self, batch, batch_idx):
        """Forward on validation sets, log ``validation_loss`` and the extra metrics."""
        _, _, out = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self.log(
            "validation_loss",
            out.loss,
            on_step=False,
            on_epoch=True,
            batch_size=out.n_obs_minibatch,
            sync_dist=self.use_sync_dist,
        )
        self.compute_and_log_metrics(out, None, "validation")
