"""Unit tests of the SwAV blocks (Sinkhorn-Knopp, swapped prediction, propagation loss)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cellpop.nn._cvae import (
    ConditionalDecoder,
    ConditionalEncoder,
    ConditionEmbedding,
    default_hidden_size,
    nb_reconstruction_loss,
)
from cellpop.nn._swav import (
    cosine_scores,
    grouped_mean,
    propagation_loss,
    sinkhorn_knopp,
    swapped_prediction_loss,
    target_agreement,
)


def test_sinkhorn_marginals_converged():
    g = torch.Generator().manual_seed(0)
    b, k = 40, 8
    scores = torch.rand(b, k, generator=g) * 2 - 1
    q = sinkhorn_knopp(scores, epsilon=0.5, n_iters=200)
    # cells: each row sums to 1 exactly (last step normalises columns of Q^T, then x B)
    torch.testing.assert_close(q.sum(1), torch.ones(b))
    # prototypes: each gets B / K of the mass once converged (equipartition)
    torch.testing.assert_close(q.sum(0), torch.full((k,), b / k), atol=1e-4, rtol=1e-4)
    assert (q >= 0).all()


def test_sinkhorn_three_iterations_hand_case():
    # one Sinkhorn step on a 2x2 case by hand: Q = exp(S/eps)^T / total
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    eps = 1.0
    q = sinkhorn_knopp(scores, epsilon=eps, n_iters=1)
    e = math.e
    Q = np.array([[e, 1.0], [1.0, 1.0]]).T  # K x B
    Q = Q / Q.sum()
    Q = Q / Q.sum(1, keepdims=True) / 2  # rows sum 1/K
    Q = Q / Q.sum(0, keepdims=True) / 2  # columns sum 1/B
    expected = (Q * 2).T
    np.testing.assert_allclose(q.numpy(), expected, rtol=1e-6)


def test_sinkhorn_small_epsilon_no_overflow_and_hard():
    scores = torch.tensor([[1.0, -1.0, 0.2], [0.9, 0.95, -1.0], [-1.0, 0.1, 1.0]])
    q = sinkhorn_knopp(scores, epsilon=0.02, n_iters=3)
    assert torch.isfinite(q).all()
    h = sinkhorn_knopp(scores, epsilon=0.02, n_iters=3, hard=True)
    assert torch.equal(h.sum(1), torch.ones(3))
    assert torch.equal(h.argmax(1), q.argmax(1))
    # balanced: cell 1 prefers prototype 1 (0.95) so the three cells take three prototypes
    assert sorted(h.argmax(1).tolist()) == [0, 1, 2]


def test_sinkhorn_groups_are_independent():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(30, 5, generator=g)
    groups = torch.tensor([0] * 10 + [3] * 20)
    q = sinkhorn_knopp(scores, epsilon=0.3, n_iters=5, groups=groups)
    q0 = sinkhorn_knopp(scores[:10], epsilon=0.3, n_iters=5)
    q1 = sinkhorn_knopp(scores[10:], epsilon=0.3, n_iters=5)
    torch.testing.assert_close(q[:10], q0)
    torch.testing.assert_close(q[10:], q1)
    with pytest.raises(ValueError, match="groups has 3 entries"):
        sinkhorn_knopp(scores, groups=torch.tensor([0, 1, 2]))


def test_swapped_loss_hand_case():
    scores_t = torch.tensor([[0.5, -0.5]])
    scores_s = torch.tensor([[0.0, 1.0]])
    q_t = torch.tensor([[1.0, 0.0]])
    q_s = torch.tensor([[0.25, 0.75]])
    tau = 0.5
    # l(z_t, q_s) = -sum q_s log softmax(s_t / tau); softmax([1, -1]) = [e/(e+1/e), ...]
    lp_t = np.log(np.exp([1.0, -1.0]) / np.exp([1.0, -1.0]).sum())
    lp_s = np.log(np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum())
    expected = -(0.25 * lp_t[0] + 0.75 * lp_t[1]) - (1.0 * lp_s[0])
    got = swapped_prediction_loss(scores_t, scores_s, q_t, q_s, temperature=tau, min_group_size=1)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_grouped_mean_averages_groups_not_cells():
    v = torch.tensor([1.0, 1.0, 1.0, 4.0])
    groups = torch.tensor([0, 0, 0, 1])
    assert grouped_mean(v, groups).item() == pytest.approx((1.0 + 4.0) / 2)
    # the single-cell group is dropped when min_size=2
    assert grouped_mean(v, groups, min_size=2).item() == pytest.approx(1.0)
    assert grouped_mean(v, groups, min_size=5).item() == 0.0


def test_propagation_loss_hand_case():
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # unnormalised: distances to the closest prototype are 0, 1, sqrt(10) -> max sqrt(10)
    assert propagation_loss(z, protos, normalize=False).item() == pytest.approx(math.sqrt(10))
    # on the unit sphere: cells (1,0), (0,1), (-1,0); the last is sqrt(2) from (0,1)
    assert propagation_loss(z, protos).item() == pytest.approx(math.sqrt(2), rel=1e-6)
    # gradient is finite even when a cell sits on a prototype
    zz = torch.tensor([[1.0, 0.0]], requires_grad=True)
    propagation_loss(zz, protos, normalize=False).backward()
    assert torch.isfinite(zz.grad).all()


def test_cosine_scores_range():
    z = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    torch.testing.assert_close(cosine_scores(z, p), torch.tensor([[1.0, 0.0], [0.0, -1.0]]))


def test_cvae_blocks_shapes_and_nb_loss():
    torch.manual_seed(0)
    n_genes, n_latent = 30, 4
    assert default_hidden_size(n_genes) == 6
    emb = ConditionEmbedding(3, 10)
    enc = ConditionalEncoder(n_genes, n_latent, 10)
    dec = ConditionalDecoder(n_latent, n_genes, 10)
    x = torch.poisson(torch.full((5, n_genes), 2.0))
    c = emb(torch.tensor([0, 1, 2, 0, 1]))
    assert (c.norm(dim=1) <= 1.0 + 1e-5).all()  # max_norm 1 (scPoli)
    mean, var = enc(torch.log1p(x), c)
    assert mean.shape == (5, n_latent) and (var > 0).all()
    prop = dec(mean, c)
    torch.testing.assert_close(prop.sum(1), torch.ones(5))
    assert emb.mean_embedding().shape == (10,)
    # NB(mean mu, inverse dispersion theta) == torch NB(total_count=theta, p=mu/(mu+theta))
    lib = x.sum(1, keepdim=True)
    theta = torch.full((n_genes,), 3.0)
    nll = nb_reconstruction_loss(x, prop, lib, theta)
    mu = prop * lib
    ref = torch.distributions.NegativeBinomial(total_count=theta, probs=mu / (mu + theta))
    torch.testing.assert_close(nll, -ref.log_prob(x).sum(1), rtol=1e-4, atol=1e-3)
    assert F.relu(-nll).sum() == 0


def _np_sinkhorn_one_step(scores: np.ndarray, eps: float) -> np.ndarray:
    """One Sinkhorn-Knopp iteration by hand (SwAV): Q = exp(S/eps)^T / total, rows 1/K, cols 1/B."""
    b, k = scores.shape
    Q = np.exp(scores / eps).T
    Q = Q / Q.sum()
    Q = Q / Q.sum(1, keepdims=True) / k
    Q = Q / Q.sum(0, keepdims=True) / b
    return (Q * b).T


def test_sinkhorn_small_group_falls_back_to_global_hand_case():
    # K = 2 prototypes; group 7 holds 3 cells, group 9 a single cell that clearly prefers
    # prototype 1. Alone, one cell must give each prototype 1/K of itself: its target is
    # uniform whatever its scores. With min_group_size = K = 2 the single cell takes its row
    # from the Sinkhorn over all 4 cells instead.
    scores = torch.tensor([[1.0, 0.0], [0.8, 0.1], [0.0, 0.2], [0.0, 1.0]])
    groups = torch.tensor([7, 7, 7, 9])
    per_group = sinkhorn_knopp(scores, epsilon=1.0, n_iters=1, groups=groups)
    torch.testing.assert_close(per_group[3], torch.tensor([0.5, 0.5]))
    q = sinkhorn_knopp(scores, epsilon=1.0, n_iters=1, groups=groups, min_group_size=2)
    big = _np_sinkhorn_one_step(scores[:3].numpy().astype(np.float64), 1.0)
    whole = _np_sinkhorn_one_step(scores.numpy().astype(np.float64), 1.0)
    np.testing.assert_allclose(q[:3].numpy(), big, rtol=1e-6)  # the 3-cell group: its own
    np.testing.assert_allclose(q[3].numpy(), whole[3], rtol=1e-6)  # the single cell: global
    assert q[3, 1] > 0.6  # follows its score now
    # hard targets: the fallback puts the cell on its nearest prototype
    h = sinkhorn_knopp(scores, epsilon=1.0, n_iters=1, groups=groups, min_group_size=2, hard=True)
    assert h[3].tolist() == [0.0, 1.0]
    # a threshold every group meets changes nothing
    torch.testing.assert_close(
        sinkhorn_knopp(scores, epsilon=1.0, n_iters=1, groups=groups, min_group_size=1), per_group
    )


def test_sinkhorn_fallback_marginals_converged():
    g = torch.Generator().manual_seed(2)
    k = 4
    scores = torch.rand(14, k, generator=g) * 2 - 1
    groups = torch.tensor([0] * 8 + [1] * 3 + [2] * 3)  # groups 1 and 2 are below K = 4
    q = sinkhorn_knopp(scores, epsilon=0.5, n_iters=300, groups=groups, min_group_size=k)
    q_all = sinkhorn_knopp(scores, epsilon=0.5, n_iters=300)
    torch.testing.assert_close(q.sum(1), torch.ones(14))
    # the large group is balanced on its own: each prototype gets 8 / 4 = 2 of its cells
    torch.testing.assert_close(q[:8].sum(0), torch.full((k,), 2.0), atol=1e-4, rtol=1e-4)
    # the small groups' rows are the global ones, whose columns hold 14 / 4 cells in total
    torch.testing.assert_close(q[8:], q_all[8:])
    torch.testing.assert_close(q_all.sum(0), torch.full((k,), 3.5), atol=1e-4, rtol=1e-4)


def test_target_agreement_counts_nearest_prototype_targets():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.3], [0.5, 0.4, 0.0]])
    q = F.one_hot(torch.tensor([0, 2, 2, 1]), 3).float()  # cells 0 and 2 on their nearest
    assert target_agreement(scores, q).item() == pytest.approx(0.5)
