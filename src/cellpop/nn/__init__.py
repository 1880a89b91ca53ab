"""Shared neural-network building blocks and losses."""

from ._contrastive import head_diversity_penalty, xsample_contrastive_loss
from ._monitor import embedding_std
from ._pooling import CellImportancePooling
from ._residual_mlp import ResidualMLP
from ._sigreg import SIGReg, epps_pulley, random_directions, sigreg, vicreg_variance
from ._swav import (
    cosine_scores,
    grouped_mean,
    propagation_loss,
    sinkhorn_knopp,
    swapped_prediction_loss,
)

__all__ = [
    "CellImportancePooling",
    "ResidualMLP",
    "SIGReg",
    "cosine_scores",
    "embedding_std",
    "epps_pulley",
    "grouped_mean",
    "head_diversity_penalty",
    "propagation_loss",
    "random_directions",
    "sigreg",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
    "vicreg_variance",
    "xsample_contrastive_loss",
]
