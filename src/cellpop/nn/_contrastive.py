"""X-Sample contrastive loss (Sobal et al. 2024) and the head-diversity penalty of SampleCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def xsample_contrastive_loss(
    z: torch.Tensor,
    prior: torch.Tensor | None = None,
    temperature: float = 0.1,
    graph_temperature: float = 0.2,
) -> torch.Tensor:
    """X-Sample contrastive loss over two views of ``B`` samples (SampleCLR Algorithm 1).

    Parameters
    ----------
    z
        ``(2B, d)`` view embeddings, ordered ``[view 1 of samples 0..B-1, view 2 of samples
        0..B-1]``.
    prior
        Optional ``(B, B)`` prior sample-similarity matrix (e.g. ``exp(-D / 5)`` of GloScope
        distances) between the samples of the batch. ``None`` gives InfoNCE, where the other view
        of the same sample is the only positive.
    temperature
        Temperature ``tau`` of the predicted similarities (paper App. A.4: 0.1).
    graph_temperature
        Temperature of the prior's row-softmax (paper App. A.4: 0.2 tiny, 0.1 large).

    Returns
    -------
    Scalar tensor: mean over the ``2B`` views of the cross-entropy between the target
    distribution and ``softmax(cos(z_i, z_j) / tau)`` over the other ``2B - 1`` views.

    Raises
    ------
    ValueError
        If ``z`` has an odd number of rows, fewer than two samples, or ``prior`` has the wrong
        shape.
    """
    n2 = z.shape[0]
    if n2 % 2 or n2 < 4:
        raise ValueError(f"z must hold two views of at least 2 samples, got {n2} rows")
    b = n2 // 2
    zn = F.normalize(z.float(), dim=-1)
    eye = torch.eye(n2, dtype=torch.bool, device=z.device)
    logits = (zn @ zn.T / temperature).masked_fill(eye, float("-inf"))
    log_p = torch.log_softmax(logits, dim=1).masked_fill(eye, 0.0)
    sample_of_view = torch.arange(n2, device=z.device) % b
    if prior is None:
        target = (sample_of_view[:, None] == sample_of_view[None, :]) & ~eye
        target = target.float()
    else:
        if prior.shape != (b, b):
            raise ValueError(f"prior must have shape ({b}, {b}), got {tuple(prior.shape)}")
        s = prior.float()[sample_of_view][:, sample_of_view] / graph_temperature
        target = torch.softmax(s.masked_fill(eye, float("-inf")), dim=1)
    return -(target * log_p).sum(dim=1).mean()


def head_diversity_penalty(weights: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute off-diagonal cosine similarity between importance heads.

    Parameters
    ----------
    weights
        ``(B, n_cells, H)`` per-cell importance weights of ``H`` heads.
    mask
        Optional ``(B, n_cells)`` boolean mask of real (non-padding) cells.

    Returns
    -------
    Scalar tensor in ``[0, 1]``; 0 when ``H == 1``.
    """
    h = weights.shape[-1]
    if h < 2:
        return weights.new_zeros(())
    if mask is not None:
        weights = weights * mask[..., None]
    wn = F.normalize(weights, dim=1)  # over cells
    cos = torch.einsum("bnh,bnk->bhk", wn, wn)
    off = ~torch.eye(h, dtype=torch.bool, device=weights.device)
    return cos[:, off].abs().mean()
