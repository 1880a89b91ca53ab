"""Residual multi-layer perceptron, the building block of SampleCLR's heads and encoder."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Norm = Literal["batch", "layer", None]


def _make_norm(kind: Norm, n: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(n)
    if kind == "layer":
        return nn.LayerNorm(n)
    if kind is None:
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'layer' or None, got {kind!r}")


class _Block(nn.Module):
    def __init__(self, n: int, norm: Norm, dropout: float):
        super().__init__()
        self.linear = nn.Linear(n, n)
        self.norm = _make_norm(norm, n)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.linear(h)
        if isinstance(self.norm, nn.BatchNorm1d) and out.dim() > 2:
            shape = out.shape
            out = self.norm(out.reshape(-1, shape[-1])).reshape(shape)
        else:
            out = self.norm(out)
        return h + self.dropout(self.act(out))


class ResidualMLP(nn.Module):
    """Input layer, ``n_layers`` residual hidden blocks of fixed width, output layer.

    Each hidden block is ``h + ReLU(norm(Linear(h)))`` (SampleCLR paper, App. A.4: "input and
    output layers ... a series of hidden fully-connected layers of fixed dimensionality with
    residual connections; each layer followed by batch or layer normalisation and ReLU").

    Parameters
    ----------
    n_input
        Input features (last dimension of the input).
    n_output
        Output features.
    n_hidden
        Width of the hidden blocks.
    n_layers
        Number of residual hidden blocks (``0`` gives input layer + output layer).
    norm
        ``"batch"`` (BatchNorm1d over all leading dimensions), ``"layer"`` or ``None``.
    dropout
        Dropout after each hidden activation.

    Notes
    -----
    Accepts inputs of shape ``(..., n_input)`` and returns ``(..., n_output)``.
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        n_hidden: int = 32,
        n_layers: int = 2,
        norm: Norm = "layer",
        dropout: float = 0.0,
    ):
        super().__init__()
        if n_input < 1 or n_output < 1 or n_hidden < 1 or n_layers < 0:
            raise ValueError("n_input, n_output, n_hidden must be >= 1 and n_layers >= 0")
        self.input = nn.Linear(n_input, n_hidden)
        self.blocks = nn.ModuleList(_Block(n_hidden, norm, dropout) for _ in range(n_layers))
        self.act = nn.ReLU()
        self.output = nn.Linear(n_hidden, n_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` of shape ``(..., n_input)`` to ``(..., n_output)``."""
        h = self.act(self.input(x))
        for block in self.blocks:
            h = block(h)
        return self.output(h)
