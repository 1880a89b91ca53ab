"""Shared neural-network building blocks and losses."""

from ._contrastive import head_diversity_penalty, xsample_contrastive_loss
from ._distributed import global_batch
from ._jepa import (
    compact_sets,
    ema_momentum,
    ema_update_,
    jepa_l1_loss,
    masked_mean,
    masked_vicreg_variance,
    pointer_tokens_pca,
)
from ._monitor import embedding_std
from ._pooling import CellImportancePooling
from ._poppy import multi_positive_contrastive_loss
from ._residual_mlp import ResidualMLP
from ._set_transformer import SetAttention, SetTransformer, SetTransformerBlock
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
    "SetAttention",
    "SetTransformer",
    "SetTransformerBlock",
    "compact_sets",
    "cosine_scores",
    "ema_momentum",
    "ema_update_",
    "embedding_std",
    "epps_pulley",
    "global_batch",
    "grouped_mean",
    "head_diversity_penalty",
    "jepa_l1_loss",
    "masked_mean",
    "masked_vicreg_variance",
    "multi_positive_contrastive_loss",
    "pointer_tokens_pca",
    "propagation_loss",
    "random_directions",
    "sigreg",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
    "vicreg_variance",
    "xsample_contrastive_loss",
]
