"""PopulationJEPA torch module: set encoders, EMA teacher, pointer-token predictor (SC-JEPA §3).

"Learning population-level representations with joint embedding predictive architectures"
(SC-JEPA), §3 (JEPA objective, context/target subsets, predictor, pointer tokens, variance
regularisation, population embedding) and §4 (the DINOv2-like JEA baseline).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from cellpop.nn._jepa import (
    compact_sets,
    ema_update_,
    jepa_l1_loss,
    masked_mean,
    masked_vicreg_variance,
    pointer_tokens_pca,
)
from cellpop.nn._set_transformer import SetTransformer
from cellpop.nn._swav import cosine_scores, sinkhorn_knopp

__all__ = ["PopulationJEPAModule", "SetEncoder"]

_BATCH_KEYS = ("x", "mask", "target", "dataset")


class SetEncoder(nn.Module):
    """Per-element two-layer MLP, then a set Transformer (SC-JEPA §3 encoder).

    Parameters
    ----------
    n_input
        Features per element ``d_in``.
    d_model
        Token width.
    n_hidden
        Hidden width of the element MLP (``Linear -> GELU -> Linear``).
    n_layers, n_heads, mlp_ratio, dropout
        Transformer depth, heads, MLP width multiple and dropout.

    Notes
    -----
    ``forward(x, mask)``: ``x`` ``(B, n, d_in)``, ``mask`` ``(B, n)`` bool -> tokens
    ``(B, n, d_model)`` (zeros at padding).
    """

    def __init__(
        self,
        n_input: int,
        d_model: int,
        n_hidden: int,
        n_layers: int,
        n_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(n_input, n_hidden), nn.GELU(), nn.Linear(n_hidden, d_model)
        )
        self.transformer = SetTransformer(d_model, n_layers, n_heads, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(B, n, d_model)``."""
        return self.transformer(self.mlp(x), mask)


