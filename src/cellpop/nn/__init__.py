"""Shared neural-network building blocks and losses."""

from ._contrastive import head_diversity_penalty, xsample_contrastive_loss
from ._pooling import CellImportancePooling
from ._residual_mlp import ResidualMLP

__all__ = [
    "CellImportancePooling",
    "ResidualMLP",
    "head_diversity_penalty",
    "xsample_contrastive_loss",
]
