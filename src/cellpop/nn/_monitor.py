"""Collapse monitor for self-supervised embeddings."""

from __future__ import annotations

import torch

__all__ = ["embedding_std"]


def embedding_std(z: torch.Tensor, reduction: str = "median") -> torch.Tensor:
    """Spread of an embedding across cells: per-dimension std, reduced over dimensions.

    A collapsed embedding (every cell mapped to nearly the same point) has every per-dimension
    std near 0, whatever its mean; a standard-normal one (SIGReg's target) has std 1.

    Parameters
    ----------
    z
        Embeddings, shape (N, K), or (S, N, K) for S independent sets (e.g. the V + 1 views of
        scJEPA): the std is taken across the N cells of each set.
    reduction
        ``"median"`` (default, robust to a few dead or exploding dimensions; the mean of the two
        middle values for even K) or ``"mean"`` over the K dimensions. With S sets, the S reduced values are then averaged.

    Returns
    -------
    torch.Tensor
        Scalar, in the units of ``z``. The std is the population one (divide by N), so a single
        cell gives 0 rather than NaN. Computed without gradient.

    Raises
    ------
    ValueError
        If ``z`` is not 2-D or 3-D, has no cell or no dimension, or ``reduction`` is unknown.
    """
    if reduction not in ("median", "mean"):
        raise ValueError(f"reduction must be 'median' or 'mean', got {reduction!r}.")
    if z.dim() not in (2, 3) or z.shape[-2] == 0 or z.shape[-1] == 0:
        raise ValueError(
            f"z must have shape (N, K) or (S, N, K) with N, K >= 1, got {tuple(z.shape)}."
        )
    with torch.no_grad():
        std = z.detach().float().std(dim=-2, correction=0)  # (..., K)
        per_set = std.quantile(0.5, dim=-1) if reduction == "median" else std.mean(dim=-1)
        return per_set.mean()
