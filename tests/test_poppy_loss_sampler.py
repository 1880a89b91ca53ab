"""POPPY's multi-positive contrastive loss (hand-computed) and cross-cohort sampler (§2.2.3-4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cellpop.data import CrossCohortSampler, SampleSetDataModule, SampleSets, check_cohorts
from cellpop.nn import CellImportancePooling, multi_positive_contrastive_loss


def test_loss_hand_computed_soft_labels():
    z = torch.eye(2)
    s = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    # row 0 of [L^x | L^c] with tau = 1: [1, 0 | -inf, 0]; target [2/3, 1/3 | 0, 0]
    e = math.e
    p = [e / (e + 2), 1 / (e + 2)]
    kl = 2 / 3 * math.log((2 / 3) / p[0]) + 1 / 3 * math.log((1 / 3) / p[1])
    got = multi_positive_contrastive_loss(z, z, s, temperature=1.0)
    assert got.item() == pytest.approx(kl, rel=1e-6)  # both rows and directions are equal


def test_loss_asymmetric_case_by_hand():
    zc = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    zb = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    s = torch.tensor([[1.0, 0.0], [0.25, 1.0]])
    tau = 0.5

    def kl(target, logits):
        logits = np.array(logits, dtype=float)
        finite = np.isfinite(logits)
        lse = np.log(np.exp(logits[finite]).sum())
        return sum(t * math.log(t / math.exp(lg - lse)) for t, lg in zip(target, logits) if t > 0)

    cross = (zc @ zb.T / tau).numpy()
    cc = (zc @ zc.T / tau).numpy()
    bb = (zb @ zb.T / tau).numpy()
    t = [[1.0, 0.0], [0.2, 0.8]]
    c2b = [
        kl(t[i] + [0, 0], list(cross[i]) + [cc[i, j] if j != i else -np.inf for j in range(2)])
        for i in range(2)
    ]
    b2c = [
        kl(t[i] + [0, 0], list(cross[:, i]) + [bb[i, j] if j != i else -np.inf for j in range(2)])
        for i in range(2)
    ]
    expected = 0.5 * (np.mean(c2b) + np.mean(b2c))
    got = multi_positive_contrastive_loss(zc, zb, s, temperature=tau).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_loss_gradient_and_minimum():
    z = torch.eye(3)
    # identity targets, aligned orthogonal pairs, small temperature: near zero loss
    assert multi_positive_contrastive_loss(z, z, torch.eye(3), 0.01).item() < 1e-6
    zc = torch.randn(4, 3, requires_grad=True)
    loss = multi_positive_contrastive_loss(zc, torch.randn(4, 3), torch.eye(4))
    loss.backward()
    assert torch.isfinite(zc.grad).all() and zc.grad.abs().sum() > 0


def test_loss_errors():
    z = torch.eye(2)
    with pytest.raises(ValueError, match="positive sum"):
        multi_positive_contrastive_loss(z, z, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        multi_positive_contrastive_loss(z, z, -torch.eye(2))
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        multi_positive_contrastive_loss(z, z, torch.eye(3))


def test_linear_pooling_score_is_w_x_plus_b():
    pool = CellImportancePooling(3, score="linear")
    lin = pool.score
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    pooled, w = pool(x, mask)
    logits = (x @ lin.weight.T + lin.bias)[..., 0]
    expected = torch.softmax(logits.masked_fill(~mask, float("-inf")), 1)
    torch.testing.assert_close(w[..., 0], expected)
    torch.testing.assert_close(pooled, torch.einsum("bn,bnd->bd", expected, x))
    with pytest.raises(ValueError, match="score"):
        CellImportancePooling(3, score="gated")


def _toy():
    # samples 0-2 cohort a, 3-5 cohort b; S: 0~3 and 1~4 similar across cohorts
    s = np.eye(6)
    s[0, 3] = s[3, 0] = 0.8
    s[0, 1] = s[1, 0] = 0.9  # same-cohort and more similar than the cross-cohort positive
    s[0, 4] = s[4, 0] = 0.3
    s[1, 4] = s[4, 1] = 0.6
    return s, np.array(list("aaabbb"))


def test_cross_cohort_positive_and_less_similar_rest():
    s, c = _toy()
    sampler = CrossCohortSampler(s, c)
    rng = np.random.default_rng(0)
    pos = set()
    for _ in range(200):
        b = sampler.batch(0, np.arange(6), 4, rng)
        assert b[0] == 0 and len(set(b)) == 4
        assert c[b[1]] == "b" and s[0, b[1]] > 0  # cross-cohort, non-zero similarity
        pos.add(int(b[1]))
        assert all(s[0, j] < s[0, b[1]] for j in b[2:])  # strictly less similar than p
    assert pos == {3, 4}  # uniform over the candidates
    # same-cohort preference: with weight 10, sample 2 (cohort a, S=0) beats 5 (cohort b)
    heavy = CrossCohortSampler(s, c, same_cohort_weight=10.0)
    counts = {2: 0, 5: 0}
    for _ in range(300):
        b = heavy.batch(0, np.arange(6), 3, rng)
        if b[1] == 3 and b[2] in counts:
            counts[int(b[2])] += 1
    assert counts[2] > 3 * counts[5]


def test_cross_cohort_fallback_and_errors():
    s, c = _toy()
    s2 = s.copy()
    s2[2, 3:] = s2[3:, 2] = 0.0
    s2[2, 5] = s2[5, 2] = 0.0
    b = CrossCohortSampler(s2, c).batch(2, np.arange(6), 3, np.random.default_rng(0))
    assert c[b[1]] == "b"  # no positive with S > 0: the most similar of another cohort
    with pytest.raises(ValueError, match="one sample"):
        check_cohorts(np.array(["a", "a", "b"]))
    with pytest.raises(ValueError, match="at least 2 cohorts"):
        check_cohorts(np.array(["a", "a"]))


def test_sampler_drives_the_set_data_module():
    s, c = _toy()
    sets = SampleSets(np.random.default_rng(0).normal(size=(60, 3)), np.repeat(np.arange(6), 10), 6)
    dm = SampleSetDataModule(
        sets, np.arange(6), np.array([], dtype=np.int64), batch_size=3, n_cells=(4, 4),
        n_views=1, batch_sampler=CrossCohortSampler(s, c),
    )  # fmt: skip
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    for b in batches:
        smp = b["sample"].numpy()
        assert c[smp[0]] != c[smp[1]] and len(set(smp)) == 3
