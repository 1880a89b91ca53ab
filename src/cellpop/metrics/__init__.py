"""Metrics: sample-level (SPARE, probe), cell-level (annotation, scib-metrics, scGraph), metacells."""

from ._annotation import annotation_f1, f1_scores
from ._coverage import KANG_MARKERS, metacell_denoising_f1, rare_population_coverage
from ._cross_modal import cross_modal_recall, cross_modal_scores, distance_correlation
from ._integration import integration_scores
from ._population import (
    composition_probe,
    dataset_silhouette,
    leiden_ari,
    perturbation_cv,
    silhouette_auc,
    svm_scores,
)
from ._probe import loo_probe
from ._scgraph import centroid_distances, scgraph, scgraph_reference
from ._spare import (
    as_distance,
    batch_mixing,
    information_retention,
    replicate_robustness,
    spare_scores,
    trajectory_conservation,
)

__all__ = [
    "composition_probe",
    "dataset_silhouette",
    "leiden_ari",
    "perturbation_cv",
    "silhouette_auc",
    "svm_scores",
    "KANG_MARKERS",
    "annotation_f1",
    "as_distance",
    "batch_mixing",
    "centroid_distances",
    "cross_modal_recall",
    "cross_modal_scores",
    "distance_correlation",
    "f1_scores",
    "information_retention",
    "integration_scores",
    "loo_probe",
    "metacell_denoising_f1",
    "rare_population_coverage",
    "replicate_robustness",
    "scgraph",
    "scgraph_reference",
    "spare_scores",
    "trajectory_conservation",
]
