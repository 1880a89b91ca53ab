"""SwAV building blocks: Sinkhorn-Knopp assignments, swapped-prediction loss, propagation loss.

All functions work on minibatch tensors and are vectorised over the cells; a ``groups`` vector
(one integer per cell, e.g. the study/batch of each cell) makes every function act separately
within each group and average the per-group values (scProto eq. 3, the "batch SwAV" loss).

References
----------
Caron et al. 2020, "Unsupervised learning of visual features by contrasting cluster
assignments" (SwAV); Cuturi 2013 (Sinkhorn distances); Hashemi G. et al., "Interpretable
self-supervised prototype learning for single-cell transcriptomics" (scProto, eqs. 1-4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._distributed import all_max, all_sum, gather_cat, global_unique, world_size

__all__ = [
    "cosine_scores",
    "grouped_mean",
    "propagation_loss",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
    "target_agreement",
]


def _group_ids(groups: torch.Tensor | None, n: int, device) -> tuple[torch.Tensor, int]:
    """Map arbitrary group labels to ``0..G-1`` (only groups present in the minibatch; under
    DDP in the global minibatch, with the same codes on every rank)."""
    if groups is None:
        return torch.zeros(n, dtype=torch.long, device=device), 1
    groups = groups.reshape(-1)
    if groups.shape[0] != n:
        raise ValueError(f"groups has {groups.shape[0]} entries but there are {n} cells.")
    if world_size() > 1:
        uniq, inv = global_unique(groups)
        return inv, int(uniq.shape[0])
    uniq, inv = torch.unique(groups, return_inverse=True)
    return inv, int(uniq.shape[0])


def cosine_scores(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between cells and prototypes.

    Parameters
    ----------
    z
        Cell embeddings, shape ``(n_cells, d)``.
    prototypes
        Prototype vectors, shape ``(K, d)`` (need not be normalised).

    Returns
    -------
    Tensor of shape ``(n_cells, K)`` with values in ``[-1, 1]``.
    """
    return F.normalize(z, dim=-1) @ F.normalize(prototypes, dim=-1).T


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.02,
    n_iters: int = 3,
    groups: torch.Tensor | None = None,
    hard: bool = False,
    min_group_size: int = 0,
) -> torch.Tensor:
    """Balanced soft assignments of cells to prototypes (SwAV's Sinkhorn-Knopp).

    Within each group of ``B_g`` cells: ``Q = exp(scores / epsilon)^T`` (``K x B_g``), divided by
    its total, then ``n_iters`` times: rows (prototypes) are scaled to sum to ``1/K`` and columns
    (cells) to sum to ``1/B_g``; finally ``Q`` is multiplied by ``B_g``. Computed in float32
    after subtracting the group's maximum score (``epsilon = 0.02`` overflows half precision).
    No gradient flows through the result.

    Parameters
    ----------
    scores
        Cell-prototype similarities, shape ``(B, K)`` (cosine scores in scProto).
    epsilon
        Entropic regularisation (scProto §4.1: 0.02; SwAV: 0.05).
    n_iters
        Number of Sinkhorn iterations (SwAV default 3).
    groups
        Optional integer group of every cell, shape ``(B,)``; Sinkhorn runs separately in each
        group (scProto eq. 3). ``None``: one group.
    hard
        Return one-hot rows at the arg-max of the balanced assignment (scProto §4.1 "hard
        clustering option").
    min_group_size
        Groups with fewer cells than this take their rows from one Sinkhorn over *all* ``B``
        cells (the global fallback) instead of their own; ``0`` (default): every group is
        balanced on its own. A balanced assignment of ``B_g`` cells gives each prototype
        ``B_g / K`` cells, less than one when ``B_g < K``: the constraint is then met only by
        spreading every cell over many prototypes and the arg-max stops following the scores
        (scProto's model uses ``min_group_size = K``, see :class:`cellpop.model.ScProto`).

    Under DDP (inside :func:`cellpop.nn.global_batch`) groups, their sizes and the prototype
    marginals are those of the global minibatch (sums reduced across ranks, as SwAV's
    distributed Sinkhorn); every rank returns the rows of its own cells.

    Returns
    -------
    Tensor ``(B, K)``: every row (cell) sums to 1 exactly; within a group of ``B_g`` cells every
    column (prototype) sums to ``B_g / K`` once the iterations have converged. With the
    fallback, the columns of the global Sinkhorn sum to ``B / K`` over all ``B`` cells, of
    which only the rows of the small groups are used.
    """
    q = _sinkhorn(scores, epsilon, n_iters, groups)
    if min_group_size > 0 and groups is not None:
        inv, n_groups = _group_ids(groups, scores.shape[0], scores.device)
        small = all_sum(torch.bincount(inv, minlength=n_groups)) < min_group_size  # (G,)
        if bool(small.any()):  # the same on every rank: global counts
            q = torch.where(small[inv, None], _sinkhorn(scores, epsilon, n_iters, None), q)
    if hard:
        q = F.one_hot(q.argmax(dim=1), scores.shape[1]).float()
    return q


