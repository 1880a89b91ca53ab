"""Building blocks of joint-embedding predictive architectures over sets (SC-JEPA, I-JEPA).

- :func:`masked_vicreg_variance`: the VICReg variance hinge on the real rows of a padded batch;
- :func:`jepa_l1_loss`: L1 between predictions and layer-normalised (stop-gradient) targets;
- :func:`pointer_tokens_pca`: SC-JEPA's pointer features, PCA eigenvector masking within a set;
- :func:`ema_update_` and :func:`ema_momentum`: the EMA teacher and its momentum schedule;
- :func:`compact_sets`, :func:`masked_mean`: helpers for ragged sets.

References
----------
SC-JEPA ("Learning population-level representations with joint embedding predictive
architectures", §3); Assran et al. 2023 (I-JEPA: L1 on layer-normalised targets, EMA momentum
0.996 -> 1 linearly); Bardes et al. 2022 (VICReg); Bizeul et al. 2025 (eigenvector masking);
Grill et al. 2020 / Caron et al. 2021 (cosine EMA schedule of BYOL / DINO).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._distributed import global_variance

__all__ = [
    "compact_sets",
    "ema_momentum",
    "ema_update_",
    "jepa_l1_loss",
    "masked_mean",
    "masked_vicreg_variance",
    "pointer_tokens_pca",
]


def _check_mask(mask: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a boolean tensor, got dtype {mask.dtype}.")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(shape)}.")


def masked_vicreg_variance(
    z: torch.Tensor,
    mask: torch.Tensor | None = None,
    gamma: float = 1.0,
    eps: float = 1e-4,
    statistic: Literal["std", "var"] = "std",
) -> torch.Tensor:
    """VICReg variance hinge over the real rows of ``z``.

    ``statistic="std"`` (VICReg, Bardes et al. 2022, eq. 1):
    ``mean_j relu(gamma - sqrt(Var(z[:, j]) + eps))``; ``statistic="var"`` (the formula SC-JEPA
    §3 writes for its implementation): ``mean_j relu(gamma - Var(z[:, j]))``. The variance is the
    unbiased one over all real rows (cells of every set pooled together; under DDP, inside
    :func:`cellpop.nn.global_batch`, the real rows of every rank).

    Parameters
    ----------
    z
        Embeddings, shape ``(..., K)``.
    mask
        Boolean, shape ``z.shape[:-1]``; True rows enter the variance. ``None``: all rows.
    gamma
        Target standard deviation / variance (VICReg: 1).
    eps
        Added inside the square root (VICReg: 1e-4); unused for ``statistic="var"``.
    statistic
        ``"std"`` or ``"var"``, see above.

    Returns
    -------
    torch.Tensor
        Scalar; 0 when every dimension reaches ``gamma``, and 0 (graph kept) when fewer than two
        rows are real.

    Raises
    ------
    ValueError
        If ``statistic`` is unknown or ``mask`` is not a boolean tensor of shape
        ``z.shape[:-1]``.
    """
    if statistic not in ("std", "var"):
        raise ValueError(f"statistic must be 'std' or 'var', got {statistic!r}.")
    if mask is not None:
        _check_mask(mask, z.shape[:-1], "mask")
        rows = z[mask]
    else:
        rows = z.reshape(-1, z.shape[-1])
    var, n = global_variance(rows.float())  # fp32 under autocast; all ranks under DDP
    if n < 2:
        return z.sum() * 0.0
    spread = torch.sqrt(var + eps) if statistic == "std" else var
    return torch.relu(gamma - spread).mean()


def jepa_l1_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    normalize_target: bool = True,
) -> torch.Tensor:
    """Mean absolute error between predictions and (layer-normalised) stop-gradient targets.

    ``mean over real rows i and dimensions j of |prediction[i, j] - LN(sg(target))[i, j]|``,
    with ``LN`` a LayerNorm over the last dimension without affine parameters (I-JEPA) and
    ``sg`` the stop-gradient (SC-JEPA §3, L_JEPA).

    Parameters
    ----------
    prediction, target
        Shape ``(..., K)`` each (e.g. ``(B, m, K)`` tokens).
    mask
        Boolean, shape ``prediction.shape[:-1]``; only True rows count. ``None``: all rows.
    normalize_target
        Apply the LayerNorm to the target (default True).

    Returns
    -------
    torch.Tensor
        Scalar loss; gradients reach ``prediction`` only.

    Raises
    ------
    ValueError
        If the shapes differ, the mask is malformed, or no row is selected (checked for host
        tensors only: reading the count from an accelerator would sync it every step; there an
        empty mask gives 0).
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ."
        )
    prediction, target = prediction.float(), target.detach().float()  # fp32 under autocast
    if normalize_target:
        target = F.layer_norm(target, target.shape[-1:])
    err = (prediction - target).abs()
    if mask is None:
        return err.mean()
    _check_mask(mask, prediction.shape[:-1], "mask")
    n = mask.sum()
    if mask.device.type == "cpu" and int(n) == 0:
        raise ValueError("jepa_l1_loss: mask selects no row.")
    return (err * mask[..., None]).sum() / (n.clamp_min(1) * prediction.shape[-1])


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the real elements of each set: ``x`` ``(B, n, d)``, ``mask`` ``(B, n)`` -> ``(B, d)``.

    A set with no real element gives zeros.
    """
    if mask is None:
        return x.mean(dim=1)
    _check_mask(mask, x.shape[:2], "mask")
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def compact_sets(
    select: torch.Tensor, *tensors: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Gather the selected elements of each set to the front, dropping all-padding columns.

    Parameters
    ----------
    select
        Boolean ``(B, n)``: elements to keep.
    *tensors
        Tensors of shape ``(B, n, ...)`` to gather.

    Returns
    -------
    mask, gathered
        ``mask`` ``(B, m)`` with ``m = max_b select[b].sum()`` (True = kept element; kept
        elements keep their relative order) and each tensor gathered to ``(B, m, ...)``.
        Entries under ``mask == False`` are arbitrary elements of the set; treat them as padding.
    """
    if select.dtype != torch.bool or select.ndim != 2:
        raise ValueError(
            f"select must be a boolean (B, n) tensor, got {select.dtype} {select.shape}."
        )
    m = int(select.sum(dim=1).max()) if select.numel() else 0
    order = torch.argsort((~select).to(torch.int8), dim=1, stable=True)[:, :m]
    new_mask = torch.gather(select, 1, order)
    out = []
    for t in tensors:
        if t.shape[:2] != select.shape:
            raise ValueError(
                f"tensor of shape {tuple(t.shape)} does not match select {tuple(select.shape)}."
            )
        idx = order.reshape(order.shape + (1,) * (t.ndim - 2)).expand(-1, -1, *t.shape[2:])
        out.append(torch.gather(t, 1, idx))
    return new_mask, out


