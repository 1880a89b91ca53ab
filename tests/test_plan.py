"""cellpop.train.TrainingPlan logs epoch means weighted by n_obs_minibatch, as Lightning did."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from lightning.pytorch import Callback, Trainer
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


def test_history_logger_tables_equal_scvi_tools():
    # the same calls into scvi-tools' SimpleExperiment and the list-backed one give equal tables
    from scvi.train._logger import SimpleExperiment

    from cellpop.train import HistoryLogger

    calls = [
        ({"a": 1.5, "b": torch.tensor(2.0), "epoch": 0}, 10),
        ({"a": 2.5, "epoch": 1}, 20),
        ({"a": 3.5, "epoch": 1}, 20),  # the same epoch again: overwrites in place
        ({"c": 3, "step": 4}, 30),
        ({"c": 4.5}, 7),  # neither key: indexed by the step argument
    ]
    ref, ours = SimpleExperiment(), HistoryLogger().experiment
    for metrics, step in calls:
        ref.log_metrics(dict(metrics), step)
        ours.log_metrics(dict(metrics), step)
    assert list(ours.data) == ["a", "b", "c"] == list(ref.data)
    for key, table in ref.data.items():
        pd.testing.assert_frame_equal(ours.data[key], table)
    assert ours.data["a"]["a"].tolist() == [1.5, 3.5] and ours.data["a"].index.name == "epoch"
    assert ours.data["c"].index.tolist() == [4, 7] and ours.data["c"].index.name == "step"
    assert ours.data["b"]["b"].tolist() == [2.0]  # tensors stored as python numbers


def test_epoch_means_reach_the_logger_and_progress_bar():
    from cellpop.train import HistoryLogger

    class AfterSanityCheck(Callback):
        def on_train_start(self, trainer, pl_module):
            self.keys = set(trainer.logger.history)

    plan = TrainingPlan(_Toy(), scheduler=None, lr=0.0)
    logger, probe = HistoryLogger(), AfterSanityCheck()
    trainer = Trainer(
        max_epochs=2, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=1, callbacks=[probe],
    )  # fmt: skip
    trainer.fit(
        plan, train_dataloaders=_loader([[1, 2, 3], [10]]), val_dataloaders=_loader([[4], [0, 2]])
    )
    assert probe.keys == set()  # the sanity-check validation was not logged
    h = logger.history
    assert set(h) == {"train_loss", "m_train", "f_train", "validation_loss", "m_validation",
                      "f_validation"}  # fmt: skip
    # one row per epoch (the sanity check is not logged), the weighted means of every epoch
    assert h["train_loss"].index.tolist() == [0, 1] and h["train_loss"].index.name == "epoch"
    assert h["train_loss"]["train_loss"].tolist() == pytest.approx([4.0, 4.0])
    assert h["validation_loss"]["validation_loss"].tolist() == pytest.approx([2.0, 2.0])
    assert h["m_train"]["m_train"].tolist() == pytest.approx([19 / 4, 19 / 4])
    assert float(trainer.progress_bar_metrics["train_loss"]) == pytest.approx(4.0)
    assert float(trainer.logged_metrics["m_validation"]) == pytest.approx(8 / 3)


def test_model_history_same_as_with_scvi_tools_logger():
    # a model's default logger (HistoryLogger) and scvi-tools' SimpleLogger give equal histories
    import scvi
    from scvi.train._logger import SimpleLogger
    from test_contract import make_adata

    from cellpop.model import SampleCLR

    adata = make_adata(n_donors=8)
    SampleCLR.setup_anndata(adata, sample_key="donor", obsm_key="X_pca")
    histories = []
    for kwargs in ({}, {"logger": SimpleLogger()}):
        scvi.settings.seed = 0
        model = SampleCLR(adata)
        model.train(max_epochs=3, n_cells=(20, 40), train_size=0.75, enable_progress_bar=False,
                    **kwargs)  # fmt: skip
        histories.append(model.history)
    ours, ref = histories
    assert {"train_loss", "validation_loss"} <= set(ref) and list(ours) == list(ref)
    for key, table in ref.items():
        assert len(table) == 3
        pd.testing.assert_frame_equal(ours[key], table)
