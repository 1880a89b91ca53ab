"""scJEPA torch module: one MLP autoencoder, masked views, JEPA + SIGReg + denoising losses.

Zhai et al., "scJEPA: dual-space self-supervised learning for single-cell representations",
§2 and Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from cellpop.nn import embedding_std, sigreg

__all__ = ["ScJEPAModule"]

_EVAL_SEED = 0  # directions/masks of the validation loss: fixed so epochs are comparable


def _mlp(sizes: Sequence[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers += [nn.LayerNorm(b), nn.ReLU()]
    return nn.Sequential(*layers)


def _projector(n_latent: int, n_projection: int) -> nn.Sequential:
    """Projection head Linear–BatchNorm1d–ReLU–Linear (LeJEPA reference projector).

    The batch normalisation (over cells, per feature) is what keeps SIGReg effective: it
    removes the offset common to all cells and rescales the between-cell spread of the latent,
    so the projection's spread does not follow the latent's scale down and SIGReg's gradient,
    divided by the batch std on its way back, does not vanish when that spread is small. A
    LayerNorm here (per cell, across features) cannot do this: with it the projection collapsed
    within the first training steps on Kang (issue 8; ``tests/test_scjepa_collapse.py``).
    """
    return nn.Sequential(
        nn.Linear(n_latent, n_projection),
        nn.BatchNorm1d(n_projection),
        nn.ReLU(),
        nn.Linear(n_projection, n_projection),
    )


class ScJEPAModule(BaseModuleClass):
    """Shared autoencoder of scJEPA with its training objective (paper eq. 1–9).

    Parameters
    ----------
    n_input
        Number of genes D.
    n_hidden
        Encoder hidden sizes (paper §3.1: [512, 512, 256, 256]); the decoder mirrors them.
    n_latent
        Latent size K (paper: 64).
    n_projection
        Projection-head size (paper: 64). The similarity and SIGReg losses act on the
        projections (as in LeJEPA); the decoder and ``get_latent_representation`` use the
        latent. The head is Linear–BatchNorm1d–ReLU–Linear, as the LeJEPA reference
        projector (the scJEPA paper does not describe it); batch statistics are taken over
        all V + 1 views of the minibatch together.
    n_views
        Number V of masked local views (paper §2.2: 8).
    mask_prob
        Masking probability p (paper §2.2: 0.5); each gene is kept with probability 1 − p.
    lambda_sigreg
        λ in (1 − λ)·L_sim + λ·L_SIGReg + γ·L_recon (paper eq. 9; no value given).
    gamma_recon
        γ in eq. 9 (no value given in the paper). 0 = "w/o reconstruction" ablation.
    use_jepa
        ``False`` drops L_sim and L_SIGReg ("w/o LeJEPA" ablation, a denoising autoencoder).
    num_directions
        Random directions M of SIGReg.
    normalize_counts
        ``True``: inputs are raw counts, normalised here to ``library_size`` total and log1p
        (paper §3.1). ``False``: inputs are already log-normalised.
    library_size
        Target total of the normalisation (paper: 10,000).
    """

    def __init__(
        self,
        n_input: int,
        n_hidden: Sequence[int] = (512, 512, 256, 256),
        n_latent: int = 64,
        n_projection: int = 64,
        n_views: int = 8,
        mask_prob: float = 0.5,
        lambda_sigreg: float = 0.05,
        gamma_recon: float = 10.0,
        use_jepa: bool = True,
        num_directions: int = 256,
        normalize_counts: bool = True,
        library_size: float = 1e4,
    ):
        super().__init__()
        self.n_views, self.mask_prob = n_views, mask_prob
        self.lambda_sigreg, self.gamma_recon, self.use_jepa = lambda_sigreg, gamma_recon, use_jepa
        self.num_directions = num_directions
        self.normalize_counts, self.library_size = normalize_counts, library_size
        hidden = list(n_hidden)
        self.encoder = _mlp([n_input, *hidden, n_latent], last_activation=False)
        self.projector = _projector(n_latent, n_projection)
        self.decoder = _mlp([n_latent, *hidden[::-1], n_input], last_activation=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Model input from raw minibatch values: log1p(x / total · library_size) for counts."""
        if not self.normalize_counts:
            return x
        total = x.sum(dim=-1, keepdim=True).clamp_min(1e-8)
        return torch.log1p(x / total * self.library_size)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    def _get_generative_input(self, tensors, inference_outputs) -> dict[str, torch.Tensor]:
        return {"z": inference_outputs["z"]}

    @auto_move_data
    def inference(self, x: torch.Tensor, n_views: int | None = None, seed: int | None = None):
        """Encode the global view and ``n_views`` masked views in one batched pass.

        Returns a dict with ``x`` (preprocessed input, (N, D)), ``z`` ((V+1)·N, K) and ``h``
        ((V+1)·N, n_projection); rows [0, N) are the global view, then view 1, 2, ... .
        """
        x = self.preprocess(x)
        v = self.n_views if n_views is None else n_views
        if v > 0:
            gen = None
            if seed is not None:
                gen = torch.Generator(device=x.device)
                gen.manual_seed(seed)
            keep = torch.rand((v, *x.shape), generator=gen, device=x.device) >= self.mask_prob
            views = torch.cat([x.unsqueeze(0), x.unsqueeze(0) * keep], dim=0)
            xin = views.reshape(-1, x.shape[-1])
        else:
            xin = x
        z = self.encoder(xin)
        return {"x": x, "z": z, "h": self._project(z, batch_stats=True)}

    def _project(self, z: torch.Tensor, batch_stats: bool) -> torch.Tensor:
        """Projection head, rows (R, K) -> (R, n_projection).

        ``batch_stats=True`` normalises with the statistics of these rows, in training and in
        evaluation alike (the loss, SIGReg included, is a statistic of the minibatch), and
        updates the running statistics only in training mode. ``batch_stats=False``, or a
        single row, uses the running statistics.
        """
        lin1, bn, act, lin2 = self.projector
        u = lin1(z)
        if batch_stats and u.shape[0] > 1:
            if bn.training:
                u = bn(u)
            else:
                u = nn.functional.batch_norm(u, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
        else:
            u = nn.functional.batch_norm(
                u, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
            )
        return lin2(act(u))

    @auto_move_data
    def generative(self, z: torch.Tensor):
        """Decode latents to log1p-normalised expression, shape (rows, D)."""
        return {"x_hat": self.decoder(z)}

    def loss(
        self,
        tensors,
        inference_outputs,
        generative_outputs,
        step: int | None = None,
    ) -> LossOutput:
        """scJEPA objective (eq. 9); ``step`` seeds the SIGReg directions (``None``: eval seed).

        L_sim (eq. 4) sums squared differences over the projection dimensions; L_recon (eq. 8)
        is the per-gene mean squared error (the paper calls it a mean squared error and reports
        it ≈0.1), averaged over cells, for the global view plus the mean over local views.

        ``extra_metrics`` also holds the collapse monitor: ``proj_std`` and ``latent_std``, the
        median over dimensions of the per-dimension std across the minibatch's cells of the
        projection (what L_sim and SIGReg act on) and of the latent, computed for each of the
        V + 1 views and averaged over views (:func:`cellpop.nn.embedding_std`). A collapsed
        model has both near 0 (≤ 0.005 measured on Kang); SIGReg's target has ``proj_std`` 1.
        """
        x = inference_outputs["x"]
        n = x.shape[0]
        v1 = inference_outputs["z"].shape[0] // n  # V + 1
        h = inference_outputs["h"].reshape(v1, n, -1)
        z = inference_outputs["z"].reshape(v1, n, -1)
        x_hat = generative_outputs["x_hat"].reshape(v1, n, -1)
        err = ((x_hat - x.unsqueeze(0)) ** 2).mean(dim=-1)  # (V+1, N)
        recon = err[0].mean() + (err[1:].mean() if v1 > 1 else 0.0)
        zero = torch.zeros((), device=x.device)
        sim, reg = zero, zero
        if self.use_jepa and v1 > 1:
            sim = ((h[1:] - h[:1]) ** 2).sum(dim=-1).mean()
            reg = sigreg(h, self.num_directions, step=_EVAL_SEED if step is None else step)
        total = self.gamma_recon * recon
        if self.use_jepa:
            total = total + (1 - self.lambda_sigreg) * sim + self.lambda_sigreg * reg
        return LossOutput(
            loss=total,
            n_obs_minibatch=n,
            extra_metrics={
                "sim_loss": sim.detach(),
                "sigreg_loss": reg.detach(),
                "recon_loss": recon.detach(),
                "proj_std": embedding_std(h),
                "latent_std": embedding_std(z),
            },
        )

    def forward(
        self,
        tensors,
        get_inference_input_kwargs=None,
        get_generative_input_kwargs=None,
        inference_kwargs=None,
        generative_kwargs=None,
        loss_kwargs=None,
        compute_loss=True,
    ):
        """Full pass; in eval mode the masks use a fixed seed (comparable validation loss)."""
        inference_kwargs = dict(inference_kwargs or {})
        if not self.training:
            inference_kwargs.setdefault("seed", _EVAL_SEED)
        return super().forward(
            tensors,
            get_inference_input_kwargs,
            get_generative_input_kwargs,
            inference_kwargs,
            generative_kwargs,
            loss_kwargs,
            compute_loss,
        )

    @torch.inference_mode()
    def embed(self, x: torch.Tensor, representation: str = "latent") -> torch.Tensor:
        """Global-view embedding of raw minibatch values: latent (N, K) or projection.

        The projection uses the head's running batch-norm statistics, whatever the mode.
        """
        z = self.encoder(self.preprocess(x))
        return z if representation == "latent" else self._project(z, batch_stats=False)

    @torch.inference_mode()
    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output of the global view, log1p-normalised units, shape (N, D)."""
        return self.decoder(self.encoder(self.preprocess(x)))
