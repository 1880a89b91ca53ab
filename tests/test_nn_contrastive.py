import math

import numpy as np
import pytest
import torch

from cellpop.nn import (
    CellImportancePooling,
    ResidualMLP,
    head_diversity_penalty,
    xsample_contrastive_loss,
)


def _hand_infonce(z, tau):
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = zn @ zn.T / tau
    n = len(z)
    b = n // 2
    total = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        lse = math.log(sum(math.exp(s[i, j]) for j in others))
        pos = (i + b) % n
        total += -(s[i, pos] - lse)
    return total / n


def test_infonce_matches_hand_computation():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.2, 0.8]])
    got = xsample_contrastive_loss(torch.tensor(z), None, temperature=0.5).item()
    assert got == pytest.approx(_hand_infonce(z, 0.5), rel=1e-6)


def test_prior_targets_soft_labels():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.2, 0.8]])
    # a prior that says the two samples are identical spreads targets uniformly over the
    # 3 other views; the loss is then the mean CE against a uniform target
    prior = torch.ones(2, 2)
    got = xsample_contrastive_loss(z, prior, temperature=0.5, graph_temperature=0.1).item()
    zn = torch.nn.functional.normalize(z, dim=1)
    s = (zn @ zn.T / 0.5).fill_diagonal_(float("-inf"))
    logp = torch.log_softmax(s, 1).fill_diagonal_(0.0)
    expected = -(logp.sum(1) / 3).mean().item()
    assert got == pytest.approx(expected, rel=1e-6)
    # a sharp identity prior reproduces InfoNCE
    sharp = xsample_contrastive_loss(z, torch.eye(2) * 10, 0.5, graph_temperature=0.01).item()
    assert sharp == pytest.approx(xsample_contrastive_loss(z, None, 0.5).item(), rel=1e-5)


def test_contrastive_loss_errors():
    with pytest.raises(ValueError, match="two views"):
        xsample_contrastive_loss(torch.randn(3, 2))
    with pytest.raises(ValueError, match="prior"):
        xsample_contrastive_loss(torch.randn(4, 2), torch.ones(3, 3))


def test_diversity_penalty_bounds():
    w = torch.rand(2, 10, 1).repeat(1, 1, 2)  # two identical heads
    assert head_diversity_penalty(w).item() == pytest.approx(1.0, abs=1e-6)
    w = torch.zeros(1, 4, 2)
    w[0, :2, 0], w[0, 2:, 1] = 0.5, 0.5  # disjoint heads
    assert head_diversity_penalty(w).item() == pytest.approx(0.0, abs=1e-7)
    assert head_diversity_penalty(torch.rand(2, 5, 1)).item() == 0.0


def test_pooling_masks_padding_and_normalises():
    torch.manual_seed(0)
    pool = CellImportancePooling(4, n_heads=3, n_hidden=8)
    x = torch.randn(2, 6, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 4:] = False
    pooled, w = pool(x, mask)
    assert pooled.shape == (2, 12) and w.shape == (2, 6, 3)
    assert torch.allclose(w.sum(1), torch.ones(2, 3))
    assert (w[0, 4:] == 0).all()
    # padding content must not change the result
    x2 = x.clone()
    x2[0, 4:] = 1e3
    assert torch.allclose(pool(x2, mask)[0], pooled)
    # pooled = concat_h sum_c w_ch x_c
    assert torch.allclose(pooled[1, 4:8], (w[1, :, 1:2] * x[1]).sum(0), atol=1e-6)


def test_residual_mlp_shapes_and_norms():
    for norm in ("batch", "layer", None):
        m = ResidualMLP(5, 3, n_hidden=7, n_layers=2, norm=norm)
        assert m(torch.randn(4, 5)).shape == (4, 3)
        assert m(torch.randn(2, 4, 5)).shape == (2, 4, 3)
    with pytest.raises(ValueError):
        ResidualMLP(5, 3, norm="bogus")
