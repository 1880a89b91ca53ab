"""SampleCLR torch module: cell-importance pooling, residual encoder, contrastive + supervised losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from cellpop.nn import (
    CellImportancePooling,
    ResidualMLP,
    embedding_std,
    head_diversity_penalty,
    xsample_contrastive_loss,
)
from cellpop.nn._distributed import gather_cat


class SampleCLRModule(BaseModuleClass):
    """Sets of cells -> sample vectors, trained with the X-Sample contrastive loss.

    Parameters
    ----------
    n_input
        Features per cell (e.g. 50 PCs).
    n_heads
        Cell-importance heads ``H``.
    aggregator_hidden, aggregator_layers
        Width and residual blocks of each importance head.
    n_hidden, n_layers
        Width and residual blocks of the encoder ``f``.
    n_output
        Dimension of the sample representation ``z``.
    classification
        ``{key: n_classes}`` of classification heads (cross-entropy, paper eq. 4).
    ordinal
        ``{key: n_classes}`` of ordinal heads (``C - 1`` sigmoid logits, BCE on ``[y > k]``, eq. 5).
    regression
        Keys of regression heads (MSE on standardised targets, eq. 6).
    head_hidden, head_layers
        Width and residual blocks of the supervised heads.
    temperature, graph_temperature
        Contrastive temperatures (App. A.4: 0.1 and 0.2 / 0.1).
    diversity_weight
        Weight of the head-diversity penalty (0 disables it).
    feature_norm, aggregator_norm
        Normalisation of encoder and heads (App. A.4: BatchNorm, LayerNorm).
    """

    def __init__(
        self,
        n_input: int,
        n_heads: int = 1,
        aggregator_hidden: int = 32,
        aggregator_layers: int = 2,
        n_hidden: int = 32,
        n_layers: int = 4,
        n_output: int = 32,
        classification: dict[str, int] | None = None,
        ordinal: dict[str, int] | None = None,
        regression: list[str] | None = None,
        head_hidden: int = 16,
        head_layers: int = 2,
        temperature: float = 0.1,
        graph_temperature: float = 0.2,
        diversity_weight: float = 0.0,
        feature_norm: str | None = "batch",
        aggregator_norm: str | None = "layer",
    ):
        super().__init__()
        self.n_input, self.n_heads, self.n_output = n_input, n_heads, n_output
        self.temperature, self.graph_temperature = temperature, graph_temperature
        self.diversity_weight = diversity_weight
        self.classification = dict(classification or {})
        self.ordinal = dict(ordinal or {})
        self.regression = list(regression or [])
        self.pool = CellImportancePooling(
            n_input, n_heads, aggregator_hidden, aggregator_layers, aggregator_norm
        )
        self.encoder = ResidualMLP(
            n_heads * n_input, n_output, n_hidden, n_layers, norm=feature_norm
        )
        heads = {}
        for key, c in self.classification.items():
            heads[f"cls_{key}"] = ResidualMLP(n_output, c, head_hidden, head_layers, norm=None)
        for key, c in self.ordinal.items():
            heads[f"ord_{key}"] = ResidualMLP(n_output, c - 1, head_hidden, head_layers, norm=None)
        for key in self.regression:
            heads[f"reg_{key}"] = ResidualMLP(n_output, 1, head_hidden, head_layers, norm=None)
        self.heads = nn.ModuleDict(heads)

    @property
    def has_supervised_heads(self) -> bool:
        """Whether any supervised head exists."""
        return len(self.heads) > 0

    @auto_move_data
    def embed(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample vectors ``(B, n_output)`` and importance weights ``(B, n, H)`` of sets ``(B, n, d)``."""
        pooled, weights = self.pool(x, mask)
        return self.encoder(pooled), weights

    @auto_move_data
    def embed_cells(self, x: torch.Tensor) -> torch.Tensor:
        """Each cell ``(N, d)`` as a one-cell set: ``f(concat_h x)`` ``(N, n_output)``."""
        return self.encoder(x.repeat(1, self.n_heads))

    def predict_heads(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs of every supervised head for sample vectors ``z`` ``(B, n_output)``."""
        return {name: head(z) for name, head in self.heads.items()}

    def _get_inference_input(self, tensors: dict) -> dict:
        return {"x": tensors["x"], "mask": tensors["mask"]}

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    @auto_move_data
    def inference(self, x: torch.Tensor, mask: torch.Tensor) -> dict:
        """Embed ``V`` views of ``B`` sets: ``x`` ``(V, B, n, d)``, ``mask`` ``(V, B, n)``."""
        v, b = x.shape[:2]
        z, weights = self.embed(x.flatten(0, 1), mask.flatten(0, 1))
        return {"z": z, "weights": weights, "mask": mask.flatten(0, 1), "n_views": v, "n_sets": b}

    def generative(self) -> dict:
        """No generative part."""
        return {}

    def supervised_losses(self, z: torch.Tensor, tensors: dict, n_views: int) -> dict:
        """Per-head losses; targets ``< 0`` (classification/ordinal) or NaN (regression) are masked."""
        out = {}
        preds = self.predict_heads(z)
        for key in self.classification:
            y = tensors[f"cls_{key}"].long().repeat(n_views)
            ok = y >= 0
            if ok.any():
                out[f"cls_{key}"] = F.cross_entropy(preds[f"cls_{key}"][ok], y[ok])
        for key, c in self.ordinal.items():
            y = tensors[f"ord_{key}"].long().repeat(n_views)
            ok = y >= 0
            if ok.any():
                thresholds = torch.arange(c - 1, device=y.device)
                target = (y[ok, None] > thresholds[None, :]).float()
                out[f"ord_{key}"] = F.binary_cross_entropy_with_logits(
                    preds[f"ord_{key}"][ok], target
                )
        for key in self.regression:
            y = tensors[f"reg_{key}"].float().repeat(n_views)
            ok = ~torch.isnan(y)
            if ok.any():
                out[f"reg_{key}"] = F.mse_loss(preds[f"reg_{key}"][ok, 0], y[ok])
        return out

    def loss(
        self,
        tensors: dict,
        inference_outputs: dict,
        generative_outputs: dict,
        prior: torch.Tensor | None = None,
        supervised_weight: float = 0.0,
    ) -> LossOutput:
        """Contrastive loss (+ ``supervised_weight`` x supervised losses, + diversity penalty).

        ``prior`` is the ``(n_samples, n_samples)`` prior similarity over all samples; the rows
        and columns of the batch's samples are used. Under DDP (inside
        :func:`cellpop.nn.global_batch`) the contrastive loss is over the samples of all ranks.
        """
        z = inference_outputs["z"]
        b = inference_outputs["n_sets"]
        # under DDP the negatives are the samples of every rank (no-ops otherwise)
        z_pairs = gather_cat(z[: 2 * b].reshape(2, b, -1), dim=1)
        batch_prior = None
        if prior is not None:
            s = gather_cat(tensors["sample"])
            batch_prior = prior[s][:, s]
        contrastive = xsample_contrastive_loss(
            z_pairs.reshape(-1, z.shape[-1]), batch_prior, self.temperature, self.graph_temperature
        )
        total = contrastive
        # collapse monitor: median over dimensions of the per-dimension std of the sample vectors
        extra = {"contrastive_loss": contrastive.detach(), "embedding_std": embedding_std(z)}
        if self.diversity_weight > 0:
            div = head_diversity_penalty(inference_outputs["weights"], inference_outputs["mask"])
            total = total + self.diversity_weight * div
            extra["diversity_penalty"] = div.detach()
        if supervised_weight > 0 and self.has_supervised_heads:
            sup = self.supervised_losses(z, tensors, inference_outputs["n_views"])
            for name, value in sup.items():
                total = total + supervised_weight * value
                extra[f"{name}_loss"] = value.detach()
        return LossOutput(loss=total, n_obs_minibatch=b, extra_metrics=extra)
