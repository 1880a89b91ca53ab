"""Anti-collapse regularisers: SIGReg (Epps–Pulley, LeJEPA) and the VICReg variance term.

SIGReg (Balestriero & LeCun 2025; scJEPA paper §2.4.2, eq. 5–6) projects embeddings on random
unit directions and measures, per direction, how far the empirical characteristic function is
from that of N(0, 1) with the Epps–Pulley statistic

    T = N ∫ |φ̂(t) − exp(−t²/2)|² w(t) dt,   φ̂(t) = mean_n exp(i t u_n),

computed with real arithmetic, err(t) = (mean cos(t u) − exp(−t²/2))² + (mean sin(t u))²,
on t ∈ [0, 3] with 17 knots and trapezoid weights doubled for interior knots (the integrand is
even, so this integrates over [−3, 3]) and w(t) = exp(−t²/2) (the LeJEPA reference quadrature;
the scJEPA text writes w(t) = exp(−t²), we follow the reference, see ``docs/scjepa.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._distributed import all_sum, global_variance, world_size

__all__ = ["SIGReg", "epps_pulley", "random_directions", "sigreg", "vicreg_variance"]


def _knots(n_knots: int, t_max: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.linspace(0.0, t_max, n_knots, device=device, dtype=dtype)
    dt = t_max / (n_knots - 1)
    weights = torch.full((n_knots,), 2.0 * dt, device=device, dtype=dtype)
    weights[0] = weights[-1] = dt
    return t, weights * torch.exp(-0.5 * t**2)


def epps_pulley(u: torch.Tensor, n_knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Epps–Pulley normality statistic of 1-D projections.

    Parameters
    ----------
    u
        Projections, shape (..., N, M): N samples of M one-dimensional variables (leading
        dimensions are independent sets, e.g. views).
    n_knots, t_max
        Quadrature: ``n_knots`` equally spaced t in [0, ``t_max``] (defaults 17 and 3, LeJEPA).

    Returns
    -------
    torch.Tensor
        Statistic per variable, shape (..., M); ≈1.06 in expectation for N(0, 1) samples with
        the default quadrature, growing with N when the distribution is not N(0, 1).

    Notes
    -----
    Under DDP (inside :func:`cellpop.nn.global_batch`) the empirical characteristic function
    and N are those of the N samples of all ranks together (sums reduced across ranks).
    """
    t, w = _knots(n_knots, t_max, u.device, u.dtype)
    tu = u.unsqueeze(-1) * t  # (..., N, M, T)
    sums = all_sum(torch.stack([torch.cos(tu).sum(dim=-3), torch.sin(tu).sum(dim=-3)]))
    n = all_sum(torch.tensor(float(u.shape[-2]), device=u.device, dtype=u.dtype))
    cos_mean, sin_mean = sums[0] / n, sums[1] / n
    err = (cos_mean - torch.exp(-0.5 * t**2)) ** 2 + sin_mean**2  # (..., M, T)
    return n * (err @ w)


def random_directions(
    dim: int,
    num_directions: int,
    step: int | None = None,
    device=None,
    dtype=torch.float32,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Random unit directions, shape (dim, num_directions), drawn from normalised Gaussians.

    ``step`` seeds a private generator (reproducible, independent of the global RNG); ``None``
    draws from the global torch RNG.
    """
    gen = None
    if step is not None:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(step))
    a = torch.randn(dim, num_directions, generator=gen, dtype=dtype)
    a = a / (a.norm(dim=0, keepdim=True) + eps)
    return a.to(device)


def sigreg(
    z: torch.Tensor,
    num_directions: int = 256,
    step: int | None = None,
    directions: torch.Tensor | None = None,
    n_knots: int = 17,
    t_max: float = 3.0,
) -> torch.Tensor:
    """Sketched isotropic Gaussian regularisation (SIGReg) of embeddings.

    Parameters
    ----------
    z
        Embeddings, shape (N, K) or (S, N, K) for S independent sets (e.g. the V + 1 views of
        scJEPA eq. 7): each set is tested separately, then averaged.
    num_directions
        Number M of random unit directions (default 256; LeJEPA uses 256–1024).
    step
        Seed of the directions (redrawn every training step, seeded by the step so runs are
        reproducible); ``None`` uses the global torch RNG.
    directions
        Fixed directions, shape (K, M), instead of random ones.
    n_knots, t_max
        Epps–Pulley quadrature (see :func:`epps_pulley`).

    Returns
    -------
    torch.Tensor
        Scalar: mean over sets and directions of the Epps–Pulley statistic (scJEPA eq. 5, 7).

    Raises
    ------
    ValueError
        Under DDP (inside :func:`cellpop.nn.global_batch`) without ``step`` or ``directions``:
        the ranks would draw different directions.
    """
    if directions is None:
        if step is None and world_size() > 1:
            raise ValueError(
                "sigreg under DDP needs step= (or directions=): every rank must project on the "
                "same random directions."
            )
        directions = random_directions(z.shape[-1], num_directions, step, z.device, z.dtype)
    return epps_pulley(z @ directions, n_knots=n_knots, t_max=t_max).mean()


class SIGReg(nn.Module):
    """Module form of :func:`sigreg`; ``forward(z, step=None)`` returns the scalar loss."""

    def __init__(self, num_directions: int = 256, n_knots: int = 17, t_max: float = 3.0):
        super().__init__()
        self.num_directions, self.n_knots, self.t_max = num_directions, n_knots, t_max

    def forward(self, z: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return sigreg(z, self.num_directions, step, n_knots=self.n_knots, t_max=self.t_max)


def vicreg_variance(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg variance term: mean_j relu(gamma − sqrt(Var(z[:, j]) + eps)).

    Parameters
    ----------
    z
        Embeddings, shape (N, K), N ≥ 2. The variance is the unbiased one (divide by N − 1).
    gamma
        Target standard deviation (VICReg default 1).
    eps
        Added inside the square root for stability (VICReg default 1e-4).

    Returns
    -------
    torch.Tensor
        Scalar hinge loss, 0 when every dimension has std ≥ ``gamma``. Under DDP (inside
        :func:`cellpop.nn.global_batch`) the variance is over the rows of all ranks.
    """
    var, _ = global_variance(z)
    std = torch.sqrt(var + eps)
    return torch.relu(gamma - std).mean()
