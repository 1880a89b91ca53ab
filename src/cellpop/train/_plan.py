"""The one training plan of cellpop, configured by options (no plan per model)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from scvi.module.base import LossOutput
from scvi.train import TrainingPlan as _ScviTrainingPlan

from cellpop.nn import global_batch


def warmup_cosine(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup_epochs``, then cosine decay.

    Parameters
    ----------
    epoch
        Current epoch (0-based).
    warmup_epochs
        Length of the linear warm-up (SampleCLR App. A.4: 10 epochs per stage).
    max_epochs
        Epoch at which the cosine reaches its floor (1e-3 of the base rate).

    Returns
    -------
    Factor in ``(0, 1]`` multiplying the base learning rate.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    span = max(1, max_epochs - warmup_epochs)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return max(1e-3, 0.5 * (1.0 + math.cos(math.pi * progress)))


class TrainingPlan(_ScviTrainingPlan):
    """scvi-tools training plan used by every cellpop model, configured by options.

    Logs ``train_loss`` / ``validation_loss`` (the early-stopping monitor), every scalar of the
    module's ``LossOutput.extra_metrics`` as ``<name>_train`` / ``<name>_validation`` (the
    collapse monitors among them) and, with ``log_elbo=True``, scvi-tools' ELBO metrics. The
    scalars are epoch means weighted by ``n_obs_minibatch`` (as Lightning's ``on_epoch``
    logging): each step keeps its detached scalars on the device and the epoch end hands their
    means, with one host transfer, to the trainer's metrics and loggers (no Lightning ``log``
    call; see :meth:`_publish`).
    The module is put in train mode at the start of every training epoch, whatever mode a
    getter left it in. Under DDP (``world_size > 1``) every step runs inside
    :func:`cellpop.nn.global_batch`: losses over the whole minibatch (contrastive negatives,
    SIGReg, Sinkhorn marginals, VICReg variance) gather the shards of all ranks.

    Parameters
    ----------
    module
        A cellpop module (:class:`scvi.module.base.BaseModuleClass`).
    optimizer
        ``"AdamW"`` or ``"Adam"`` (torch).
    lr, weight_decay, eps
        Optimiser settings.
    scheduler
        ``"warmup_cosine"`` (per epoch: linear warm-up over ``warmup_epochs``, cosine decay to
        ``max_epochs``), ``"step"`` (multiply by ``lr_gamma`` every ``lr_step_size`` epochs) or
        ``None`` (constant).
    warmup_epochs
        Warm-up length of ``"warmup_cosine"``.
    max_epochs
        Length of the schedule (the run's or stage's number of epochs).
    lr_step_size, lr_gamma
        ``"step"`` schedule (``None``: a third of ``max_epochs``, at least 1).
    frozen, frozen_epochs
        Names of submodules or parameters of ``module`` that receive no update during the first
        ``frozen_epochs`` epochs (SampleCLR's stage 2, SwAV's prototype freezing).
    step_seeded
        Pass ``step=global_step`` to ``module.loss`` in training and ``step=None`` in validation
        (losses that draw random directions per step, e.g. SIGReg).
    log_elbo
        Log scvi-tools' ELBO metrics (needs ``reconstruction_loss`` in the ``LossOutput``).
    n_epochs_kl_warmup, n_steps_kl_warmup
        KL annealing of scvi-tools (only used when ``module.loss`` takes ``kl_weight``).
    **loss_kwargs
        Passed to ``module.loss`` on every step.
    """

    def __init__(
        self,
        module,
        *,
        optimizer: Literal["AdamW", "Adam"] = "AdamW",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        eps: float = 1e-8,
        scheduler: Literal["warmup_cosine", "step"] | None = "warmup_cosine",
        warmup_epochs: int = 0,
        max_epochs: int = 100,
        lr_step_size: int | None = None,
        lr_gamma: float = 0.5,
        frozen: Iterable[str] = (),
        frozen_epochs: int = 0,
        step_seeded: bool = False,
        log_elbo: bool = False,
        n_epochs_kl_warmup: int | None = None,
        n_steps_kl_warmup: int | None = None,
        **loss_kwargs,
    ):
        if optimizer not in ("AdamW", "Adam"):
            raise ValueError(f"optimizer must be 'AdamW' or 'Adam', got {optimizer!r}")
        if scheduler not in ("warmup_cosine", "step", None):
            raise ValueError(
                f"scheduler must be 'warmup_cosine', 'step' or None, got {scheduler!r}"
            )
        super().__init__(
            module,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            n_steps_kl_warmup=n_steps_kl_warmup,
            **loss_kwargs,
        )
        self.scheduler = scheduler
        self.warmup_epochs = int(warmup_epochs)
        self.schedule_epochs = max(1, int(max_epochs))
        self.lr_step_size = lr_step_size or max(1, self.schedule_epochs // 3)
        self.lr_gamma = lr_gamma
        self.frozen = tuple(frozen)
        self.frozen_epochs = int(frozen_epochs)
        self.step_seeded = step_seeded
        self.log_elbo = log_elbo
        self._epoch_records: dict[str, dict] = {}
        for name in self.frozen:
            if not hasattr(module, name):
                raise ValueError(f"frozen: the module has no submodule or parameter {name!r}")

    # -- state --------------------------------------------------------------------------------
    def _set_frozen(self, frozen: bool) -> None:
        for name in self.frozen:
            part = getattr(self.module, name)
            params = [part] if isinstance(part, torch.nn.Parameter) else part.parameters()
            for p in params:
                p.requires_grad_(not frozen)

    def on_train_epoch_start(self) -> None:
        """Train mode (a getter may have left eval mode) and the freeze schedule."""
        if not all(m.training for m in self.module.modules()):
            self.module.train()
        if self.frozen:
            self._set_frozen(self.current_epoch < self.frozen_epochs)

    def on_train_end(self) -> None:
        """Leave every parameter trainable after training."""
        if self.frozen:
            self._set_frozen(False)

    def configure_optimizers(self):
        """The optimiser over every parameter and the per-epoch schedule."""
        cls = torch.optim.AdamW if self.optimizer_name == "AdamW" else torch.optim.Adam
        opt = cls(
            self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay, eps=self.eps
        )
        if self.scheduler is None:
            return opt
        if self.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, self.lr_step_size, gamma=self.lr_gamma)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda e: warmup_cosine(e, self.warmup_epochs, self.schedule_epochs)
            )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # -- steps --------------------------------------------------------------------------------
    def _record(self, out: LossOutput, mode: str) -> None:
        """Keep the step's loss and scalar metrics (detached, on the device) for the epoch."""
        rec = self._epoch_records.setdefault(mode, {})
        items = {f"{mode}_loss": out.loss}
        items.update({f"{key}_{mode}": v for key, v in (out.extra_metrics or {}).items()})
        for key, value in items.items():
            if not torch.is_tensor(value):
                value = torch.tensor(float(value), device=out.loss.device)
            elif value.numel() != 1:
                continue
            values, sizes = rec.setdefault(key, ([], []))
            values.append(value.detach().reshape(()))
            sizes.append(float(out.n_obs_minibatch))

    def _log_epoch(self, mode: str) -> None:
        """Publish the ``n_obs_minibatch``-weighted epoch mean of every recorded scalar.

        One host transfer (and under DDP one all-reduce of the weighted sums and weights) for
        all of them; see :meth:`_publish`.
        """
        rec = self._epoch_records.pop(mode, None)
        if not rec:
            return
        sums = []
        for values, sizes in rec.values():
            v = torch.stack([x.float() for x in values])  # bf16 under autocast, mixed dtypes
            w = torch.tensor(sizes, device=v.device)
            sums.append(torch.stack([(v * w).sum(), w.sum()]))
        sums = torch.stack(sums)
        if self.use_sync_dist:  # the global weighted mean over the ranks' samples
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self._publish(dict(zip(rec, (sums[:, 0] / sums[:, 1]).tolist(), strict=True)))

    def _publish(self, means: dict[str, float]) -> None:
        """Hand epoch means to the trainer as Lightning's epoch-end ``log`` would.

        Written to ``trainer.callback_metrics`` (early stopping, checkpoints),
        ``trainer.logged_metrics``, ``trainer.progress_bar_metrics`` (``train_loss``) and, with
        the epoch, to every logger (``model.history``). A Lightning ``log`` call costs ~0.5 ms
        of CPU per scalar (it re-validates and moves its metric state on each call): 7 % of a
        SampleCLR epoch on 20 donors (docs/benchmarks.md, "SampleCLR next to the public
        reference code").
        """
        trainer = self.trainer
        if trainer.sanity_checking:  # as Lightning: sanity-check values are not logged
            return
        values = {key: torch.tensor(mean) for key, mean in means.items()}
        trainer.callback_metrics.update(values)
        trainer.logged_metrics.update(values)
        if "train_loss" in values:
            trainer.progress_bar_metrics["train_loss"] = values["train_loss"]
        for logger in trainer.loggers:
            logger.log_metrics({**means, "epoch": trainer.current_epoch}, step=self.global_step)
            logger.save()

    def on_train_epoch_end(self) -> None:
        """Log the training epoch means."""
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        """Log the validation epoch means."""
        self._log_epoch("validation")

    def compute_and_log_metrics(self, loss_output: LossOutput, metrics, mode: str) -> None:
        """scvi-tools' ELBO metrics, computed under ``no_grad`` instead of its ``inference_mode``.

        Under DDP Lightning reduces the logged tensors across ranks in place at the end of an
        epoch, which fails on inference tensors ("Inplace update to inference tensor outside
        InferenceMode"; ScProto's ``log_elbo=True`` under ``strategy="ddp"``).
        """
        with torch.no_grad():
            _ScviTrainingPlan.compute_and_log_metrics.__wrapped__(self, loss_output, metrics, mode)

    def _step(self, batch, mode: str) -> torch.Tensor:
        if self.step_seeded:
            self.loss_kwargs["step"] = int(self.global_step) if mode == "train" else None
        if "kl_weight" in self.loss_kwargs:
            self.loss_kwargs["kl_weight"] = self.kl_weight
        # under DDP the losses see the global minibatch (cellpop.nn.global_batch)
        with global_batch(self.trainer.world_size > 1):
            _, _, out = self.forward(batch, loss_kwargs=self.loss_kwargs)
        if self.log_elbo:
            self.log(
                f"{mode}_loss", out.loss, on_step=False, on_epoch=True,
                prog_bar=mode == "train", batch_size=out.n_obs_minibatch,
                sync_dist=self.use_sync_dist,
            )  # fmt: skip
            metrics = self.train_metrics if mode == "train" else self.val_metrics
            self.compute_and_log_metrics(out, metrics, mode)
        else:
            self._record(out, mode)
        return out.loss

    def training_step(self, batch, batch_idx):
        """Forward, record ``train_loss`` and the metrics, return the loss."""
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        """Forward on validation batches, record ``validation_loss`` and the metrics."""
        self._step(batch, "validation")
