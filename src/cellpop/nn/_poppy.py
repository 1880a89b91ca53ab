"""POPPY's multi-positive cross-modal contrastive loss (paper 004, §2.2.3, eqs. 3-5)."""

from __future__ import annotations

import torch


def multi_positive_contrastive_loss(
    z_cell: torch.Tensor,
    z_bulk: torch.Tensor,
    similarity: torch.Tensor,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Soft-label cross-modal contrastive loss of POPPY (§2.2.3, eqs. 3-5).

    With ``L^x = Z^c Z^b^T / tau``, ``L^c = Z^c Z^c^T / tau`` and ``L^b = Z^b Z^b^T / tau``
    (diagonals of ``L^c`` and ``L^b`` set to ``-inf``), the per-direction logits are
    ``[L^x | L^c]`` (cell -> bulk) and ``[L^x^T | L^b]`` (bulk -> cell). The target of row ``i``
    is ``[S_i / sum_k S_ik | 0]``: the row-normalised similarity on the cross-modal block and
    zero on the intra-modal block. The loss is the mean over rows of
    ``KL(target || softmax(logits))``, averaged over the two directions (eq. 5).

    Parameters
    ----------
    z_cell, z_bulk
        ``(N, d)`` cell-set and bulk embeddings of the same ``N`` samples, row ``i`` of both
        describing sample ``i``; used as given (POPPY's encoders L2-normalise them).
    similarity
        ``(N, N)`` non-negative soft labels ``S`` (e.g. :func:`cellpop.ontology.adaptive_kernel`
        restricted to the batch); every row needs a positive sum (``S_ii = 1`` in POPPY).
    temperature
        ``tau_cl`` of eq. 3. The paper gives no value; 0.1 is our default (SampleCLR's
        temperature, the usual CLIP-style range).

    Returns
    -------
    Scalar tensor (nats).

    Raises
    ------
    ValueError
        On mismatched shapes, fewer than 2 rows, negative similarities or a row of ``S``
        summing to zero.
    """
    n = z_cell.shape[0]
    if z_bulk.shape != z_cell.shape or similarity.shape != (n, n):
        raise ValueError(
            f"z_cell {tuple(z_cell.shape)}, z_bulk {tuple(z_bulk.shape)} and similarity "
            f"{tuple(similarity.shape)} must be (N, d), (N, d) and (N, N)."
        )
    if n < 2:
        raise ValueError("the contrastive loss needs at least 2 samples per batch.")
    s = similarity.float()
    if (s < 0).any():
        raise ValueError("similarity must be non-negative.")
    rows = s.sum(1, keepdim=True)
    if (rows <= 0).any():
        raise ValueError("every row of similarity needs a positive sum (S_ii = 1 in POPPY).")
    target = torch.cat([s / rows, torch.zeros_like(s)], dim=1)  # (N, 2N)
    zc, zb = z_cell.float(), z_bulk.float()
    eye = torch.eye(n, dtype=torch.bool, device=zc.device)
    cross = zc @ zb.T / temperature
    intra_c = (zc @ zc.T / temperature).masked_fill(eye, float("-inf"))
    intra_b = (zb @ zb.T / temperature).masked_fill(eye, float("-inf"))
    entropy = torch.special.xlogy(target, target).sum(1)  # sum_j t log t
    total = 0.0
    for logits in (torch.cat([cross, intra_c], 1), torch.cat([cross.T, intra_b], 1)):
        log_p = torch.log_softmax(logits, dim=1)
        log_p = log_p.masked_fill(target == 0, 0.0)  # -inf entries carry no target mass
        total = total + (entropy - (target * log_p).sum(1)).mean()
    return total / 2