class PopulationJEPAModule(BaseModuleClass):
    """SC-JEPA: context encoder, EMA target encoder, pointer-token predictor over cell sets.

    Each training batch holds ``B`` sample sets of ``n`` cells, already split by the data layer
    into target (~20 %) and context (~80 %) elements (SC-JEPA §3, "Context and target subsets").

    ``objective="jepa"`` (§3): the context encoder (student, trained by gradient) encodes the
    context elements only; the target encoder (EMA of the student, no gradient) encodes the
    target elements only (§3 writes ``s_T = encoder(T_i)``); its tokens are layer-normalised
    (no affine, I-JEPA) and detached. Dataset tokens (a learned vector per dataset) are added to
    the context tokens; pointer tokens are the target elements' features after PCA eigenvector
    masking within the set (:func:`~cellpop.nn.pointer_tokens_pca`, 70 % of the target variance
    removed) passed through a two-layer MLP plus a learned pointer-type vector. The predictor
    (4-layer set Transformer) reads ``[context tokens ; pointer tokens]`` and its outputs at the
    pointer positions are the predictions, one per target element (no pooling). Loss:
    ``L1(prediction, LN(sg(target tokens))) + variance_weight * L_var(context tokens)``.

    ``objective="jea"`` (§4, DINOv2-like baseline from the same encoder): the student encodes a
    local view (the 20 % target elements) and a global view (the 80 % context elements); the
    EMA teacher encodes the global view. Each view is mean-pooled and passed through a DINO head
    (MLP -> L2-normalised bottleneck -> cosine scores against ``n_prototypes`` prototypes); the
    teacher's scores are centred by Sinkhorn-Knopp (DINOv2) at temperature
    ``teacher_temperature``; the student minimises the cross-entropy of its softmax at
    ``student_temperature`` to the teacher's assignment, averaged over its local and global
    views (the paper has one global view, so the global-global pair is kept, unlike DINO's
    multi-crop which skips same-view pairs). No predictor, pointer or dataset token. The same
    variance term applies to the global view's tokens. ``l1_loss`` is then a monitor only: L1
    between the layer-normalised pooled local student and global teacher embeddings.

    Parameters
    ----------
    n_input
        Features per cell (genes of a log1p matrix, or an embedding's width).
    n_datasets
        Number of dataset codes (rows of the dataset-token table); 1 for a single dataset.
    objective
        ``"jepa"`` (SC-JEPA) or ``"jea"`` (DINOv2-like baseline).
    d_model
        Token width. Not given in the paper; 128 (a CPU-trainable width; SampleCLR's large
        preset uses 128).
    n_heads
        Attention heads (not given; 4, head width 32).
    n_layers
        Encoder Transformer depth (paper §3: 8).
    n_hidden
        Hidden width of the per-element two-layer MLPs (encoder and pointer MLP); not given,
        ``2 * d_model`` = 256 by default (``None``).
    predictor_layers
        Predictor depth (paper §3: 4).
    predictor_dim
        Predictor width (not given; ``None`` = ``d_model``; I-JEPA uses a narrower predictor).
    predictor_heads
        Predictor heads (``None`` = ``n_heads``).
    mlp_ratio
        Transformer MLP width multiple (ViT / I-JEPA: 4).
    dropout
        Dropout in the Transformers (I-JEPA: 0).
    var_removed
        Fraction of the target elements' variance removed for pointer tokens (paper §3: 0.7).
    variance_weight
        Weight of the variance term (not given in the paper, which adds it: 1.0).
    variance_gamma
        Variance target γ (not given; VICReg's 1.0).
    variance_statistic
        ``"var"``: hinge on the per-dimension variance, the formula SC-JEPA §3 writes for its
        implementation (default); ``"std"``: VICReg's hinge on sqrt(Var + 1e-4).
    n_prototypes, head_hidden, head_bottleneck
        DINO head of ``objective="jea"`` (not given; 256 prototypes, hidden 256, bottleneck 64,
        scaled down from DINOv2's 65536 / 2048 / 256 for datasets of tens to thousands of
        samples).
    teacher_temperature, student_temperature
        DINO temperatures (DINOv2: 0.07 teacher after warm-up, 0.1 student).

    Notes
    -----
    Training choices this module does not fix, recommended to the training plan: AdamW,
    lr 1e-4, weight decay 0.05 (I-JEPA uses AdamW with weight decay 0.04-0.4 and a peak lr of
    1e-3 for batch 2048; a smaller lr suits the smaller batches of sample sets), EMA momentum
    0.996 -> 1.0 linearly over training (I-JEPA, :func:`~cellpop.nn.ema_momentum`), applied by
    calling :meth:`update_teacher` after every optimiser step. The teacher starts as an exact
    copy of the student, never receives gradients and stays in eval mode.
    """

    def __init__(
        self,
        n_input: int,
        n_datasets: int = 1,
        objective: Literal["jepa", "jea"] = "jepa",
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 8,
        n_hidden: int | None = None,
        predictor_layers: int = 4,
        predictor_dim: int | None = None,
        predictor_heads: int | None = None,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        var_removed: float = 0.7,
        variance_weight: float = 1.0,
        variance_gamma: float = 1.0,
        variance_statistic: Literal["var", "std"] = "var",
        n_prototypes: int = 256,
        head_hidden: int = 256,
        head_bottleneck: int = 64,
        teacher_temperature: float = 0.07,
        student_temperature: float = 0.1,
    ):
        super().__init__()
        if objective not in ("jepa", "jea"):
            raise ValueError(f"objective must be 'jepa' or 'jea', got {objective!r}.")
        if n_datasets < 1:
            raise ValueError(f"n_datasets must be >= 1, got {n_datasets}.")
        if variance_statistic not in ("var", "std"):
            raise ValueError(
                f"variance_statistic must be 'var' or 'std', got {variance_statistic!r}."
            )
        self.n_input, self.n_datasets, self.objective = n_input, n_datasets, objective
        self.d_model = d_model
        self.var_removed = var_removed
        self.variance_weight, self.variance_gamma = variance_weight, variance_gamma
        self.variance_statistic = variance_statistic
        self.teacher_temperature = teacher_temperature
        self.student_temperature = student_temperature
        n_hidden = 2 * d_model if n_hidden is None else n_hidden
        self.encoder = SetEncoder(n_input, d_model, n_hidden, n_layers, n_heads, mlp_ratio, dropout)
        if objective == "jepa":
            pd = d_model if predictor_dim is None else predictor_dim
            ph = n_heads if predictor_heads is None else predictor_heads
            self.dataset_tokens = nn.Embedding(n_datasets, d_model)
            nn.init.zeros_(self.dataset_tokens.weight)
            self.predictor_in = nn.Linear(d_model, pd)
            self.pointer_mlp = nn.Sequential(
                nn.Linear(n_input, n_hidden), nn.GELU(), nn.Linear(n_hidden, pd)
            )
            self.pointer_type = nn.Parameter(torch.zeros(pd))
            nn.init.trunc_normal_(self.pointer_type, std=0.02)
            self.predictor = SetTransformer(pd, predictor_layers, ph, mlp_ratio, dropout)
            self.predictor_out = nn.Linear(pd, d_model)
            self.head = None
            self.prototypes = None
        else:
            self.head = nn.Sequential(
                nn.Linear(d_model, head_hidden),
                nn.GELU(),
                nn.Linear(head_hidden, head_hidden),
                nn.GELU(),
                nn.Linear(head_hidden, head_bottleneck),
            )
            self.prototypes = nn.Parameter(torch.randn(n_prototypes, head_bottleneck))
        self.teacher_encoder = copy.deepcopy(self.encoder)
        self.teacher_head = copy.deepcopy(self.head)
        self.teacher_prototypes = (
            None if self.prototypes is None else nn.Parameter(self.prototypes.detach().clone())
        )
        for p in self._teacher_parameters():
            p.requires_grad_(False)
        self.teacher_encoder.eval()

    # ------------------------------------------------------------------ teacher
    def _teacher_parameters(self):
        yield from self.teacher_encoder.parameters()
        if self.teacher_head is not None:
            yield from self.teacher_head.parameters()
        if self.teacher_prototypes is not None:
            yield self.teacher_prototypes

    def train(self, mode: bool = True):
        """Set train/eval mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher_encoder.eval()
        if self.teacher_head is not None:
            self.teacher_head.eval()
        return self

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA step of the teacher towards the student: ``t <- m t + (1 - m) s``.

        Call after every optimiser step (I-JEPA); ``momentum`` from
        :func:`~cellpop.nn.ema_momentum`.
        """
        ema_update_(self.teacher_encoder, self.encoder, momentum)
        if self.head is not None:
            ema_update_(self.teacher_head, self.head, momentum)
            self.teacher_prototypes.lerp_(self.prototypes.detach(), 1.0 - momentum)

    # ---------------------------------------------------------------- embedding
    @auto_move_data
    def embed_tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-cell contextual tokens ``(B, n, d_model)`` from the context encoder.

        ``x`` ``(B, n, n_input)``, ``mask`` ``(B, n)`` bool (True = real cell; ``None`` = all);
        padded positions are 0.
        """
        return self.encoder(x, mask)

    @auto_move_data
    def embed_population(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Population embeddings ``(B, d_model)``: masked mean of :meth:`embed_tokens` (§3)."""
        return masked_mean(self.encoder(x, mask), mask)

    # ---------------------------------------------------------------- scvi hooks
    def _get_inference_input(self, tensors: dict) -> dict:
        missing = [k for k in _BATCH_KEYS if k not in tensors]
        if missing:
            raise KeyError(f"PopulationJEPA batch lacks key(s) {missing}; it needs {_BATCH_KEYS}.")
        return {k: tensors[k] for k in _BATCH_KEYS}

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def generative(self) -> dict:
        """No generative part."""
        return {}

    def _check_batch(self, x, mask, target, dataset) -> None:
        """Shape and dtype checks (free); value checks only for host (CPU) tensors.

        Reading a value (``dataset.max()``, ``target.any()``) from an accelerator tensor blocks
        until the device catches up, every step. On an accelerator the values are therefore
        not read here: :class:`~cellpop.model.PopulationJEPA` validates the dataset codes when
        it builds the data module (an unseen category raises there) and the data layer
        guarantees at least one target and one context cell per set
        (:func:`~cellpop.data.split_target` with ``min_cells_per_sample >= 2``).
        """
        if x.ndim != 3 or x.shape[-1] != self.n_input:
            raise ValueError(
                f"batch['x'] must be (B, n, {self.n_input}), got shape {tuple(x.shape)}."
            )
        for name, m in (("mask", mask), ("target", target)):
            if m.dtype != torch.bool or tuple(m.shape) != tuple(x.shape[:2]):
                raise ValueError(
                    f"batch['{name}'] must be bool of shape {tuple(x.shape[:2])}, got "
                    f"{m.dtype} {tuple(m.shape)}."
                )
        if dataset.shape != x.shape[:1]:
            raise ValueError(f"batch['dataset'] must have shape ({x.shape[0]},).")
        if x.device.type != "cpu":
            return
        if dataset.numel() and (int(dataset.min()) < 0 or int(dataset.max()) >= self.n_datasets):
            raise ValueError(
                f"batch['dataset'] codes must lie in [0, {self.n_datasets}), got "
                f"[{int(dataset.min())}, {int(dataset.max())}]."
            )
        if not bool((target & mask).any()) or not bool((mask & ~target).any()):
            raise ValueError("batch needs real context and target cells (check 'target').")

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        target: torch.Tensor,
        dataset: torch.Tensor,
    ) -> dict:
        """Encode a split batch (keys of the batch contract, see the class docstring).

        Returns a dict with ``context_tokens`` ``(B, m_c, d_model)`` and ``context_mask``
        ``(B, m_c)`` (compacted context elements), plus, for ``jepa``, ``prediction`` and
        ``target_tokens`` ``(B, m_t, d_model)`` with ``target_mask`` ``(B, m_t)``; for ``jea``,
        the student scores ``student_local``/``student_global`` ``(B, K)``, the teacher scores
        ``teacher_global`` ``(B, K)`` and pooled embeddings for the L1 monitor.
        """
        self._check_batch(x, mask, target, dataset)
        target = target & mask
        context = mask & ~target
        c_mask, (xc,) = compact_sets(context, x)
        ctx = self.encoder(xc, c_mask)
        out = {"context_tokens": ctx, "context_mask": c_mask}
        if self.objective == "jepa":
            pointers, _ = pointer_tokens_pca(x, mask, target, self.var_removed)
            t_mask, (xt, pt) = compact_sets(target, x, pointers)
            with torch.no_grad():
                tgt = self.teacher_encoder(xt, t_mask)
            ctx_in = self.predictor_in(ctx + self.dataset_tokens(dataset)[:, None, :])
            ptr_in = self.pointer_mlp(pt) + self.pointer_type
            seq = torch.cat([ctx_in, ptr_in], dim=1)
            seq_mask = torch.cat([c_mask, t_mask], dim=1)
            pred = self.predictor_out(self.predictor(seq, seq_mask)[:, ctx.shape[1] :])
            out.update(prediction=pred, target_tokens=tgt, target_mask=t_mask)
        else:
            t_mask, (xt,) = compact_sets(target, x)
            local = masked_mean(self.encoder(xt, t_mask), t_mask)
            glob = masked_mean(ctx, c_mask)
            with torch.no_grad():
                t_glob = masked_mean(self.teacher_encoder(xc, c_mask), c_mask)
                t_scores = cosine_scores(self.teacher_head(t_glob), self.teacher_prototypes)
            out.update(
                student_local=cosine_scores(self.head(local), self.prototypes),
                student_global=cosine_scores(self.head(glob), self.prototypes),
                teacher_global=t_scores,
                pooled_local=local,
                pooled_teacher=t_glob,
            )
        return out

    def _dino_loss(self, out: dict) -> torch.Tensor:
        q = sinkhorn_knopp(out["teacher_global"], epsilon=self.teacher_temperature, n_iters=3)
        losses = [
            -(q * F.log_softmax(out[k] / self.student_temperature, dim=-1)).sum(-1).mean()
            for k in ("student_local", "student_global")
        ]
        return (losses[0] + losses[1]) / 2

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict) -> LossOutput:
        """Objective and collapse monitor.

        ``extra_metrics`` (detached scalars): ``l1_loss``, ``variance_loss``, ``context_std``
        (mean over dimensions of the per-dimension std of all real context tokens of the
        batch), ``population_std`` (mean over dimensions of the per-dimension std, over the
        ``B`` sets, of each set's mean context token; 0 when ``B = 1``), and for ``jea``
        ``dino_loss``.
        """
        out = inference_outputs
        ctx, c_mask = out["context_tokens"], out["context_mask"]
        var_loss = masked_vicreg_variance(
            ctx, c_mask, self.variance_gamma, statistic=self.variance_statistic
        )
        extra = {}
        if self.objective == "jepa":
            l1 = jepa_l1_loss(out["prediction"], out["target_tokens"], out["target_mask"])
            main = l1
        else:
            main = self._dino_loss(out)
            with torch.no_grad():
                l1 = jepa_l1_loss(
                    F.layer_norm(out["pooled_local"], (self.d_model,)), out["pooled_teacher"]
                )
            extra["dino_loss"] = main.detach()
        total = main + self.variance_weight * var_loss
        with torch.no_grad():
            real = ctx[c_mask]
            context_std = real.std(dim=0).mean() if real.shape[0] > 1 else ctx.new_zeros(())
            pop = masked_mean(ctx, c_mask)
            population_std = pop.std(dim=0).mean() if pop.shape[0] > 1 else ctx.new_zeros(())
        extra.update(
            l1_loss=l1.detach(),
            variance_loss=var_loss.detach(),
            context_std=context_std,
            population_std=population_std,
        )
        return LossOutput(loss=total, n_obs_minibatch=ctx.shape[0], extra_metrics=extra)
