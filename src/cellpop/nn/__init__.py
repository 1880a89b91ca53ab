"""Shared neural-network building blocks and losses."""

from ._contrastive import head_diversity_penalty, xsample_contrastive_loss
from ._pooling import CellImportancePooling
from ._residual_mlp import ResidualMLP
from ._sigreg import SIGReg, epps_pulley, random_directions, sigreg, vicreg_variance

__all__ = [
    "CellImportancePooling",
    "ResidualMLP",
    "SIGReg",
    "epps_pulley",
    "random_directions",
    "sigreg",
    "vicreg_variance",
    "head_diversity_penalty",
    "xsample_contrastive_loss",
]
from ._swav import propagation_loss, sinkhorn_knopp, swapped_prediction_loss  # noqa: E402,F401
