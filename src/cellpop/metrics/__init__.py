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
from ._annotation import annotation_f1, f1_scores  # noqa: E402,F401
from ._integration import integration_scores  # noqa: E402,F401
from ._coverage import metacell_denoising_f1, rare_population_coverage  # noqa: E402,F401
from ._scgraph import scgraph, scgraph_reference  # noqa: E402,F401
