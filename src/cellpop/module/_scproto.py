"""scProto torch module: scPoli-style CVAE + K prototypes trained with batch-wise SwAV.

Loss (scProto eq. 5, weights from §4.1)::

    L = swav_weight * L_batchSwAV + propagation_weight * L_propagation + cvae_weight * L_CVAE

with ``L_CVAE`` = NB reconstruction + ``kl_weight`` * KL (mean over cells), ``L_batchSwAV`` the
swapped-prediction loss between each cell and a random kNN neighbour computed separately within
each batch/study and averaged (eq. 3), ``L_propagation`` = ``max_i min_j d(z_i, p_j)`` (eq. 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn
from torch.distributions import Normal, kl_divergence

from cellpop.data import PARTNER_BATCH_KEY, PARTNER_X_KEY
from cellpop.nn._cvae import (
    ConditionalDecoder,
    ConditionalEncoder,
    ConditionEmbedding,
    nb_reconstruction_loss,
)
from cellpop.nn._monitor import embedding_std
from cellpop.nn._swav import (
    cosine_scores,
    propagation_loss,
    sinkhorn_knopp,
    swapped_prediction_loss,
    target_agreement,
)


class ScProtoModule(BaseModuleClass):
    """CVAE encoder/decoder with learnable prototypes on the unit sphere.

    Parameters
    ----------
    n_input
        Number of genes.
    n_batch
        Number of conditions (studies/batches); 1 when no ``batch_key``.
    n_prototypes
        Number of prototypes ``K``.
    n_latent
        Latent dimension (scProto §4.1: 8).
    n_hidden
        Hidden units (default ``ceil(sqrt(n_input))``, scPoli).
    embedding_dim
        Condition-embedding dimension (scPoli: 10).
    dropout_rate
        Dropout (scPoli: 0.05).
    temperature
        Softmax temperature of the swapped prediction (SwAV: 0.1).
    sinkhorn_epsilon
        Sinkhorn entropic regularisation (scProto §4.1: 0.02).
    sinkhorn_iterations
        Sinkhorn iterations (SwAV: 3).
    hard_assignment
        Use one-hot Sinkhorn targets (scProto §4.1 "hard clustering option").
    sinkhorn_min_group_ratio
        Batch groups of a minibatch with fewer than ``ceil(ratio * K)`` cells take their targets
        from one Sinkhorn over the whole minibatch instead of their own (``0``: always per
        group, eq. 3 as written). Default 1.0: a group needs at least one cell per prototype.
    swav_weight, propagation_weight, cvae_weight
        Loss weights (scProto §4.1: 1, 1.0, 0.01). ``swav_weight = propagation_weight = 0`` gives
        the plain scPoli-style CVAE (ablation).
    """

    def __init__(
        self,
        n_input: int,
        n_batch: int,
        n_prototypes: int,
        n_latent: int = 8,
        n_hidden: int | None = None,
        embedding_dim: int = 10,
        dropout_rate: float = 0.05,
        temperature: float = 0.1,
        sinkhorn_epsilon: float = 0.02,
        sinkhorn_iterations: int = 3,
        hard_assignment: bool = True,
        sinkhorn_min_group_ratio: float = 1.0,
        swav_weight: float = 1.0,
        propagation_weight: float = 1.0,
        cvae_weight: float = 0.01,
    ):
        super().__init__()
        self.n_input = n_input
        self.n_batch = max(int(n_batch), 1)
        self.n_latent = n_latent
        self.temperature = temperature
        self.sinkhorn_epsilon = sinkhorn_epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.hard_assignment = hard_assignment
        if not sinkhorn_min_group_ratio >= 0:
            raise ValueError(
                f"sinkhorn_min_group_ratio must be >= 0, got {sinkhorn_min_group_ratio!r}"
            )
        self.sinkhorn_min_group = math.ceil(sinkhorn_min_group_ratio * n_prototypes)
        self.swav_weight = swav_weight
        self.propagation_weight = propagation_weight
        self.cvae_weight = cvae_weight
        self.condition_embedding = ConditionEmbedding(self.n_batch, embedding_dim)
        self.encoder = ConditionalEncoder(n_input, n_latent, embedding_dim, n_hidden, dropout_rate)
        self.decoder = ConditionalDecoder(n_latent, n_input, embedding_dim, n_hidden, dropout_rate)
        # per-gene-per-condition log inverse dispersion
        self.px_r = nn.Parameter(torch.randn(n_input, self.n_batch))
        self.prototypes = nn.Parameter(F.normalize(torch.randn(n_prototypes, n_latent), dim=1))

    @property
    def uses_prototype_losses(self) -> bool:
        """Whether SwAV/propagation terms are active (False for the CVAE-only ablation)."""
        return self.swav_weight > 0 or self.propagation_weight > 0

    def normalized_prototypes(self) -> torch.Tensor:
        """Prototypes projected on the unit sphere, shape ``(K, n_latent)``."""
        return F.normalize(self.prototypes, dim=1)

    # ------------------------------------------------------------------ scvi module API
    def _get_inference_input(self, tensors, **kwargs):
        return {
            "x": tensors[REGISTRY_KEYS.X_KEY],
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
            "x_pos": tensors.get(PARTNER_X_KEY),
            "batch_pos": tensors.get(PARTNER_BATCH_KEY),
        }

    def _get_generative_input(self, tensors, inference_outputs, **kwargs):
        return {
            "z": inference_outputs["z"],
            "library": inference_outputs["library"],
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
        }

    def _encode(self, x: torch.Tensor, batch_index: torch.Tensor):
        cond = self.condition_embedding(batch_index.long().view(-1))
        return self.encoder(torch.log1p(x), cond)

    @auto_move_data
    def inference(self, x, batch_index, x_pos=None, batch_pos=None, n_samples: int = 1):
        """Encode counts ``x`` (B, G); returns ``qz``, sampled ``z``, ``qz_mean`` and library.

        When ``x_pos`` (the kNN partners' counts) and ``batch_pos`` (their conditions) are
        given, the partners' latent means are returned as ``qz_mean_pos``.
        """
        mean, var = self._encode(x, batch_index)
        qz = Normal(mean, var.sqrt())
        z = qz.rsample() if n_samples == 1 else qz.rsample((n_samples,))
        out = {"qz": qz, "z": z, "qz_mean": mean, "library": x.sum(-1, keepdim=True)}
        if x_pos is not None:
            out["qz_mean_pos"] = self._encode(
                x_pos, batch_index if batch_pos is None else batch_pos
            )[0]
        return out

    @auto_move_data
    def generative(self, z, library, batch_index):
        """Decode ``z`` (B, d) into NB parameters for the cells' conditions."""
        b = batch_index.long().view(-1)
        cond = self.condition_embedding(b)
        proportions = self.decoder(z, cond)
        # per-condition inverse dispersion; an unseen condition gets the mean over conditions
        theta_all = torch.exp(self.px_r).T  # (n_batch, G)
        theta_all = torch.cat([theta_all, theta_all.mean(0, keepdim=True)])
        theta = theta_all[b.clamp(max=self.n_batch)]  # (B, G)
        return {"proportions": proportions, "theta": theta, "library": library}

    def loss(
        self,
        tensors,
        inference_outputs,
        generative_outputs,
        kl_weight: float = 1.0,
    ):
        """Total scProto loss (eq. 5); components and the collapse monitor as extra metrics.

        ``latent_std`` (:func:`cellpop.nn.embedding_std`) is the median over latent dimensions of
        the per-dimension std of the cells' latent means in the minibatch (SwAV's embedding).
        ``target_agreement`` (:func:`cellpop.nn._swav.target_agreement`) is the fraction of
        Sinkhorn targets (both views) equal to the cell's nearest prototype.
        """
        x = tensors[REGISTRY_KEYS.X_KEY]
        rec = nb_reconstruction_loss(
            x,
            generative_outputs["proportions"],
            generative_outputs["library"],
            generative_outputs["theta"],
        )
        qz = inference_outputs["qz"]
        kl = kl_divergence(qz, Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))).sum(-1)
        cvae = (rec + kl_weight * kl).mean()
        total = self.cvae_weight * cvae
        z_mean = inference_outputs["qz_mean"]
        extra = {"cvae_loss": cvae.detach(), "latent_std": embedding_std(z_mean)}
        if self.uses_prototype_losses and "qz_mean_pos" in inference_outputs:
            protos = self.prototypes
            z_t = inference_outputs["qz_mean"]
            z_s = inference_outputs["qz_mean_pos"]
            groups = tensors[REGISTRY_KEYS.BATCH_KEY].view(-1)
            scores_t = cosine_scores(z_t, protos)
            scores_s = cosine_scores(z_s, protos)
            kw = {
                "epsilon": self.sinkhorn_epsilon,
                "n_iters": self.sinkhorn_iterations,
                "groups": groups,
                "hard": self.hard_assignment,
                "min_group_size": self.sinkhorn_min_group,
            }
            q_t = sinkhorn_knopp(scores_t, **kw)
            q_s = sinkhorn_knopp(scores_s, **kw)
            swav = swapped_prediction_loss(
                scores_t, scores_s, q_t, q_s, temperature=self.temperature, groups=groups
            )
            prop = propagation_loss(z_t, protos)
            total = total + self.swav_weight * swav + self.propagation_weight * prop
            agree = (target_agreement(scores_t, q_t) + target_agreement(scores_s, q_s)) / 2
            extra.update(
                {
                    "swav_loss": swav.detach(),
                    "propagation_loss": prop.detach(),
                    "target_agreement": agree,
                }
            )
        return LossOutput(
            loss=total,
            reconstruction_loss=rec,
            kl_local=kl,
            extra_metrics=extra,
        )

    @torch.inference_mode()
    def decode_proportions(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latent points with the MEAN condition embedding (scProto §3.4).

        Parameters
        ----------
        z
            Latent points, shape ``(n, n_latent)``.

        Returns
        -------
        Gene proportions, shape ``(n, n_genes)``, rows sum to 1.
        """
        cond = self.condition_embedding.mean_embedding().expand(z.shape[0], -1)
        return self.decoder(z, cond)
