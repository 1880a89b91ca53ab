"""ScJEPA collapse (issue 8): the monitor, the projector mechanism, and a real-data floor."""

import anndata as ad
import numpy as np
import pytest
import torch

from cellpop.module._scjepa import ScJEPAModule
from cellpop.nn import embedding_std, sigreg

# Floors of the collapse monitor after a short default run on Kang (see the real-data test).
# proj_std: a projection whose per-dimension std is s scores N·T(s) on SIGReg, with
# T(s) = √(2π)·[(1 + 2s²)^(−1/2) − 2(2 + s²)^(−1/2) + 3^(−1/2)] for Gaussian data, and at
# s = 0.05 that is 99.4% of a point mass's value: below it SIGReg cannot tell the projection
# from a collapsed one. Measured (2,000 cells, batch 256, 2 epochs): 0.28 fixed, ≤ 0.002 with
# the former LayerNorm projector. latent_std: 0.17 at initialisation; collapsed runs end at
# ≤ 0.006 (a plain denoising autoencoder too), the fixed model at 0.21; 0.05 sits ≥ 8× above
# every collapsed run and ≥ 4× below the fixed one.
PROJ_STD_FLOOR = 0.05
LATENT_STD_FLOOR = 0.05


def test_embedding_std_hand_case():
    # dims: values (0, 2) -> population std 1; (0, 4) -> 2; (1, 1) -> 0
    z = torch.tensor([[0.0, 0.0, 1.0], [2.0, 4.0, 1.0]])
    assert embedding_std(z).item() == pytest.approx(1.0)  # median of (1, 2, 0)
    assert embedding_std(z, "mean").item() == pytest.approx(1.0)
    assert embedding_std(z[:, :2]).item() == pytest.approx(1.5)  # even K: middle mean
    # sets along a leading dimension: reduced per set, then averaged
    assert embedding_std(torch.stack([z, 3 * z])).item() == pytest.approx(2.0)
    assert embedding_std(z[:1]).item() == 0.0  # one cell: no spread, not NaN
    with pytest.raises(ValueError, match="reduction"):
        embedding_std(z, "max")
    with pytest.raises(ValueError, match="shape"):
        embedding_std(z[0])


def _small_module(**kw):
    torch.manual_seed(0)
    return ScJEPAModule(n_input=30, n_hidden=(32, 16), n_latent=8, n_projection=8, **kw)


def _counts(n=64, d=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(3 * torch.rand(n, d, generator=g), generator=g) + 1.0


def test_loss_reports_collapse_monitor():
    m = _small_module(n_views=3)
    x = _counts()
    inf, gen, out = m({"X": x}, compute_loss=True)
    n = x.shape[0]
    h = inf["h"].reshape(4, n, -1)
    z = inf["z"].reshape(4, n, -1)
    by_hand_h = np.mean([np.median(v.std(axis=0)) for v in h.detach().numpy()])
    by_hand_z = np.mean([np.median(v.std(axis=0)) for v in z.detach().numpy()])
    assert out.extra_metrics["proj_std"].item() == pytest.approx(by_hand_h, rel=1e-5)
    assert out.extra_metrics["latent_std"].item() == pytest.approx(by_hand_z, rel=1e-5)
    assert out.extra_metrics["proj_std"].dim() == 0


def _spread_and_pull(project, z, scale):
    """Projection spread and SIGReg's gradient on the latent in units of the latent's own
    spread (scale · ‖∂SIGReg/∂z‖), when the latent's spread around its centre is scaled."""
    zs = (z.mean(0) + (z - z.mean(0)) * scale).requires_grad_()
    h = project(zs)
    sigreg(h, 64, step=0).backward()
    return embedding_std(h).item(), scale * zs.grad.norm().item()


def test_projection_spread_does_not_follow_latent_scale():
    """The cause of the collapse: with the former LayerNorm head the projection's spread
    followed the latent's down, to where SIGReg's pull vanishes (∝ spread²); the
    batch-normalised head keeps both the spread and the pull."""
    m = _small_module()
    z = torch.randn(256, 8) * 0.5 + 2.0  # off-centre latent, as at initialisation
    bn = [_spread_and_pull(lambda u: m._project(u, batch_stats=True), z, s) for s in (1, 0.1)]
    assert bn[1][0] == pytest.approx(bn[0][0], rel=0.02)
    assert bn[1][1] == pytest.approx(bn[0][1], rel=0.02)
    torch.manual_seed(0)
    ln_head = torch.nn.Sequential(
        torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.ReLU(), torch.nn.Linear(8, 8)
    )
    ln = [_spread_and_pull(ln_head, z, s) for s in (1, 0.1)]
    assert ln[1][0] < 0.2 * ln[0][0]
    assert ln[1][1] < 0.1 * ln[0][1]


def test_projection_running_stats_outside_the_loss():
    m = _small_module(n_views=2)
    x = _counts()
    m.train()
    before = m.projector[1].running_mean.clone()
    m({"X": x}, compute_loss=True)  # training step: running statistics move
    assert not torch.equal(before, m.projector[1].running_mean)
    m.eval()
    after = m.projector[1].running_mean.clone()
    m({"X": x}, compute_loss=True)  # validation: batch statistics, running ones untouched
    torch.testing.assert_close(after, m.projector[1].running_mean, rtol=0, atol=0)
    one = m.embed(x[:1], representation="projection")  # one cell: running statistics
    assert one.shape == (1, 8) and torch.isfinite(one).all()
    torch.testing.assert_close(one, m.embed(x, representation="projection")[:1])


@pytest.mark.realdata
def test_scjepa_does_not_collapse_on_kang(data_dir):
    """Default ScJEPA, 2,000 Kang cells, batch 256, 2 epochs: the projection and the latent
    keep a spread no collapsed model reaches, and SIGReg leaves its point-mass value."""
    from cellpop.model import ScJEPA

    adata = ad.read_h5ad(data_dir / "kang2018_ctrl_8donors.h5ad")
    idx = np.sort(np.random.default_rng(0).choice(adata.n_obs, 2000, replace=False))
    adata = adata[idx].copy()
    ScJEPA.setup_anndata(adata, layer="counts")
    model = ScJEPA(adata)
    model.train(max_epochs=2, batch_size=256, accelerator="cpu", enable_progress_bar=False)
    hist = model.history
    for mode in ("train", "validation"):
        proj = float(hist[f"proj_std_{mode}"].values[-1, 0])
        latent = float(hist[f"latent_std_{mode}"].values[-1, 0])
        assert proj > PROJ_STD_FLOOR, (mode, proj)
        assert latent > LATENT_STD_FLOOR, (mode, latent)
    # SIGReg of a point mass at this batch size, with the same quadrature (≈103 at N = 256)
    point_mass = sigreg(torch.zeros(256, 64), 64, step=0).item()
    assert float(hist["sigreg_loss_train"].values[-1, 0]) < 0.9 * point_mass
    assert float(hist["sim_loss_train"].values[-1, 0]) > 1e-3  # not the trivial solution
