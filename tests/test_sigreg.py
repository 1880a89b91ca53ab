"""SIGReg (Epps–Pulley) and VICReg variance against hand computations."""

import math

import numpy as np
import pytest
import torch

from cellpop.nn import SIGReg, random_directions, sigreg, vicreg_variance


def _epps_pulley_by_hand(u):
    """Epps–Pulley with 17 trapezoid knots on [0, 3], written out element by element."""
    n = len(u)
    dt = 3.0 / 16
    total = 0.0
    for k in range(17):
        t = k * dt
        weight = dt if k in (0, 16) else 2 * dt  # trapezoid, interior doubled (even integrand)
        c = sum(math.cos(t * x) for x in u) / n
        s = sum(math.sin(t * x) for x in u) / n
        err = (c - math.exp(-t * t / 2)) ** 2 + s**2
        total += weight * math.exp(-t * t / 2) * err
    return n * total


def test_sigreg_matches_hand_computation():
    z = torch.tensor([[-1.0, 0.3], [0.5, -0.2], [2.0, 1.1]], dtype=torch.float64)
    d = torch.tensor([[1.0, 0.6], [0.0, 0.8]], dtype=torch.float64)  # two unit directions
    u = (z @ d).numpy()
    expected = np.mean([_epps_pulley_by_hand(u[:, 0]), _epps_pulley_by_hand(u[:, 1])])
    got = sigreg(z, directions=d).item()
    assert got == pytest.approx(expected, rel=1e-10)
    # sets stacked along a leading dimension are tested separately then averaged
    z2 = torch.stack([z, 2 * z])
    e2 = np.mean([_epps_pulley_by_hand(col) for zz in (z, 2 * z) for col in (zz @ d).numpy().T])
    assert sigreg(z2, directions=d).item() == pytest.approx(e2, rel=1e-10)


def test_sigreg_gaussian_vs_collapsed():
    torch.manual_seed(0)
    gauss = np.mean([sigreg(torch.randn(512, 16), step=s).item() for s in range(20)])
    assert 0.9 < gauss < 1.25  # ≈1.06 under N(0, I)
    collapsed = sigreg(0.01 * torch.randn(512, 16), step=0).item()
    assert collapsed > 100 * gauss
    shifted = sigreg(torch.randn(512, 16) + 3.0, step=0).item()
    assert shifted > 10 * gauss
    # module form equals the function; the step seeds the directions reproducibly
    z = torch.randn(64, 8)
    assert SIGReg(num_directions=32)(z, step=7).item() == sigreg(z, 32, step=7).item()
    assert sigreg(z, 32, step=7).item() != sigreg(z, 32, step=8).item()


def test_random_directions_unit_and_seeded():
    a = random_directions(10, 5, step=3)
    assert a.shape == (10, 5)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(a, random_directions(10, 5, step=3))


def test_sigreg_gradient_pulls_collapsed_apart():
    z = (0.05 * torch.randn(128, 4)).requires_grad_()
    opt = torch.optim.Adam([z], lr=0.05)
    first = None
    for step in range(100):
        loss = sigreg(z, 16, step=step)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sigreg(z, 32, step=999).item() < 0.2 * first


def test_vicreg_variance_hand_case():
    # column 0: values 0, 2 -> unbiased var 2 -> std sqrt(2 + 1e-4) > 1 -> hinge 0
    # column 1: constant -> std sqrt(1e-4) = 0.01 -> hinge 0.99
    z = torch.tensor([[0.0, 5.0], [2.0, 5.0]])
    assert vicreg_variance(z).item() == pytest.approx(0.99 / 2, abs=1e-6)
    assert vicreg_variance(z, gamma=2.0).item() == pytest.approx(
        ((2 - math.sqrt(2 + 1e-4)) + (2 - 0.01)) / 2, abs=1e-6
    )


# Closed forms over the whole real line, with w(t) = φ(t) = exp(−t²/2) (∫ exp(−a t²) = √(π/a)):
# point mass at c:   T/N = √(2π) + √(2π/3) − 2√π·exp(−c²/4)
# N(0, s²), N → ∞:   T/N = √(2π)·[(1 + 2s²)^(−1/2) − 2(2 + s²)^(−1/2) + 3^(−1/2)]
# N(0, 1) sample:    E[T] = ∫ (1 − φ(t)²) w(t) dt = √(2π) − √(2π/3) ≈ 1.0594 (any N)
# The quadrature stops at |t| = 3, which drops ≈ 2·∫_3^∞ exp(−t²/2) dt = 0.0068 of the
# point-mass integrals (1.7% at c = 0) and much less of the others.
_SQ2PI = math.sqrt(2 * math.pi)


def _point_mass(c):
    return _SQ2PI + math.sqrt(2 * math.pi / 3) - 2 * math.sqrt(math.pi) * math.exp(-c * c / 4)


def _gauss_spread(s):
    return _SQ2PI * ((1 + 2 * s * s) ** -0.5 - 2 * (2 + s * s) ** -0.5 + 3**-0.5)


@pytest.mark.parametrize("n", [256, 1024])
def test_sigreg_constant_embedding_closed_form(n):
    z = torch.zeros(n, 64, dtype=torch.float64)
    got = sigreg(z, 32, step=0).item()
    assert _point_mass(0.0) == pytest.approx(0.40888, abs=1e-4)
    assert got == pytest.approx(n * _point_mass(0.0), rel=0.02)  # 103.0 vs 104.7 at N = 256
    # the same value with the truncated integral computed independently by scipy
    from scipy.integrate import quad

    trunc = quad(lambda t: (1 - math.exp(-t * t / 2)) ** 2 * math.exp(-t * t / 2), -3, 3)[0]
    assert got == pytest.approx(n * trunc, rel=2e-3)
    # a point mass away from 0 scores higher: (c = 1) 1.1928·N
    u = torch.full((n, 1), 1.0, dtype=torch.float64)
    ep = sigreg(u, directions=torch.ones(1, 1, dtype=torch.float64)).item()
    assert ep == pytest.approx(n * _point_mass(1.0), rel=0.01)


def test_sigreg_standard_normal_and_spread_closed_form():
    g = torch.Generator().manual_seed(0)
    # E[T] for N(0, 1) samples: 20 batches of 512 × 8 independent coordinates
    vals = [
        sigreg(torch.randn(512, 8, generator=g, dtype=torch.float64), 8, step=s).item()
        for s in range(20)
    ]
    assert np.mean(vals) == pytest.approx(_SQ2PI - math.sqrt(2 * math.pi / 3), rel=0.08)
    # N(0, s²) with many samples: T/N follows the spread formula; near s = 0 it is
    # 0.4089 − 1.62 s², so SIGReg's pull on the spread (dT/ds = −3.24·N·s) vanishes with it
    n = 200_000
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    for s in (0.05, 0.3, 0.6):
        got = sigreg(s * x, directions=one).item() / n
        assert got == pytest.approx(_gauss_spread(s), rel=0.02, abs=2e-4)
    assert (_gauss_spread(1e-3) - _gauss_spread(0.0)) / 1e-6 == pytest.approx(
        _SQ2PI * (2**-1.5 - 1), rel=1e-3
    )
    assert _gauss_spread(0.05) > 0.99 * _gauss_spread(0.0)  # the collapse floor of the tests
