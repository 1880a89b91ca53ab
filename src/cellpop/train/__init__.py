"""Training plans shared by cellpop's self-supervised models."""

from ._ssl_plan import SSLTrainingPlan, warmup_cosine

__all__ = ["SSLTrainingPlan", "warmup_cosine"]
