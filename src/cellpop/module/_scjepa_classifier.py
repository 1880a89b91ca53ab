"""Fine-tuning module of ScJEPA: its encoder plus a linear cell-type head."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn


class ScJEPAClassifierModule(BaseModuleClass):
    """ScJEPA's encoder (shared, not copied) + a linear head, cross-entropy loss.

    Parameters
    ----------
    jepa
        The trained :class:`cellpop.module.ScJEPAModule`; its encoder is updated in place unless
        the training plan freezes ``jepa`` (linear probe).
    n_classes
        Number of cell types.
    """

    def __init__(self, jepa: nn.Module, n_classes: int):
        super().__init__()
        self.jepa = jepa
        self.head = nn.Linear(jepa.encoder[-1].out_features, n_classes)

    def _get_inference_input(self, tensors: dict) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    @auto_move_data
    def inference(self, x: torch.Tensor) -> dict:
        """Logits ``(N, n_classes)`` of the unmasked cells."""
        return {"logits": self.head(self.jepa.encoder(self.jepa.preprocess(x)))}

    def generative(self) -> dict:
        """No generative part."""
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs) -> LossOutput:
        """Cross-entropy of the labels (``accuracy`` as an extra metric)."""
        logits = inference_outputs["logits"]
        y = tensors[REGISTRY_KEYS.LABELS_KEY].long().view(-1)
        ce = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return LossOutput(loss=ce, n_obs_minibatch=y.shape[0], extra_metrics={"accuracy": acc})
