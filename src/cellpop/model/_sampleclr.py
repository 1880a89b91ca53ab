"""SampleCLR: contrastive sample (donor) representations from sets of cells.

Paper: "Great patients embed alike" (SampleCLR), /shared/papers/002. Facts used here are from the
paper's §3, Algorithm 1 and Appendix A.4-A.5.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager

from cellpop.data import check_finite, iter_row_batches, sample_codes
from cellpop.model.base import INFERENCE_BATCH_SIZE, SampleModel
from cellpop.model.base._docs import doc
from cellpop.module import SampleCLRModule

from ._sampleclr_targets import per_sample_targets, validate_supervised_keys

logger = logging.getLogger(__name__)

# App. A.4 of the paper: "tiny" below 200 samples, "large" above. Depths are those of the
# public code's configs (configs/models/{tiny,large}.json at 918d812) counted as residual hidden
# blocks: its ``DynamicNetwork(num_layers=L)`` (encoder, importance heads) has L - 1 of them
# (tiny 4 -> 3, large 16 -> 15, importance heads 2 -> 1) and its supervised heads
# ``build_mlp(num_layers=L)`` have L - 2 hidden layers (tiny 2 -> 0, large 3 -> 1).
PRESETS = {
    "tiny": dict(
        n_layers=3, n_hidden=32, n_output=32, n_heads=1, aggregator_hidden=32,
        aggregator_layers=1, head_hidden=16, head_layers=0, graph_temperature=0.2, lr=3e-4,
    ),
    "large": dict(
        n_layers=15, n_hidden=128, n_output=192, n_heads=8, aggregator_hidden=128,
        aggregator_layers=1, head_hidden=128, head_layers=1, graph_temperature=0.1, lr=3e-5,
    ),
}  # fmt: skip

#: Expected overlap of two views at the paper's regime: 1,000-2,000 cells per view (App. A.4) of
#: ~4,900 cells per donor (Stephenson, Table 2) are 20-41 % of the donor; the default keeps these
#: fractions.
VIEW_FRACTION = (0.2, 0.4)
#: The paper's view sizes (App. A.4), the largest default.
VIEW_CAP = (1000, 2000)


def default_view_size(sample_sizes) -> tuple[int, int]:
    """Default ``(min, max)`` cells per view, derived from the samples' sizes.

    With ``N`` the median number of cells per sample: ``min = floor(0.2 N)`` and
    ``max = floor(0.4 N)``, capped at the paper's ``(1000, 2000)`` (App. A.4), with
    ``1 <= min <= max``. Two views of ``n`` cells drawn independently without replacement from a
    sample of ``N`` cells share ``n^2 / N`` cells on average, i.e. a fraction ``n / N`` of each
    view: 20-40 % for a median-sized sample, the paper's regime (1,000-2,000 of ~4,900 cells per
    donor: 20-41 %). Larger samples overlap less; smaller ones more (a sample with fewer than
    ``n`` cells is resampled with replacement). A fixed 250-500 cells of Stephenson's 500-cell
    donors overlap 75 % on average; measured effect of the rule:
    docs/benchmarks.md, "SampleCLR view size".

    Parameters
    ----------
    sample_sizes
        Number of cells of every sample, shape ``(n_samples,)``.

    Returns
    -------
    ``(min, max)`` ints, e.g. ``(100, 200)`` for 500-cell samples, ``(980, 1960)`` for 4,900
    and ``(1000, 2000)`` from 5,000 cells on.

    Raises
    ------
    ValueError
        If ``sample_sizes`` is empty or holds a value < 1.
    """
    sizes = np.asarray(sample_sizes, dtype=np.float64).reshape(-1)
    if sizes.size == 0 or not np.all(sizes >= 1):
        raise ValueError(f"sample_sizes must be >= 1 cells each, got {sizes[:10].tolist()}")
    n = float(np.median(sizes))
    lo = max(1, min(VIEW_CAP[0], int(np.floor(VIEW_FRACTION[0] * n))))
    hi = max(lo, min(VIEW_CAP[1], int(np.floor(VIEW_FRACTION[1] * n))))
    return lo, hi


class SampleCLR(SampleModel):
    """Sample (donor) representations by contrasting random cell subsets of each sample.

    Two random subsets of cells per sample are pooled by ``H`` cell-importance heads and encoded
    by a residual MLP; the X-Sample contrastive loss pulls subsets of the same sample together
    (optionally towards a prior sample similarity). Optional supervised heads (classification,
    ordinal regression, regression) are trained in a second stage.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    model_size
        ``"tiny"`` or ``"large"`` preset (App. A.4); ``None`` picks ``"tiny"`` below 200 samples.
    n_heads, n_hidden, n_layers, n_output, aggregator_hidden, aggregator_layers, head_hidden, head_layers
        Override the preset's architecture; ``*_layers`` count residual hidden blocks between
        an input and an output layer (presets: the public code's depths, ``PRESETS``).
        ``n_layers`` gains one block when there are no supervised heads ("to equalise the
        number of parameters", App. A.4; the public code does not do this).
    temperature
        Contrastive temperature (App. A.4: 0.1).
    graph_temperature
        Temperature of the prior similarity (App. A.4: 0.2 tiny, 0.1 large).
    diversity_weight
        Weight of the head-diversity penalty (0: off).

    Examples
    --------
    >>> cellpop.model.SampleCLR.setup_anndata(adata, sample_key="donor_id", obsm_key="X_pca")
    >>> model = cellpop.model.SampleCLR(adata)
    >>> model.train()
    >>> donors = model.get_sample_representation(key_added="X_sampleclr")
    """

    _module_cls = SampleCLRModule
    _default_batch_size = 32
    _default_patience = 150  # App. A.4

    def __init__(
        self,
        adata: AnnData,
        model_size: Literal["tiny", "large"] | None = None,
        n_heads: int | None = None,
        n_hidden: int | None = None,
        n_layers: int | None = None,
        n_output: int | None = None,
        aggregator_hidden: int | None = None,
        aggregator_layers: int | None = None,
        head_hidden: int | None = None,
        head_layers: int | None = None,
        temperature: float = 0.1,
        graph_temperature: float | None = None,
        diversity_weight: float = 0.0,
    ):
        super().__init__(adata)
        codes, names = self._samples(self.adata_manager)
        if model_size is None:
            model_size = "tiny" if len(names) < 200 else "large"
        if model_size not in PRESETS:
            raise ValueError(f"model_size must be 'tiny' or 'large', got {model_size!r}")
        p = dict(PRESETS[model_size])
        given = dict(
            n_heads=n_heads, n_hidden=n_hidden, n_layers=n_layers, n_output=n_output,
            aggregator_hidden=aggregator_hidden, aggregator_layers=aggregator_layers,
            head_hidden=head_hidden, head_layers=head_layers, graph_temperature=graph_temperature,
        )  # fmt: skip
        p.update({k: v for k, v in given.items() if v is not None})
        targets, info = per_sample_targets(adata, self._setup_args, codes, len(names))
        self.target_info_ = info
        if not info["classification"] and not info["ordinal"] and not info["regression"]:
            if n_layers is None:
                p["n_layers"] += 1
        self.model_size_ = model_size
        self.default_lr_ = p.pop("lr")
        n_input = self._input(check=False).shape[1]
        self.module = self._module_cls(
            n_input=n_input,
            classification={k: len(v) for k, v in info["classification"].items()},
            ordinal={k: len(v) for k, v in info["ordinal"].items()},
            regression=list(info["regression"]),
            temperature=temperature,
            diversity_weight=diversity_weight,
            **p,
        )
        self._model_summary_string = (
            f"SampleCLR ({model_size}): {len(names)} samples, {n_input} input features, "
            f"{self.module.n_heads} head(s), {self.module.n_output}-d sample vectors, "
            f"supervised heads: {list(self.module.heads.keys()) or 'none'}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    @doc.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        *,
        sample_key: str,
        layer: str | None = None,
        obsm_key: str | None = None,
        batch_key: str | None = None,
        classification_keys: list[str] | None = None,
        regression_keys: list[str] | None = None,
        ordinal_regression_keys: list[str] | None = None,
        ordinal_orders: dict[str, list] | None = None,
        min_cells_per_sample: int = 10,
        **kwargs,
    ):
        """Register ``adata`` for SampleCLR.

        Parameters
        ----------
        adata
            AnnData, one row per cell.
        %(param_sample_key)s Categories without cells are ignored.
        layer
            Layer of per-cell features used as given (``None`` with no ``obsm_key``: ``adata.X``).
            The model does not normalise; pass log1p-normalised values or, better, an embedding.
            Genes are matched by name on queries and ``load``.
        obsm_key
            Per-cell embedding in ``adata.obsm`` (e.g. ``"X_pca"``, ``"X_scVI"``): the paper's
            input. Mutually exclusive with ``layer``.
        %(param_batch_key)s Recorded for metrics and for the validation split (whole batches
            go to one side); SampleCLR has no batch correction.
        classification_keys, regression_keys, ordinal_regression_keys
            Sample-level ``adata.obs`` columns for supervised heads. Each must be constant within
            a sample. Samples with a missing value are kept for the contrastive loss and
            excluded from that head's loss.
        ordinal_orders
            ``{key: [level_0, level_1, ...]}`` orders of ordinal keys whose column is not an
            ordered categorical.
        min_cells_per_sample
            Samples with fewer cells raise an error.

        Raises
        ------
        KeyError
            If ``sample_key``, ``obsm_key``, ``layer``, ``batch_key`` or a supervised key is missing.
        ValueError
            On NaN/inf input, NaN in ``sample_key``/``batch_key``, fewer than 2 samples, a sample
            with fewer than ``min_cells_per_sample`` cells, a supervised key that varies within a
            sample or has only missing values, a non-numeric regression key, or an ordinal key
            with an unknown order or values outside it.
        TypeError
            On an unknown keyword.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        cls._check_samples(adata, sample_key, min_cells_per_sample)
        codes, _ = sample_codes(adata, sample_key)
        validate_supervised_keys(
            adata, sample_key, codes, classification_keys, regression_keys,
            ordinal_regression_keys, ordinal_orders,
        )  # fmt: skip
        cls._register(
            adata, setup_method_args, layer=layer, obsm_key=obsm_key,
            categorical={
                REGISTRY_KEYS.SAMPLE_KEY: (sample_key, "sample_key"),
                REGISTRY_KEYS.BATCH_KEY: (batch_key, "batch_key"),
            },
            transfer_kwargs=kwargs,
        )  # fmt: skip

    # ------------------------------------------------------------------ train
    def _default_max_epochs(self) -> int:
        """200 epochs per stage (an epoch = every training sample seen once)."""
        return 200

    def _plan_defaults(self, max_epochs: int) -> dict:
        """AdamW, lr of the preset (App. A.4: 3e-4 tiny / 3e-5 large), weight decay 1e-4,
        10 warm-up epochs then cosine decay (App. A.4)."""
        return dict(
            optimizer="AdamW", lr=self.default_lr_, weight_decay=1e-4, scheduler="warmup_cosine",
            warmup_epochs=10,
        )  # fmt: skip

    def _stratify(self, stratify_key: str | None) -> np.ndarray | None:
        """Per-sample label of ``stratify_key`` (default: the first supervised key)."""
        info = self.target_info_
        keys = [*info["classification"], *info["ordinal"]]
        key = stratify_key if stratify_key is not None else (keys[0] if keys else None)
        if key is None:
            return None
        codes, _ = self._samples(self.adata_manager)
        from cellpop.data import check_obs_key

        check_obs_key(self.adata, key, "stratify_key")
        return self.adata.obs[key].astype(str).groupby(codes).first().to_numpy()

    @doc.dedent
    def train(
        self,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        batch_size: int | None = None,
        train_size: float = 0.9,
        early_stopping: bool = True,
        early_stopping_patience: int | None = None,
        load_to_device: bool | Literal["auto"] = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        max_epochs_supervised: int | None = None,
        n_cells: tuple[int, int] | None = None,
        small_sample: Literal["replace", "mask"] = "replace",
        prior_similarity: pd.DataFrame | None = None,
        supervised: bool = True,
        **trainer_kwargs,
    ) -> None:
        """Train: contrastive stage, then (with supervised heads) the joint stage.

        %(train_notes)s

        Parameters
        ----------
        %(param_train_common)s

        Model defaults: ``max_epochs=None``: 200 per stage; ``batch_size``: 32 samples per step
        (capped to the training samples); ``early_stopping_patience``: 150 (App. A.4);
        ``plan_kwargs``: AdamW, the preset's lr (App. A.4: 3e-4 tiny / 3e-5 large), weight decay
        1e-4, 10 warm-up epochs then cosine decay per stage, ``frozen_epochs=2`` (joint stage:
        first epochs train only the heads, App. A.4) and ``supervised_weight=1.0``.
        ``datasplitter_kwargs``: ``group_by_batch=True`` (a batch's samples go to one side) and
        ``stratify_key`` (default: the first classification/ordinal key; App. A.6.1).
        max_epochs_supervised
            Joint-stage epochs (``None``: ``max_epochs``); only with supervised heads.
        n_cells
            ``(min, max)`` cells per subset; each step draws ``n`` uniformly. ``None``:
            :func:`default_view_size` of the samples' sizes, ``floor(0.2 N), floor(0.4 N)``
            with ``N`` the median cells per sample, capped at the paper's ``(1000, 2000)``
            (App. A.4), so that two views share 20-40 % of their cells as in the paper. The value
            used is stored in ``view_size_``. Samples with fewer cells are resampled with
            replacement.
        small_sample
            ``"replace"`` (paper) or ``"mask"`` (pad and mask small samples).
        prior_similarity
            Optional samples x samples DataFrame (index and columns = sample ids) of prior
            similarities, e.g. ``np.exp(-D / 5)`` of GloScope distances ``D``: the X-Sample
            targets. ``None``: InfoNCE.
        supervised
            Run the joint stage when supervised heads exist.

        Raises
        ------
        ValueError
            If ``max_epochs < 1`` or ``prior_similarity`` does not cover the samples.
        """
        max_epochs = self._check_epochs(max_epochs)
        codes, names = self._samples(self.adata_manager)
        prior = self._prior_tensor(prior_similarity, names)
        targets, _ = per_sample_targets(self.adata, self._setup_args, codes, len(names))
        if n_cells is None:
            n_cells = default_view_size(np.bincount(codes, minlength=len(names)))
        self.view_size_ = (int(n_cells[0]), int(n_cells[1]))
        split = dict(datasplitter_kwargs or {})
        stratify = self._stratify(split.pop("stratify_key", None))
        dm = self._set_datamodule(
            batch_size or self._default_batch_size, train_size, load_to_device, n_cells=n_cells,
            small_sample=small_sample, sample_targets=targets, stratify=stratify, **split,
        )  # fmt: skip
        plan_kwargs = dict(plan_kwargs or {})
        frozen_epochs = plan_kwargs.pop("frozen_epochs", 2)
        supervised_weight = plan_kwargs.pop("supervised_weight", 1.0)
        base = {**self._plan_defaults(max_epochs), **plan_kwargs, "prior": prior}
        stages = [(max_epochs, {**base, "supervised_weight": 0.0})]
        if supervised and self.module.has_supervised_heads:
            n2 = max_epochs if max_epochs_supervised is None else int(max_epochs_supervised)
            joint = {**base, "supervised_weight": supervised_weight}
            if frozen_epochs:
                joint.update(frozen=("pool", "encoder"), frozen_epochs=frozen_epochs)
            stages.append((n2, joint))
        for n_epochs, plan in stages:
            if n_epochs > 0:
                self._run_stage(
                    dm, plan, n_epochs, accelerator, devices, early_stopping,
                    early_stopping_patience, trainer_kwargs,
                )  # fmt: skip
        self.prior_similarity_ = prior_similarity

    @staticmethod
    def _prior_tensor(prior: pd.DataFrame | None, names: pd.Index) -> torch.Tensor | None:
        if prior is None:
            return None
        if not isinstance(prior, pd.DataFrame):
            raise ValueError("prior_similarity must be a samples x samples DataFrame")
        missing = names.difference(prior.index.astype(str)).union(
            names.difference(prior.columns.astype(str))
        )
        if len(missing):
            raise ValueError(
                f"prior_similarity lacks {len(missing)} sample(s): {list(missing[:5])}"
            )
        p = prior.copy()
        p.index, p.columns = p.index.astype(str), p.columns.astype(str)
        values = p.loc[names, names].to_numpy(dtype=np.float32)
        check_finite(values, "prior_similarity")
        return torch.as_tensor(values)

    # ------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def _sample_vectors(
        self,
        manager: AnnDataManager,
        n_cells: int = 1000,
        cell_selection: Literal["centrality", "random"] = "centrality",
        batch_size: int = 32,
    ) -> pd.DataFrame:
        """Sample vectors ``(n_samples, n_output)``, columns ``latent_i``, from a fixed cell set.

        ``n_cells``: cells per sample (App. A.5: 1000; smaller samples are resampled with
        replacement, seeded by ``scvi.settings.seed``). ``cell_selection``: ``"centrality"``,
        the ``n_cells`` cells of lowest eigenvector centrality in the sample's 15-NN graph
        (App. A.5), or ``"random"``, a seeded random subset. ``batch_size``: samples per pass.
        """
        sets, idx, names = self._fixed_sets(manager, n_cells, cell_selection)
        self.module.eval()
        out = []
        for start in range(0, len(names), batch_size):
            x = sets.gather(torch.as_tensor(idx[start : start + batch_size])).to(self.device)
            z, _ = self.module.embed(x)
            out.append(z.float().cpu().numpy())
        z = np.concatenate(out)
        return pd.DataFrame(z, index=names, columns=[f"latent_{i}" for i in range(z.shape[1])])

    def _embed_batch(self, batch: dict) -> torch.Tensor:
        """Each cell as a one-cell set: every head's weight is 1, so the vector is
        ``f(concat_h x_c)``, where the cell alone would place its sample."""
        return self.module.embed_cells(batch[REGISTRY_KEYS.X_KEY])

    @torch.inference_mode()
    @doc.dedent
    def get_cell_importance(
        self,
        adata: AnnData | None = None,
        kind: Literal["relative", "probability", "logit"] = "relative",
    ) -> np.ndarray:
        """Cell-importance weights of every head, over all cells of each sample.

        Parameters
        ----------
        %(param_adata)s
        kind
            ``"probability"``: softmax over all cells of the cell's sample (sums to 1 per sample
            and head); ``"relative"``: that probability x the sample's number of cells
            (1 = an average cell of its sample, comparable across samples); ``"logit"``: raw.

        Returns
        -------
        ``(n_cells, n_heads)`` float array.

        Raises
        ------
        RuntimeError
            If the model is not trained.
        ValueError
            Unknown ``kind``.
        """
        self._check_trained()
        manager = self._manager(adata, samples=True)
        codes, _ = self._samples(manager)
        self.module.eval()
        blocks = iter_row_batches(self._input(manager), INFERENCE_BATCH_SIZE, self.device)
        logits = torch.cat([self.module.pool.logits(x).float().cpu() for x in blocks])
        logits = logits.numpy().astype(np.float64)
        if kind == "logit":
            return logits
        df = pd.DataFrame(logits)
        mx = df.groupby(codes).transform("max").to_numpy()
        e = np.exp(logits - mx)
        denom = pd.DataFrame(e).groupby(codes).transform("sum").to_numpy()
        prob = e / denom
        if kind == "probability":
            return prob
        if kind == "relative":
            return prob * np.bincount(codes)[codes][:, None]
        raise ValueError(f"kind must be 'relative', 'probability' or 'logit', got {kind!r}")

    @torch.inference_mode()
    def predict(
        self, adata: AnnData | None = None, return_proba: bool = False, **kwargs
    ) -> pd.DataFrame:
        """Predictions of the supervised heads per sample.

        Parameters
        ----------
        adata
            ``None``: the training AnnData.
        return_proba
            Also return class probabilities (columns ``<key>:<class>``) for classification and
            ``P(y > level_k)`` for ordinal heads.
        **kwargs
            Passed to :meth:`get_sample_representation` (cell selection).

        Returns
        -------
        DataFrame indexed by sample id: one column per supervised key (class label, ordinal
        level, or regression value in the key's units).

        Raises
        ------
        RuntimeError
            If the model is not trained or has no supervised heads.
        """
        if not self.module.has_supervised_heads:
            raise RuntimeError("this model has no supervised heads (see setup_anndata keys)")
        z_df = self.get_sample_representation(adata, **kwargs)
        z = torch.as_tensor(z_df.to_numpy(), device=self.device)
        preds = {k: v.float().cpu().numpy() for k, v in self.module.predict_heads(z).items()}
        info = self.target_info_
        out = pd.DataFrame(index=z_df.index)
        for key, cats in info["classification"].items():
            logit = preds[f"cls_{key}"]
            out[key] = pd.Categorical(np.asarray(cats)[logit.argmax(1)], categories=cats)
            if return_proba:
                p = torch.softmax(torch.as_tensor(logit), 1).numpy()
                for j, c in enumerate(cats):
                    out[f"{key}:{c}"] = p[:, j]
        for key, levels in info["ordinal"].items():
            p = 1.0 / (1.0 + np.exp(-preds[f"ord_{key}"]))
            out[key] = pd.Categorical(
                np.asarray(levels)[(p > 0.5).sum(1)], categories=levels, ordered=True
            )
            if return_proba:
                for j, c in enumerate(levels[:-1]):
                    out[f"{key}:>{c}"] = p[:, j]
        for key, (mean, std) in info["regression"].items():
            out[key] = preds[f"reg_{key}"][:, 0] * std + mean
        return out
