"""Lightning callbacks shared by cellpop models."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from cellpop.nn import ema_momentum


class EMATeacher(Callback):
    """Update the module's EMA teacher after every optimiser step.

    The module must define ``update_teacher(momentum: float)`` (teacher ← m·teacher +
    (1 − m)·student, no gradients). The momentum follows :func:`cellpop.nn.ema_momentum` (linear) over the run's
    ``trainer.estimated_stepping_batches``; it is logged as ``ema_momentum`` (per epoch).

    Parameters
    ----------
    start, end
        Momentum at the first and last step (I-JEPA: 0.996 → 1.0).
    """

    def __init__(self, start: float = 0.996, end: float = 1.0):
        super().__init__()
        self.start, self.end = start, end
        self.momentum = start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """EMA update with the scheduled momentum."""
        total = int(trainer.estimated_stepping_batches)
        self.momentum = ema_momentum(trainer.global_step, total, self.start, self.end)
        pl_module.module.update_teacher(self.momentum)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Log the current momentum."""
        pl_module.log("ema_momentum", self.momentum, on_step=False, on_epoch=True)


class ModeProbe(Callback):
    """Record ``module.training`` at every training batch (``modes``): a test and debug aid."""

    def __init__(self):
        super().__init__()
        self.modes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Append the module's mode."""
        self.modes.append(bool(pl_module.module.training))
