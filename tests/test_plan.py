"""cellpop.train.TrainingPlan logs epoch means weighted by n_obs_minibatch, as Lightning did."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from scvi.module.base import BaseModuleClass, LossOutput
from torch.utils.data import DataLoader

from cellpop.train import TrainingPlan


class _Toy(BaseModuleClass):
    """loss = mean(x); metrics: max(x), a python float and a vector (not a scalar)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def _get_inference_input(self, tensors):
        return {"x": tensors["x"]}

    def _get_generative_input(self, tensors, inference_outputs):
        return {}

    def inference(self, x):
        return {}

    def generative(self):
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs):
        x = tensors["x"]
        extra = {"m": x.max(), "f": 2.0, "vec": torch.ones(3)}
        return LossOutput(loss=x.mean() + 0 * self.w, n_obs_minibatch=len(x), extra_metrics=extra)


def _loader(batches):
    return DataLoader(
        [{"x": torch.tensor(b, dtype=torch.float32)} for b in batches], batch_size=None
    )


@pytest.mark.parametrize("epochs", [1, 2])
def test_epoch_means_weighted_by_batch_size(epochs):
    plan = TrainingPlan(_Toy(), scheduler=None, lr=0.0)
    trainer = Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    train = _loader([[1, 2, 3], [10]])
    val = _loader([[4], [0, 2]])
    trainer.fit(plan, train_dataloaders=train, val_dataloaders=val)
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    # (mean(1,2,3) * 3 + 10 * 1) / 4 = 4, not the unweighted (2 + 10) / 2 = 6
    assert m["train_loss"] == pytest.approx(4.0)
    assert m["m_train"] == pytest.approx((3 * 3 + 10) / 4)
    assert m["f_train"] == pytest.approx(2.0)
    assert m["validation_loss"] == pytest.approx((4 * 1 + 1 * 2) / 3)
    assert m["m_validation"] == pytest.approx((4 * 1 + 2 * 2) / 3)
    assert "vec_train" not in m and "vec_validation" not in m
    assert plan._epoch_records == {}  # nothing carried into the next epoch