def _principal_axes(xf: torch.Tensor) -> torch.Tensor:
    """Principal axes ``(B, d, r)`` of centred sets ``xf`` ``(B, n, d)``, ``r = min(n, d)``.

    Eigen-decomposition of the smaller of the covariance ``xf^T xf`` (d x d) and the Gram matrix
    ``xf xf^T`` (n x n) (much faster than a batched SVD on CPU); axes of zero variance in the
    Gram route are returned as zero vectors.
    """
    n, d = xf.shape[-2:]
    if d <= n:
        _, vecs = torch.linalg.eigh(xf.transpose(-1, -2) @ xf)
        return vecs.flip(-1)
    evals, u = torch.linalg.eigh(xf @ xf.transpose(-1, -2))
    evals, u = evals.flip(-1), u.flip(-1)
    tol = evals[..., :1].clamp_min(0) * (n * torch.finfo(xf.dtype).eps)
    ok = evals > tol
    sv = torch.where(ok, evals, torch.ones_like(evals)).sqrt()
    return (xf.transpose(-1, -2) @ u) / sv[..., None, :] * ok[..., None, :]


@torch.no_grad()
def pointer_tokens_pca(
    x: torch.Tensor,
    fit_mask: torch.Tensor | None = None,
    target_mask: torch.Tensor | None = None,
    var_removed: float = 0.7,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointer features of target elements by PCA eigenvector masking within each set.

    SC-JEPA §3 "Pointer tokens" (after Bizeul et al. 2025): (1) fit PCA within the minibatch
    of elements drawn from one sample (here: the real elements ``fit_mask`` of each set, context
    and target together, centred on their mean); (2) zero the leading principal components
    until at least ``var_removed`` of the target elements' variance (their squared deviation
    from the set mean) is removed; (3) project back to feature space. The caller passes the
    result through an MLP. The set mean is not added back (Bizeul et al. work on centred
    data), so the pointer carries no first-moment information about the sample. No gradient.

    Parameters
    ----------
    x
        Element features, shape ``(B, n, d)`` (or ``(n, d)`` for one set).
    fit_mask
        Boolean ``(B, n)``: elements the PCA is fitted on. ``None``: all elements.
    target_mask
        Boolean ``(B, n)``: target elements whose variance decides how many components are
        removed and whose pointers are returned. ``None``: ``fit_mask``.
    var_removed
        Fraction of the target elements' variance to remove, in [0, 1] (paper: 0.7).

    Returns
    -------
    pointers, n_removed
        ``pointers`` ``(B, n, d)`` (same dtype as ``x``; zeros outside ``target_mask``) and
        ``n_removed`` ``(B,)`` int64, the number of leading components zeroed per set (0 when
        ``var_removed`` is 0 or the set's targets have no variance).

    Raises
    ------
    ValueError
        If ``var_removed`` is outside [0, 1] or a mask is malformed.
    """
    if not 0.0 <= var_removed <= 1.0:
        raise ValueError(f"var_removed must be in [0, 1], got {var_removed}.")
    single = x.ndim == 2
    if single:
        x = x[None]
        fit_mask = None if fit_mask is None else fit_mask[None]
        target_mask = None if target_mask is None else target_mask[None]
    if x.ndim != 3:
        raise ValueError(f"x must be (B, n, d) or (n, d), got shape {tuple(x.shape)}.")
    b, n, d = x.shape
    if fit_mask is None:
        fit_mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
    _check_mask(fit_mask, (b, n), "fit_mask")
    if target_mask is None:
        target_mask = fit_mask
    _check_mask(target_mask, (b, n), "target_mask")

    xf = x.to(torch.float64)  # float64: the covariance squares the condition number
    fit = fit_mask.to(xf.dtype)[..., None]
    tgt = target_mask.to(xf.dtype)[..., None]
    mean = (xf * fit).sum(1, keepdim=True) / fit.sum(1, keepdim=True).clamp_min(1.0)
    xc = (xf - mean) * (fit + tgt).clamp_max(1.0)  # padding -> 0
    vecs = _principal_axes(xc * fit)  # (B, d, r), columns by decreasing fitted variance
    coords = xc @ vecs  # (B, n, r) coordinates on the components
    comp_var = (coords.square() * tgt).sum(1)  # (B, r) target variance along each component
    total = (xc.square() * tgt).sum((1, 2))  # (B,) includes any part outside the fitted span
    cum = comp_var.cumsum(-1)
    need = var_removed * total * (1.0 - 1e-9)
    r = vecs.shape[-1]
    n_removed = ((cum < need[:, None]).sum(-1) + 1).clamp_max(r)
    n_removed = torch.where(need > 0, n_removed, torch.zeros_like(n_removed))
    drop = torch.arange(r, device=x.device)[None, :] < n_removed[:, None]  # (B, r)
    pointers = (xc - (coords * drop[:, None, :]) @ vecs.transpose(-1, -2)) * tgt
    pointers = pointers.to(x.dtype)
    if single:
        return pointers[0], n_removed[0]
    return pointers, n_removed


def _paired(teacher: nn.Module, student: nn.Module, kind: str):
    t_items = list(getattr(teacher, f"named_{kind}")())
    s_items = list(getattr(student, f"named_{kind}")())
    if [(k, v.shape) for k, v in t_items] != [(k, v.shape) for k, v in s_items]:
        raise ValueError(f"teacher and student {kind} differ in names or shapes.")
    return zip((v for _, v in t_items), (v for _, v in s_items))


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place: ``teacher_p <- momentum * teacher_p + (1 - momentum) * student_p``.

    Applied to every parameter; floating-point buffers follow the same rule and other buffers
    are copied. ``momentum = 1`` leaves the teacher unchanged, ``0`` copies the student.

    Raises
    ------
    ValueError
        If ``momentum`` is outside [0, 1] or the two modules' parameters/buffers differ in names
        or shapes.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}.")
    for kind in ("parameters", "buffers"):
        for t, s in _paired(teacher, student, kind):
            if t.is_floating_point():
                t.lerp_(s.detach().to(t.dtype), 1.0 - momentum)
            else:
                t.copy_(s)


def ema_momentum(
    step: int,
    total_steps: int,
    base: float = 0.996,
    final: float = 1.0,
    schedule: Literal["linear", "cosine"] = "linear",
) -> float:
    """EMA momentum at optimiser step ``step`` of ``total_steps``.

    ``linear`` (I-JEPA, the schedule in the project's METHODS.md): ``base + (final - base) t``;
    ``cosine`` (BYOL / DINO): ``final - (final - base) (1 + cos(pi t)) / 2``; with
    ``t = clip(step / total_steps, 0, 1)``. Defaults 0.996 -> 1.0 (I-JEPA).

    Raises
    ------
    ValueError
        If ``total_steps < 1`` or ``schedule`` is unknown.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    t = min(max(step / total_steps, 0.0), 1.0)
    if schedule == "linear":
        return base + (final - base) * t
    if schedule == "cosine":
        return final - (final - base) * (1.0 + math.cos(math.pi * t)) / 2.0
    raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}.")
