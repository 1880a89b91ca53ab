"""Training-history logger: scvi-tools' history tables, built once at the end instead of per epoch."""

from __future__ import annotations

import pandas as pd
import torch
from lightning.pytorch.loggers.logger import rank_zero_experiment
from scvi.train._logger import SimpleLogger


class _ListExperiment:
    """scvi-tools' ``SimpleExperiment`` (``scvi.train._logger``) storing plain dicts.

    scvi-tools grows one ``pandas.DataFrame`` per metric by ``.loc`` enlargement at every
    ``log_metrics`` call, a few percent of a small model's epoch (docs/benchmarks.md, "SampleCLR
    next to the public reference code"). Here each call writes to plain dicts; :attr:`data`
    builds the same tables (object column named after the metric, index named ``"epoch"`` or
    ``"step"`` after the metric's first call, a time point logged again overwriting its value in
    place) when it is read.
    """

    def __init__(self):
        self._rows: dict[str, tuple[str, dict]] = {}
        self._tables: dict[str, pd.DataFrame] | None = None

    def log_hparams(self, params) -> None:
        """Hyper-parameters are not recorded (as scvi-tools)."""

    def save(self) -> None:
        """Nothing to save (as scvi-tools)."""

    @property
    def data(self) -> dict[str, pd.DataFrame]:
        """``{metric: DataFrame}`` as scvi-tools' ``SimpleExperiment.data``."""
        if self._tables is None:
            self._tables = {}
            for metric, (name, rows) in self._rows.items():
                index = pd.Index(list(rows), name=name)
                values = pd.Series(list(rows.values()), index=index, dtype=object)
                self._tables[metric] = values.to_frame(metric)
        return self._tables

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record ``metrics`` at their ``"step"`` or ``"epoch"`` entry (else at ``step``)."""
        metrics = dict(metrics)
        if "step" in metrics:
            time_point, name = metrics.pop("step"), "step"
        elif "epoch" in metrics:
            time_point, name = metrics.pop("epoch"), "epoch"
        else:
            time_point, name = step, "step"
        for metric, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self._rows.setdefault(metric, (name, {}))[1][time_point] = value
        self._tables = None


class HistoryLogger(SimpleLogger):
    """scvi-tools' default ``SimpleLogger`` (``scvi.train._logger``) with a cheaper per-epoch record.

    The history (``model.history``) is the same dictionary of tables; only its bookkeeping
    during training is lighter (see :class:`_ListExperiment`). Same parameters as
    ``SimpleLogger`` (``scvi.train._logger``).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _ListExperiment:
        """The list-backed experiment (created on first use)."""
        if self._experiment is None:
            self._experiment = _ListExperiment()
        return self._experiment
