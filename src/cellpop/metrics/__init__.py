"""Sample-level metrics: SPARE (Shitov et al. 2025) and a leave-one-sample-out probe."""

from ._probe import loo_probe
from ._spare import (
    as_distance,
    batch_mixing,
    information_retention,
    replicate_robustness,
    spare_scores,
    trajectory_conservation,
)

__all__ = [
    "as_distance",
    "batch_mixing",
    "information_retention",
    "loo_probe",
    "replicate_robustness",
    "spare_scores",
    "trajectory_conservation",
]
