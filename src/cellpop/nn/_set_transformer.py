"""Pre-LN Transformer encoder over sets (no positional encoding), with key-padding masks.

A set of ``n`` elements (cells) of width ``d`` is a tensor ``(B, n, d)`` plus a boolean mask
``(B, n)``, True for real elements and False for padding (ragged sets). Self-attention uses
:func:`torch.nn.functional.scaled_dot_product_attention` (PyTorch's fused kernel) with the mask
broadcast as ``(B, 1, 1, n)``, so padded elements are never attended to; without a positional
encoding every block is permutation-equivariant, and real tokens do not depend on how much
padding a set carries.

The block is the pre-LN layout of ViT / I-JEPA (Dosovitskiy et al. 2021; Assran et al. 2023):
``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` with a GELU MLP of width ``mlp_ratio * d`` and a
final LayerNorm after the stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SetAttention", "SetTransformer", "SetTransformerBlock", "safe_key_mask"]


def safe_key_mask(mask: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor | None:
    """Attention mask ``(B, 1, 1, n)`` from a key-padding mask ``(B, n)``.

    Rows with no real element are made all-True, so the softmax over keys stays finite (their
    outputs are meaningless and are zeroed by :class:`SetTransformer`).

    Raises
    ------
    ValueError
        If ``mask`` is not boolean or its shape is not ``shape``.
    """
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor, got dtype {mask.dtype}.")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(shape)}.")
    empty = ~mask.any(dim=1, keepdim=True)
    return (mask | empty)[:, None, None, :]


class SetAttention(nn.Module):
    """Multi-head self-attention over a set with a key-padding mask.

    Parameters
    ----------
    dim
        Token width ``d``; must be divisible by ``n_heads``.
    n_heads
        Number of attention heads.
    dropout
        Attention-probability dropout (training only).

    Raises
    ------
    ValueError
        If ``dim`` is not divisible by ``n_heads``.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % n_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}.")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(B, n, d)`` -> ``(B, n, d)``; ``attn_mask`` from :func:`safe_key_mask`."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, h, n, d_head)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class SetTransformerBlock(nn.Module):
    """One pre-LN block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))`` (GELU, ``mlp_ratio * d``).

    Parameters
    ----------
    dim, n_heads
        Token width and attention heads.
    mlp_ratio
        Hidden width of the MLP as a multiple of ``dim`` (ViT / I-JEPA: 4).
    dropout
        Dropout on attention probabilities and on both residual branches.
    """

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SetAttention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(B, n, d)`` -> ``(B, n, d)``."""
        x = x + self.drop(self.attn(self.norm1(x), attn_mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class SetTransformer(nn.Module):
    """Stack of pre-LN Transformer blocks over sets, then a final LayerNorm.

    Parameters
    ----------
    dim
        Token width ``d``.
    n_layers
        Number of blocks (SC-JEPA §3: 8 in the encoders, 4 in the predictor).
    n_heads
        Attention heads per block.
    mlp_ratio
        MLP width multiple (default 4, ViT / I-JEPA).
    dropout
        Dropout (default 0, as I-JEPA).

    Notes
    -----
    ``forward(x, mask)`` takes ``x`` ``(B, n, d)`` and ``mask`` ``(B, n)`` bool (True = real
    element; ``None`` = all real) and returns ``(B, n, d)`` tokens with padded positions set to
    0. Padded inputs are zeroed first, so NaN/inf in padding cannot leak into real tokens; a set
    with no real element returns zeros without NaN.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}.")
        self.blocks = nn.ModuleList(
            [SetTransformerBlock(dim, n_heads, mlp_ratio, dropout) for _ in range(n_layers)]
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextual tokens ``(B, n, d)`` of sets ``x`` ``(B, n, d)`` with ``mask`` ``(B, n)``."""
        if x.ndim != 3:
            raise ValueError(f"x must be (B, n, d), got shape {tuple(x.shape)}.")
        attn_mask = safe_key_mask(mask, x.shape[:2])
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0.0)
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.norm(x)
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0.0)
        return x
