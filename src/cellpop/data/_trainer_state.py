"""What the data modules read from (and hook into) the Lightning trainer they are attached to."""

from __future__ import annotations

import torch


class TrainerState:
    """Rank, world size and epoch of the attached trainer, with defaults without one, and the
    batch transfer hook of the data modules.

    The data module sets ``self._own_epoch = -1`` in its ``__init__``: it counts the training
    passes iterated by hand (no trainer attached).
    """

    _own_epoch: int

    def _rank_world(self) -> tuple[int, int]:
        """``(global_rank, world_size)`` of the trainer; ``(0, 1)`` without one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _epoch(self) -> int:
        """The trainer's current epoch (a counter of training passes without a trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.current_epoch)
        self._own_epoch += 1
        return self._own_epoch

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """The batch as is when it is a dict of tensors on ``device`` already (the data modules
        draw on the training device when the data fit there); otherwise Lightning's transfer.
        A data-module hook (not the plan's), so Lightning warns of no override conflict."""
        if isinstance(batch, dict) and all(
            torch.is_tensor(v) and v.device == device for v in batch.values()
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
