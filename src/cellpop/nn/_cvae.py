"""scPoli-style conditional VAE blocks (Lotfollahi et al. 2023, as used by scProto §3.4).

* condition (study/batch) embeddings of dimension 10 with ``max_norm=1``,
* encoder: ``[log1p(counts), condition embedding] -> hidden -> (mean, variance)``,
* decoder: ``[z, condition embedding] -> hidden -> softmax proportions`` (times library size),
* one hidden layer of ``ceil(sqrt(n_genes))`` units, LayerNorm without affine, ReLU, dropout 0.05,
* negative-binomial likelihood with a per-gene-per-condition inverse dispersion.

The NB distribution itself is scvi-tools' :class:`scvi.distributions.NegativeBinomial`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from scvi.distributions import NegativeBinomial
from torch import nn

__all__ = [
    "ConditionalDecoder",
    "ConditionalEncoder",
    "ConditionEmbedding",
    "default_hidden_size",
    "nb_reconstruction_loss",
]


def default_hidden_size(n_genes: int) -> int:
    """scPoli's hidden width: ``ceil(sqrt(n_genes))``."""
    return int(math.ceil(math.sqrt(n_genes)))


class ConditionEmbedding(nn.Embedding):
    """Learned embedding of each condition (study/batch), shape ``(n_conditions, dim)``.

    Rows are renormalised to norm <= ``max_norm`` (scPoli: 1) when looked up. A condition code
    ``>= n_conditions`` (a batch unseen in training, as query data bring) gets the **mean
    condition embedding**, the neutral condition also used to decode metacells.
    """

    def __init__(self, n_conditions: int, dim: int = 10, max_norm: float = 1.0):
        super().__init__(n_conditions, dim, max_norm=max_norm)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(*idx.shape, dim)``; unseen codes map to :meth:`mean_embedding`."""
        idx = idx.long()
        unseen = idx >= self.num_embeddings
        out = super().forward(idx.clamp(max=self.num_embeddings - 1))
        return torch.where(unseen.unsqueeze(-1), self.mean_embedding(), out)

    def mean_embedding(self) -> torch.Tensor:
        """Average of all condition embeddings (after the max-norm projection), shape ``(dim,)``."""
        idx = torch.arange(self.num_embeddings, device=self.weight.device)
        return super().forward(idx).mean(0)


def _hidden_block(n_in: int, n_hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, n_hidden),
        nn.LayerNorm(n_hidden, elementwise_affine=False),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class ConditionalEncoder(nn.Module):
    """Gaussian encoder ``q(z | x, c)``.

    Parameters
    ----------
    n_input
        Number of genes.
    n_latent
        Latent dimension (scProto §4.1: 8).
    n_cond
        Condition-embedding dimension (scPoli: 10).
    n_hidden
        Hidden units (default ``ceil(sqrt(n_input))``).
    dropout
        Dropout rate (scPoli: 0.05).
    """

    def __init__(
        self,
        n_input: int,
        n_latent: int,
        n_cond: int,
        n_hidden: int | None = None,
        dropout: float = 0.05,
    ):
        super().__init__()
        n_hidden = n_hidden or default_hidden_size(n_input)
        self.hidden = _hidden_block(n_input + n_cond, n_hidden, dropout)
        self.mean = nn.Linear(n_hidden, n_latent)
        self.log_var = nn.Linear(n_hidden, n_latent)

    def forward(self, x_log: torch.Tensor, cond: torch.Tensor):
        """Encode.

        Parameters
        ----------
        x_log
            ``log1p`` counts, shape ``(B, n_input)``.
        cond
            Condition embeddings, shape ``(B, n_cond)``.

        Returns
        -------
        ``(mean, var)``, each ``(B, n_latent)``; ``var = exp(log_var) + 1e-4``.
        """
        h = self.hidden(torch.cat([x_log, cond], dim=-1))
        return self.mean(h), torch.exp(self.log_var(h)) + 1e-4


class ConditionalDecoder(nn.Module):
    """Decoder ``p(x | z, c)`` giving per-gene proportions (softmax over genes).

    Parameters
    ----------
    n_latent
        Latent dimension.
    n_output
        Number of genes.
    n_cond
        Condition-embedding dimension, injected into the first layer.
    n_hidden
        Hidden units (default ``ceil(sqrt(n_output))``).
    dropout
        Dropout rate.
    """

    def __init__(
        self,
        n_latent: int,
        n_output: int,
        n_cond: int,
        n_hidden: int | None = None,
        dropout: float = 0.05,
    ):
        super().__init__()
        n_hidden = n_hidden or default_hidden_size(n_output)
        self.hidden = _hidden_block(n_latent + n_cond, n_hidden, dropout)
        self.out = nn.Linear(n_hidden, n_output)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Return gene proportions, shape ``(B, n_output)``, each row sums to 1."""
        return F.softmax(self.out(self.hidden(torch.cat([z, cond], dim=-1))), dim=-1)


def nb_reconstruction_loss(
    x: torch.Tensor, proportions: torch.Tensor, library: torch.Tensor, theta: torch.Tensor
) -> torch.Tensor:
    """Negative NB log-likelihood per cell, summed over genes.

    Parameters
    ----------
    x
        Counts, shape ``(B, G)``.
    proportions
        Decoder output, shape ``(B, G)`` (rows sum to 1).
    library
        Library size per cell (total counts), shape ``(B, 1)``.
    theta
        Inverse dispersion, shape ``(B, G)`` or ``(G,)``.

    Returns
    -------
    Tensor ``(B,)`` in nats.
    """
    mu = proportions * library
    return -NegativeBinomial(mu=mu, theta=theta).log_prob(x).sum(-1)
