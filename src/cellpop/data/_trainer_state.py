"""What the data modules read from the Lightning trainer they are attached to."""

from __future__ import annotations


class TrainerState:
    """Rank, world size and epoch of the attached trainer, with defaults without one.

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
