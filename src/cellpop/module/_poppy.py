"""POPPY torch modules: cell-set and bulk encoders, contrastive loss, phenotype fine-tuning.

Paper 004 (POPPY), §2.2.1-2.2.5. No public code exists; every default not given by the paper is
marked as ours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from cellpop.nn import CellImportancePooling, embedding_std, multi_positive_contrastive_loss
from cellpop.nn._distributed import gather_cat


def _ffn(n_input: int, n_hidden: int, n_output: int, norm: bool = True) -> nn.Sequential:
    """The two-layer FFN of §2.2.1-2.2.2: Linear -> [BatchNorm1d] -> ReLU -> Linear.

    The batch normalisation (ours, on by default) standardises the pooled vectors across the
    samples of a batch: pooled cell embeddings and log-normalised bulk profiles differ little
    between samples compared with their common mean, and without it the encoders collapse to
    one point on the shared data (measured: ``embedding_std`` 0.015, see ``docs/poppy.md``).
    """
    mid = [nn.BatchNorm1d(n_hidden)] if norm else []
    return nn.Sequential(
        nn.Linear(n_input, n_hidden), *mid, nn.ReLU(), nn.Linear(n_hidden, n_output)
    )


def log_normalise(x: torch.Tensor, target_sum: float) -> torch.Tensor:
    """``log1p(x / sum(x) * target_sum)`` per profile (rows of ``(..., G)``)."""
    total = x.sum(-1, keepdim=True).clamp_min(1e-8)
    return torch.log1p(x / total * target_sum)


class GeneTokenEncoder(nn.Module):
    """Bulk profile -> gene tokens -> attention pooling over genes (§2.2.2).

    Gene ``g`` of a profile with log-normalised value ``v_g`` becomes the token
    ``h_g = v_g * e_g + c_g`` (a learned embedding ``e_g`` scaled by the expression, plus a
    learned per-gene offset ``c_g``; the paper uses a frozen pretrained gene-token model,
    BulkFormer, which is not available here). Tokens are pooled with eq. 2's linear attention
    score, softmax over genes.

    Parameters
    ----------
    n_genes
        Genes of the bulk input ``m_b``.
    n_token
        Token dimension ``d_b`` (ours: 32).
    target_sum
        Library size of the log-normalisation (ours: 1e4, as scanpy's ``normalize_total``).
    """

    def __init__(self, n_genes: int, n_token: int = 32, target_sum: float = 1e4):
        super().__init__()
        self.target_sum = target_sum
        self.embedding = nn.Parameter(torch.randn(n_genes, n_token) / n_token**0.5)
        self.offset = nn.Parameter(torch.zeros(n_genes, n_token))
        self.pool = CellImportancePooling(n_token, 1, score="linear")
        self.n_output = n_token

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, G)`` raw profiles -> pooled ``(B, d_b)`` and gene weights ``(B, G)``."""
        v = log_normalise(x.float(), self.target_sum)
        tokens = v[..., None] * self.embedding + self.offset
        pooled, w = self.pool(tokens)
        return pooled, w[..., 0]


class FrozenCellEncoder(nn.Module):
    """A frozen single-cell encoder applied to a bulk profile (§3.2's "single-cell model applied
    to bulk" variant), e.g. the encoder MLP of a trained :class:`cellpop.model.ScJEPA`.

    Parameters
    ----------
    sizes
        Layer sizes ``[n_genes, *hidden, n_latent]`` of the encoder (ScJEPA's ``_mlp``).
    target_sum
        Library size of the encoder's log-normalisation (ScJEPA: 1e4).
    """

    def __init__(self, sizes: list[int], target_sum: float = 1e4):
        super().__init__()
        from cellpop.module._scjepa import _mlp

        self.target_sum = target_sum
        self.encoder = _mlp(list(sizes), last_activation=False)
        self.encoder.requires_grad_(False)
        self.n_output = int(sizes[-1])

    def train(self, mode: bool = True):
        """Always eval: the encoder is frozen (BatchNorm statistics included)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(B, G)`` raw profiles in the encoder's gene order -> ``(B, n_latent)``."""
        return self.encoder(log_normalise(x.float(), self.target_sum)), None


class POPPYModule(BaseModuleClass):
    """Cell-set encoder ``E_c`` and bulk encoder ``E_b`` trained with eqs. 3-5.

    Parameters
    ----------
    n_cell_input
        Features per cell ``d_c`` (a per-cell embedding, §2.2.1).
    n_genes
        Genes of the bulk input ``m_b``.
    n_latent
        Shared embedding dimension ``d`` (ours: 64).
    n_hidden
        Hidden width of both two-layer FFNs (ours: 128).
    n_token
        Gene-token dimension ``d_b`` of :class:`GeneTokenEncoder` (ours: 32).
    temperature
        ``tau_cl`` (eq. 3; not given in the paper, ours: 0.1).
    bulk_backbone
        ``None``: the gene-token encoder; else ``{"sizes": [...], "target_sum": float}`` of a
        :class:`FrozenCellEncoder` (the single-cell-model-on-bulk variant).
    batch_norm
        BatchNorm1d inside both FFNs (ours, see :func:`_ffn`).
    """

    def __init__(
        self,
        n_cell_input: int,
        n_genes: int,
        n_latent: int = 64,
        n_hidden: int = 128,
        n_token: int = 32,
        temperature: float = 0.1,
        bulk_backbone: dict | None = None,
        batch_norm: bool = True,
    ):
        super().__init__()
        self.temperature = temperature
        self.cell_pool = CellImportancePooling(n_cell_input, 1, score="linear")
        self.cell_ffn = _ffn(n_cell_input, n_hidden, n_latent, batch_norm)
        if bulk_backbone is None:
            self.bulk_backbone = GeneTokenEncoder(n_genes, n_token)
        else:
            self.bulk_backbone = FrozenCellEncoder(**bulk_backbone)
        self.bulk_ffn = _ffn(self.bulk_backbone.n_output, n_hidden, n_latent, batch_norm)
        self.n_latent = n_latent
        self.phenotype: CrossAttentionHead | None = None  # set by fine-tuning (§2.2.5)

    def add_phenotype_head(self, n_ref: int, n_ref_features: int, **kwargs) -> None:
        """Create the :class:`CrossAttentionHead` (fine-tuning, or ``load`` of a fine-tuned
        model before its state is restored)."""
        self.phenotype = CrossAttentionHead(self.n_latent, n_ref, n_ref_features, **kwargs)

    def on_load(self, model, **kwargs) -> None:
        """Rebuild the phenotype head of a fine-tuned model (``model.phenotype_spec_``)."""
        spec = getattr(model, "phenotype_spec_", None)
        if spec is not None:
            self.add_phenotype_head(**spec["head"])

    # ------------------------------------------------------------------ encoders
    @auto_move_data
    def embed_sets(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell sets ``(B, n, d_c)`` -> ``z_c`` ``(B, d)`` (unit norm) and weights ``(B, n)``."""
        pooled, w = self.cell_pool(x, mask)
        return F.normalize(self.cell_ffn(pooled), dim=-1), w[..., 0]

    @auto_move_data
    def embed_cells(self, x: torch.Tensor) -> torch.Tensor:
        """Each cell ``(N, d_c)`` as a one-cell set (weight 1): ``(N, d)`` unit-norm."""
        return F.normalize(self.cell_ffn(x), dim=-1)

    @auto_move_data
    def cell_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Attention logits ``f(x) = w^T x + b`` of cells ``(N, d_c)``: ``(N,)``."""
        return self.cell_pool.logits(x)[..., 0]

    @auto_move_data
    def embed_bulk(self, x: torch.Tensor) -> torch.Tensor:
        """Raw bulk profiles ``(B, G)`` -> ``z_b`` ``(B, d)`` unit-norm."""
        h, _ = self.bulk_backbone(x)
        return F.normalize(self.bulk_ffn(h), dim=-1)

    # ------------------------------------------------------------------ scvi-tools API
    def _get_inference_input(self, tensors: dict) -> dict:
        return {"x": tensors["x"], "mask": tensors["mask"], "bulk": tensors["bulk"],
                "bulk_mask": tensors["bulk_mask"]}  # fmt: skip

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def pick_bulk(self, bulk: torch.Tensor, bulk_mask: torch.Tensor) -> torch.Tensor:
        """One bulk profile per sample ``(B, G)`` among its ``K`` slots ``(B, K, G)``.

        Training: uniformly among the valid slots (pseudobulk or in-silico mixtures, §2.1);
        evaluation: the first valid slot (the pseudobulk when present).
        """
        if self.training:
            slot = torch.multinomial(bulk_mask.float(), 1)[:, 0]
        else:
            slot = bulk_mask.float().argmax(1)
        return bulk[torch.arange(len(bulk), device=bulk.device), slot]

    @auto_move_data
    def inference(self, x, mask, bulk, bulk_mask) -> dict:
        """``x`` ``(1, B, n, d_c)`` sets, ``bulk`` ``(B, K, G)`` -> ``z_c``, ``z_b`` ``(B, d)``."""
        z_c, w = self.embed_sets(x[0], mask[0])
        z_b = self.embed_bulk(self.pick_bulk(bulk, bulk_mask))
        return {"z_cell": z_c, "z_bulk": z_b, "weights": w}

    def generative(self) -> dict:
        """No generative part."""
        return {}

    def loss(
        self,
        tensors: dict,
        inference_outputs: dict,
        generative_outputs: dict,
        similarity: torch.Tensor | None = None,
    ) -> LossOutput:
        """Eq. 5 with the batch's rows and columns of ``similarity`` ``(n_samples, n_samples)``
        (``None``: the identity, i.e. CLIP-style pairs only). Under DDP (inside
        :func:`cellpop.nn.global_batch`) the batch is the samples of all ranks."""
        z_c, z_b = inference_outputs["z_cell"], inference_outputs["z_bulk"]
        s = tensors["sample"]
        # under DDP the negatives are the samples of every rank (no-ops otherwise)
        z_c, z_b, s = gather_cat(z_c), gather_cat(z_b), gather_cat(s)
        if similarity is None:
            batch_s = torch.eye(len(s), device=z_c.device)
        else:
            batch_s = similarity.to(z_c.device)[s][:, s]
        loss = multi_positive_contrastive_loss(z_c, z_b, batch_s, self.temperature)
        matched = (z_c * z_b).sum(1).mean()
        extra = {
            "contrastive_loss": loss.detach(),
            "embedding_std": embedding_std(torch.cat([z_c, z_b])),  # collapse monitor
            "cell_std": embedding_std(z_c),
            "bulk_std": embedding_std(z_b),
            "matched_cosine": matched.detach(),
        }
        n_local = len(tensors["sample"])
        return LossOutput(loss=loss, n_obs_minibatch=n_local, extra_metrics=extra)


class CrossAttentionHead(nn.Module):
    """The phenotype head of §2.2.5: a bulk embedding queries reference cells.

    ``q = W_Q z_b``, ``k_i = W_K x_i``, ``alpha_i = softmax_i(q^T k_i / tau_ft)``,
    ``v_i = W_V x_i`` (a scalar per cell), ``y_hat = sum_i alpha_i v_i + b``.

    Parameters
    ----------
    n_bulk
        Dimension of the bulk embedding ``z_b``.
    n_ref, n_ref_features
        Reference cells ``N_ref`` and their embedding dimension (held as a buffer, filled by
        the caller).
    n_key
        Query/key dimension (ours: ``n_bulk``).
    temperature
        ``tau_ft`` (ours: ``sqrt(n_key)``, the usual scaled dot-product).
    """

    def __init__(
        self,
        n_bulk: int,
        n_ref: int,
        n_ref_features: int,
        n_key: int | None = None,
        temperature: float | None = None,
    ):
        super().__init__()
        n_key = n_key or n_bulk
        self.register_buffer("reference", torch.zeros(n_ref, n_ref_features))
        self.temperature = float(temperature or n_key**0.5)
        self.query = nn.Linear(n_bulk, n_key, bias=False)
        self.key = nn.Linear(n_ref_features, n_key, bias=False)
        self.value = nn.Linear(n_ref_features, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, z_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z_b`` ``(B, d)`` -> logits ``(B,)``, attention ``(B, N_ref)``, values ``(N_ref,)``."""
        att = self.query(z_b) @ self.key(self.reference).T / self.temperature
        alpha = torch.softmax(att, dim=1)
        v = self.value(self.reference)[:, 0]
        return alpha @ v + self.bias, alpha, v


class POPPYPhenotypeModule(BaseModuleClass):
    """Fine-tuning wrapper (§2.2.5): bulk encoder + ``poppy.phenotype`` head, binary CE.

    The bulk encoder is fine-tuned with the head; the cell encoder receives no gradient (the
    reference cells are fixed embeddings), matching "we freeze the cell encoder" (§3.5).

    Parameters
    ----------
    poppy
        A :class:`POPPYModule` whose ``phenotype`` is a :class:`CrossAttentionHead`.
    """

    def __init__(self, poppy: POPPYModule):
        super().__init__()
        if poppy.phenotype is None:
            raise ValueError("poppy.phenotype is not set: build a CrossAttentionHead first.")
        self.poppy = poppy

    @auto_move_data
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw bulk ``(B, G)`` -> logits ``(B,)``, attention ``(B, N_ref)``, values ``(N_ref,)``."""
        return self.poppy.phenotype(self.poppy.embed_bulk(x))

    def _get_inference_input(self, tensors: dict) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    @auto_move_data
    def inference(self, x: torch.Tensor) -> dict:
        """Logits of the bulk profiles ``x`` ``(B, G)``."""
        logit, alpha, _ = self.predict(x)
        return {"logit": logit, "alpha": alpha}

    def generative(self) -> dict:
        """No generative part."""
        return {}

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict) -> LossOutput:
        """Binary cross-entropy of §2.2.5 (labels in ``tensors["labels"]``, 0 or 1)."""
        logit = inference_outputs["logit"]
        y = tensors[REGISTRY_KEYS.LABELS_KEY].reshape(-1).float()
        loss = F.binary_cross_entropy_with_logits(logit, y)
        acc = ((logit > 0).float() == y).float().mean()
        alpha = inference_outputs["alpha"]
        entropy = -(alpha * alpha.clamp_min(1e-12).log()).sum(1).mean()
        extra = {"bce": loss.detach(), "accuracy": acc, "attention_entropy": entropy.detach()}
        return LossOutput(loss=loss, n_obs_minibatch=len(y), extra_metrics=extra)
