"""The one training plan and the callbacks every cellpop model trains with."""

from ._callbacks import EMATeacher, ModeProbe, ema_momentum
from ._plan import TrainingPlan, warmup_cosine

__all__ = ["EMATeacher", "ModeProbe", "TrainingPlan", "ema_momentum", "warmup_cosine"]
