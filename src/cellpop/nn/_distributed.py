"""Global-batch statistics under data-parallel training (Lightning DDP), written once.

Under DDP every rank holds a shard of the global minibatch. Losses that are not a mean of
per-item terms (contrastive negatives, SIGReg's characteristic function, Sinkhorn marginals,
VICReg's variance, a maximum over cells) must see the global batch to equal the loss of one
process on that batch. The helpers here gather or sum across ranks **with gradient**
(small autograd functions over :func:`torch.distributed.all_gather` and
:func:`torch.distributed.all_reduce`; ``torch.distributed.nn.functional`` is deprecated in
torch 2.13), and are the identity otherwise.

Gradient convention: every rank computes the same global loss ``L``. The backward of an
all-gather (or all-reduce) sums, over ranks, the gradients with respect to each rank's shard,
so a rank's local gradient is ``world_size * dL/d(shard)``; DDP then averages parameter
gradients over ranks, which gives exactly the one-process gradient of ``L``.

Gathering happens only inside :func:`global_batch` (the training plan enters it for every
training and validation step of a trainer with ``world_size > 1``) and only when a
:mod:`torch.distributed` process group with more than one rank is initialised: getters and
direct calls never start a collective (which would hang if one rank called it alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

__all__ = [
    "all_max",
    "all_sum",
    "gather_cat",
    "global_batch",
    "global_unique",
    "global_variance",
    "world_size",
]

_active = 0


class _AllSum(torch.autograd.Function):
    """Sum over ranks; backward: the sum over ranks of the gradients (every rank's loss uses
    the sum, so each rank's input receives all of them)."""

    @staticmethod
    def forward(ctx, x):
        out = x.detach().clone().contiguous()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone().contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class _AllGather(torch.autograd.Function):
    """Rank-ordered concatenation of equal-shape ``x`` along dim 0; backward: the sum over
    ranks of the gradients of this rank's rows (a reduce-scatter)."""

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.n, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone().contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


@contextmanager
def global_batch(enabled: bool = True) -> Iterator[None]:
    """Let the losses inside gather across the ranks of the process group (re-entrant).

    ``enabled=False`` is a no-op context (convenient for ``with global_batch(world > 1):``).
    """
    global _active
    _active += int(enabled)
    try:
        yield
    finally:
        _active -= int(enabled)


def world_size() -> int:
    """Ranks the losses gather over: the process group's size inside :func:`global_batch`, else 1."""
    if _active and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks (same shape on every rank), differentiable; ``x`` when not gathering."""
    if world_size() == 1:
        return x
    return _AllSum.apply(x)


def all_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``x`` over ranks, without gradient; ``x`` when not gathering."""
    if world_size() == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def gather_cat(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's ``x`` along ``dim`` in rank order, differentiable.

    Shards may differ in size along ``dim`` (they are padded for the collective and trimmed
    after); the other dimensions must agree. Returns ``x`` when not gathering.
    """
    world = world_size()
    if world == 1:
        return x
    x = x.movedim(dim, 0)
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    n_max = max(sizes)
    if n_max > x.shape[0]:
        x = torch.cat([x, x.new_zeros((n_max - x.shape[0], *x.shape[1:]))])
    parts = _AllGather.apply(x).unflatten(0, (world, n_max))
    out = torch.cat([p[:n] for p, n in zip(parts, sizes)])
    return out.movedim(0, dim)


def global_unique(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(labels, return_inverse=True)`` over the labels of all ranks.

    Returns the sorted unique labels of the global batch and, for the local labels, their
    positions among them: the same codes on every rank.
    """
    labels = labels.reshape(-1)
    uniq = torch.unique(gather_cat(labels))
    return uniq, torch.searchsorted(uniq, labels)


def global_variance(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased per-column variance of the rows of all ranks, and their total count.

    Parameters
    ----------
    rows
        ``(n, K)`` local rows (``n`` may differ between ranks, 0 included).

    Returns
    -------
    var, n
        ``(K,)`` variance (two passes: global mean, then global sum of squared deviations;
        differentiable), and the 0-d global row count (no gradient). ``var`` is NaN where
        ``n < 2``; callers check ``n`` first.
    """
    n = all_sum(torch.tensor(float(rows.shape[0]), device=rows.device)).detach()
    mean = all_sum(rows.sum(0)) / n
    ss = all_sum(((rows - mean) ** 2).sum(0))
    return ss / (n - 1), n