def _sinkhorn(scores, epsilon, n_iters, groups) -> torch.Tensor:
    """Soft grouped Sinkhorn-Knopp (see :func:`sinkhorn_knopp`)."""
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be 2-D (cells x prototypes), got shape {tuple(scores.shape)}"
        )
    n, k = scores.shape
    s = scores.detach().float() / epsilon
    inv, n_groups = _group_ids(groups, n, s.device)
    # subtract each group's maximum (float32 safety for small epsilon)
    row_max = s.amax(dim=1)
    g_max = torch.full((n_groups,), float("-inf"), device=s.device).scatter_reduce(
        0, inv, row_max, reduce="amax"
    )
    g_max = all_max(g_max)  # sums and maxima are global under DDP (no-ops otherwise)
    q = torch.exp(s - g_max[inv, None])  # (B, K); cell i belongs to group inv[i]
    onehot = F.one_hot(inv, n_groups).to(q.dtype)  # (B, G)
    n_g = all_sum(onehot.sum(0))  # cells per group
    tiny = torch.finfo(torch.float32).tiny
    q = q / all_sum((onehot.T @ q).sum(1)).clamp_min(tiny)[inv, None]  # each group's Q sums to 1
    for _ in range(n_iters):
        proto_sums = all_sum(onehot.T @ q)  # (G, K): prototype (row) sums within each group
        q = q / proto_sums.clamp_min(tiny)[inv] / k
        q = q / q.sum(dim=1, keepdim=True).clamp_min(tiny) / n_g[inv, None]
    return q * n_g[inv, None]


def target_agreement(scores: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Fraction of cells whose Sinkhorn target is their nearest prototype.

    Parameters
    ----------
    scores
        Cell-prototype similarities, shape ``(B, K)``.
    q
        Sinkhorn targets (soft or one-hot), shape ``(B, K)``.

    Returns
    -------
    0-d float tensor in ``[0, 1]``: mean of ``argmax_k q == argmax_k scores`` (no gradient).
    1 means the balancing leaves every hard target on the cell's own closest prototype.
    """
    return (q.argmax(dim=1) == scores.detach().argmax(dim=1)).float().mean()


def grouped_mean(
    values: torch.Tensor, groups: torch.Tensor | None = None, min_size: int = 1
) -> torch.Tensor:
    """Mean of per-cell values within each group, then mean over groups (scProto eq. 3).

    Parameters
    ----------
    values
        Per-cell values, shape ``(B,)``.
    groups
        Integer group of every cell, shape ``(B,)``; ``None``: plain mean.
    min_size
        Groups with fewer cells are left out of the average.

    Returns
    -------
    0-d tensor; 0 (with gradient graph kept) when no group has ``min_size`` cells. Under DDP
    (inside :func:`cellpop.nn.global_batch`) groups are those of the global minibatch.
    """
    inv, n_groups = _group_ids(groups, values.shape[0], values.device)
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, inv, values)
    sums = all_sum(sums)
    counts = all_sum(torch.bincount(inv, minlength=n_groups).to(values.dtype))
    keep = counts >= min_size
    if not bool(keep.any()):
        return values.sum() * 0.0
    return (sums[keep] / counts[keep]).mean()


def swapped_prediction_loss(
    scores_t: torch.Tensor,
    scores_s: torch.Tensor,
    q_t: torch.Tensor,
    q_s: torch.Tensor,
    temperature: float = 0.1,
    groups: torch.Tensor | None = None,
    min_group_size: int = 2,
) -> torch.Tensor:
    """SwAV swapped prediction (scProto eqs. 1-3).

    Per cell: ``l = -sum_k q_s[k] log p_t[k] - sum_k q_t[k] log p_s[k]`` with
    ``p = softmax(scores / temperature)`` over the ``K`` prototypes (both directions summed,
    as in eq. 1); averaged within each group, then over groups (eq. 3).

    Parameters
    ----------
    scores_t, scores_s
        Cosine scores of the two views (a cell and its kNN partner), shape ``(B, K)``.
    q_t, q_s
        Sinkhorn targets of the two views, shape ``(B, K)`` (no gradient).
    temperature
        Softmax temperature ``tau`` (SwAV: 0.1).
    groups
        Integer group (study/batch) per pair, shape ``(B,)``; ``None``: one group.
    min_group_size
        Groups with fewer pairs are left out (a Sinkhorn over one cell is uninformative).

    Returns
    -------
    0-d tensor (nats).
    """
    log_p_t = F.log_softmax(scores_t / temperature, dim=1)
    log_p_s = F.log_softmax(scores_s / temperature, dim=1)
    per_cell = -(q_s * log_p_t).sum(1) - (q_t * log_p_s).sum(1)
    return grouped_mean(per_cell, groups, min_size=min_group_size)


def propagation_loss(
    z: torch.Tensor, prototypes: torch.Tensor, normalize: bool = True
) -> torch.Tensor:
    """Min-max "propagation" loss ``max_i min_j d(z_i, p_j)`` (scProto eq. 4).

    ``d`` is the Euclidean distance; with ``normalize=True`` (default, as scProto compares cells
    and prototypes by cosine) both are first projected on the unit sphere, so
    ``d = sqrt(2 - 2 cos)``.

    Parameters
    ----------
    z
        Cell embeddings, shape ``(B, d)``.
    prototypes
        Prototypes, shape ``(K, d)``.
    normalize
        L2-normalise ``z`` and ``prototypes`` first.

    Returns
    -------
    0-d tensor: the largest distance of any cell to its closest prototype (of all ranks' cells
    under DDP, inside :func:`cellpop.nn.global_batch`).
    """
    if normalize:
        z = F.normalize(z, dim=-1)
        prototypes = F.normalize(prototypes, dim=-1)
    sq = (z * z).sum(1, keepdim=True) + (prototypes * prototypes).sum(1) - 2.0 * z @ prototypes.T
    d_min = sq.min(dim=1).values.clamp_min(1e-12).sqrt()  # finite gradient at distance 0
    return gather_cat(d_min).max()
