"""Cell-importance (attention) pooling of a set of cells into one vector per head."""

from __future__ import annotations

import torch
from torch import nn

from ._residual_mlp import Norm, ResidualMLP


class CellImportancePooling(nn.Module):
    """``H`` cell-importance heads: one network giving ``H`` logits per cell.

    Weights are a softmax over the cells of a set, per head (padding cells masked with ``-inf``,
    not multiplied by 0); the pooled vector is ``concat_h sum_c w_ch x_c`` (SampleCLR §3,
    Algorithm 1). The heads share the network's hidden layers and differ in its last layer, as
    the SampleCLR public code's ``MultiHeadAggregationNetwork`` (one ``DynamicNetwork`` with
    ``H`` outputs); with ``H = 1`` this is one residual MLP with one output.

    Parameters
    ----------
    n_input
        Features per cell.
    n_heads
        Number of importance heads ``H`` (paper App. A.4: 1 tiny, 8 large).
    n_hidden, n_layers, norm
        Width, residual hidden blocks and normalisation of the network (SampleCLR tiny preset:
        32 / 1 / LayerNorm, the public code's ``aggregator_num_layers=2``).
    score
        ``"mlp"`` (the residual MLP above, SampleCLR) or ``"linear"``: each head's logit is
        ``w_h^T x + b_h`` (Ilse et al. 2018's plain attention score, POPPY §2.2.1 eq. 2);
        ``n_hidden``, ``n_layers`` and ``norm`` are then unused.
    """

    def __init__(
        self,
        n_input: int,
        n_heads: int = 1,
        n_hidden: int = 32,
        n_layers: int = 2,
        norm: Norm = "layer",
        score: str = "mlp",
    ):
        super().__init__()
        if score not in ("mlp", "linear"):
            raise ValueError(f"score must be 'mlp' or 'linear', got {score!r}")
        self.n_heads = n_heads
        self.score = (
            nn.Linear(n_input, n_heads)
            if score == "linear"
            else ResidualMLP(n_input, n_heads, n_hidden=n_hidden, n_layers=n_layers, norm=norm)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-cell importance logits ``(..., n_cells, H)`` of cells ``x`` ``(..., n_cells, d)``."""
        return self.score(x)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool a batch of cell sets.

        Parameters
        ----------
        x
            ``(B, n_cells, d)`` cells.
        mask
            Optional ``(B, n_cells)`` boolean, ``True`` for real cells.

        Returns
        -------
        pooled
            ``(B, H * d)`` concatenated weighted sums.
        weights
            ``(B, n_cells, H)`` importance weights, each head's column summing to 1 per set.
        """
        logits = self.logits(x)
        if mask is not None:
            logits = logits.masked_fill(~mask[..., None], float("-inf"))
        weights = torch.softmax(logits.float(), dim=1).to(x.dtype)
        pooled = torch.einsum("bnh,bnd->bhd", weights, x).flatten(1)
        return pooled, weights
