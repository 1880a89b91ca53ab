"""The one training plan and the callbacks every cellpop model trains with."""

from ._callbacks import EMATeacher, ModeProbe
from ._logger import HistoryLogger
from ._plan import TrainingPlan, warmup_cosine

__all__ = ["EMATeacher", "HistoryLogger", "ModeProbe", "TrainingPlan", "warmup_cosine"]
