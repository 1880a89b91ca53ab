"""SampleCLR: contrastive sample (donor) representations from sets of cells.

Paper: "Great patients embed alike" (SampleCLR), /shared/papers/002. Facts used here are from the
paper's §3, Algorithm 1 and Appendix A.4-A.5.
"""

from __future__ import annotations

import logging
import zlib
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalObsField, LayerField, ObsmField
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from cellpop.data import (
    SampleSetDataModule,
    SampleSets,
    check_finite,
    check_min_samples,
    check_obs_key,
    get_input_matrix,
    inference_cells,
    split_samples,
)
from cellpop.model.base import SampleMixin
from cellpop.module import SampleCLRModule
from cellpop.tl._sample_adata import _sample_codes as sample_codes
from cellpop.train import SSLTrainingPlan

from ._sampleclr_targets import per_sample_targets, validate_supervised_keys

logger = logging.getLogger(__name__)

# App. A.4 of the paper: "tiny" below 200 samples, "large" above.
PRESETS = {
    "tiny": dict(
        n_layers=4, n_hidden=32, n_output=32, n_heads=1, aggregator_hidden=32,
        aggregator_layers=2, head_hidden=16, head_layers=2, graph_temperature=0.2, lr=3e-4,
    ),
    "large": dict(
        n_layers=16, n_hidden=128, n_output=192, n_heads=8, aggregator_hidden=128,
        aggregator_layers=2, head_hidden=128, head_layers=3, graph_temperature=0.1, lr=3e-5,
    ),
}  # fmt: skip


def _seed() -> int:
    """``scvi.settings.seed``, or 0 when it was never set (draws stay reproducible)."""
    return 0 if settings.seed is None else int(settings.seed)


def _concat_history(first: dict, second: dict) -> dict:
    """Concatenate two training histories, keeping every key of either (epochs continue)."""
    out = {}
    offset = max((len(v) for v in first.values()), default=0)
    for key in dict.fromkeys([*first, *second]):
        parts = []
        if key in first:
            parts.append(first[key])
        if key in second:
            nxt = second[key].copy()
            nxt.index = nxt.index + offset
            parts.append(nxt)
        out[key] = pd.concat(parts)
    return out


class SampleCLR(SampleMixin, BaseModelClass):
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
        Override the preset's architecture. ``n_layers`` gains one block when there are no
        supervised heads ("to equalise the number of parameters", App. A.4).
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
    _training_plan_cls = SSLTrainingPlan

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
        codes, names = sample_codes(adata, self.sample_key)
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
        n_input = get_input_matrix(
            adata, layer=self._setup_args["layer"], obsm_key=self._setup_args["obsm_key"]
        ).shape[1]
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
    def setup_anndata(
        cls,
        adata: AnnData,
        sample_key: str,
        obsm_key: str | None = None,
        layer: str | None = None,
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
        sample_key
            ``adata.obs`` column of sample (donor) ids. Categories without cells are ignored.
        obsm_key
            Per-cell embedding in ``adata.obsm`` (e.g. ``"X_pca"``, ``"X_scVI"``): the paper's
            input. Mutually exclusive with ``layer``.
        layer
            Layer of per-cell features used as given (``None`` with no ``obsm_key``: ``adata.X``).
            The model does not normalise; pass log1p-normalised values or, better, an embedding.
        batch_key
            Technical batch column; recorded for metrics (SampleCLR has no batch correction).
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
            On NaN/inf input, fewer than 2 samples, a sample with fewer than
            ``min_cells_per_sample`` cells, a supervised key that varies within a sample or has
            only missing values, a non-numeric regression key, or an ordinal key with an unknown
            order or values outside it.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        codes, names = sample_codes(adata, sample_key)
        check_min_samples(len(names), sample_key)
        counts = np.bincount(codes, minlength=len(names))
        small = names[counts < min_cells_per_sample]
        if len(small):
            raise ValueError(
                f"{len(small)} sample(s) have fewer than min_cells_per_sample="
                f"{min_cells_per_sample} cells: {list(small[:10])} "
                f"(cells: {counts[counts < min_cells_per_sample][:10].tolist()}). "
                "Remove them or lower min_cells_per_sample."
            )
        X = get_input_matrix(adata, layer=layer, obsm_key=obsm_key)
        check_finite(X, f"obsm[{obsm_key!r}]" if obsm_key else f"layer {layer!r}")
        check_obs_key(adata, batch_key, "batch_key")
        validate_supervised_keys(
            adata, sample_key, codes, classification_keys, regression_keys,
            ordinal_regression_keys, ordinal_orders,
        )  # fmt: skip
        x_field = (
            ObsmField(REGISTRY_KEYS.X_KEY, obsm_key)
            if obsm_key is not None
            else LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=False)
        )
        fields = [x_field]
        if batch_key is not None:
            fields.append(CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key))
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    # ------------------------------------------------------------------ train
    def train(
        self,
        max_epochs: int | None = None,
        max_epochs_supervised: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        batch_size: int = 32,
        n_cells: tuple[int, int] = (1000, 2000),
        small_sample: Literal["replace", "mask"] = "replace",
        prior_similarity: pd.DataFrame | None = None,
        lr: float | None = None,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 10,
        frozen_epochs: int = 2,
        supervised: bool = True,
        supervised_weight: float = 1.0,
        early_stopping: bool = False,
        early_stopping_patience: int = 150,
        load_to_device: bool | Literal["auto"] = "auto",
        **trainer_kwargs,
    ) -> None:
        """Train: contrastive stage, then (with supervised heads) the joint stage.

        Parameters
        ----------
        max_epochs
            Contrastive-stage epochs (an epoch = each training sample seen once);
            ``None``: 200.
        max_epochs_supervised
            Joint-stage epochs (``None``: ``max_epochs``); only with supervised heads.
        accelerator, devices
            Lightning device selection (``"auto"``: the GPU when there is one).
        train_size
            Fraction of samples for training; the rest (if at least 2 samples) is the
            validation set of ``validation_loss``. The split is by sample and seeded by
            ``scvi.settings.seed``.
        batch_size
            Samples per step (capped to the number of training samples).
        n_cells
            ``(min, max)`` cells per subset; each step draws ``n`` uniformly (App. A.4:
            1000-2000). Samples with fewer cells are resampled with replacement.
        small_sample
            ``"replace"`` (paper) or ``"mask"`` (pad and mask small samples).
        prior_similarity
            Optional samples x samples DataFrame (index and columns = sample ids) of prior
            similarities, e.g. ``np.exp(-D / 5)`` of GloScope distances ``D``: the X-Sample
            targets. ``None``: InfoNCE.
        lr
            AdamW learning rate (``None``: preset, App. A.4: 3e-4 tiny / 3e-5 large).
        weight_decay
            AdamW weight decay (App. A.4: 1e-4).
        warmup_epochs
            Linear warm-up epochs at the start of each stage, then cosine decay (App. A.4: 10).
        frozen_epochs
            First epochs of the joint stage in which only the supervised heads train (App. A.4: 2).
        supervised
            Run the joint stage when supervised heads exist.
        supervised_weight
            Weight of the supervised losses in the joint stage.
        early_stopping, early_stopping_patience
            Stop a stage when ``validation_loss`` has not improved for ``patience`` epochs
            (App. A.4: 150). Needs a validation set.
        load_to_device
            Keep the cell matrix on the accelerator (``"auto"``: when it fits).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`.

        Raises
        ------
        ValueError
            If ``prior_similarity`` does not cover the samples, or early stopping is asked
            without a validation set.
        """
        max_epochs = 200 if max_epochs is None else int(max_epochs)
        sets, codes, names = self._sample_sets(self.adata)
        train_s, val_s = split_samples(len(names), train_size, seed=_seed())
        if early_stopping and len(val_s) == 0:
            raise ValueError(
                "early_stopping needs a validation set of at least 2 samples: lower train_size."
            )
        prior = self._prior_tensor(prior_similarity, names)
        targets, _ = per_sample_targets(self.adata, self._setup_args, codes, len(names))
        dm = SampleSetDataModule(
            sets, train_s, val_s, batch_size=batch_size, n_cells=tuple(n_cells),
            small_sample=small_sample, sample_targets=targets, load_to_device=load_to_device,
            seed=_seed(),
        )  # fmt: skip
        trainer_kwargs.setdefault("benchmark", False)
        trainer_kwargs.setdefault("log_every_n_steps", 1)
        trainer_kwargs.setdefault("early_stopping_monitor", "validation_loss")
        lr = self.default_lr_ if lr is None else lr
        stages = [("contrastive", max_epochs, 0.0, 0)]
        if supervised and self.module.has_supervised_heads:
            n2 = max_epochs if max_epochs_supervised is None else int(max_epochs_supervised)
            stages.append(("joint", n2, supervised_weight, frozen_epochs))
        for _stage, n_epochs, sup_w, frozen in stages:
            if n_epochs <= 0:
                continue
            plan = SSLTrainingPlan(
                self.module, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                max_epochs=n_epochs, frozen_modules=("pool", "encoder") if frozen else (),
                frozen_epochs=frozen, prior=prior, supervised_weight=sup_w,
            )  # fmt: skip
            runner = TrainRunner(
                self, training_plan=plan, data_splitter=dm, max_epochs=n_epochs,
                accelerator=accelerator, devices=devices, early_stopping=early_stopping,
                early_stopping_patience=early_stopping_patience, **trainer_kwargs,
            )  # fmt: skip
            previous = self.history_ if self.is_trained_ else None
            self.is_trained_ = False  # let the runner write this stage's full history
            runner()
            if previous:
                self.history_ = _concat_history(previous, self.history_)
        self.train_samples_ = names[train_s].tolist()
        self.validation_samples_ = names[val_s].tolist()
        self.prior_similarity_ = prior_similarity

    def _sample_sets(self, adata: AnnData) -> tuple[SampleSets, np.ndarray, pd.Index]:
        codes, names = sample_codes(adata, self.sample_key)
        X = self._input_matrix(adata)
        return SampleSets(X, codes, len(names)), codes, names

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
    def get_sample_representation(
        self,
        adata: AnnData | None = None,
        key_added: str | None = None,
        n_cells: int = 1000,
        cell_selection: Literal["centrality", "random"] = "centrality",
        batch_size: int = 32,
    ) -> pd.DataFrame:
        """Sample vectors from a fixed cell set per sample.

        Parameters
        ----------
        adata
            AnnData with the same input features and ``sample_key`` column (new samples are
            fine); ``None``: the training AnnData.
        key_added
            If given, also store the DataFrame in ``adata.uns[key_added]``.
        n_cells
            Cells per sample (App. A.5: 1000; smaller samples are resampled with replacement,
            seeded by ``scvi.settings.seed``).
        cell_selection
            ``"centrality"``: the ``n_cells`` cells of lowest eigenvector centrality in the
            sample's 15-NN graph (App. A.5); ``"random"``: a seeded random subset.
        batch_size
            Samples per forward pass.

        Returns
        -------
        DataFrame ``(n_samples, n_output)``, index = sample ids (named ``sample_key``).

        Raises
        ------
        RuntimeError
            If the model is not trained.
        KeyError, ValueError
            If ``adata`` lacks the sample key/input or its features differ from the model's.
        """
        self._check_if_trained(warn=False)
        adata = self.adata if adata is None else adata
        sets, codes, names = self._sample_sets(adata)
        # the cell sets depend only on the input (not on the weights): cache them per AnnData
        fingerprint = (zlib.crc32(codes.tobytes()), zlib.crc32(sets.X.numpy().tobytes()))
        key = (fingerprint, n_cells, cell_selection, _seed())
        cache = self.__dict__.setdefault("_inference_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = inference_cells(
                sets.X.numpy(), codes, len(names), n_cells=n_cells, method=cell_selection,
                seed=_seed(),
            )  # fmt: skip
        idx = cache[key]
        self.module.eval()
        device = self.device
        out = []
        for start in range(0, len(names), batch_size):
            x = sets.X[torch.as_tensor(idx[start : start + batch_size])].to(device)
            z, _ = self.module.embed(x)
            out.append(z.float().cpu().numpy())
        z = np.concatenate(out)
        df = pd.DataFrame(z, index=names, columns=[f"dim_{i}" for i in range(z.shape[1])])
        return self._store(df, adata, key_added)

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Per-cell vectors in the sample space: each cell encoded as a one-cell set.

        With one cell every head's weight is 1, so the vector is ``f(concat_h x_c)``: where the
        cell alone would place its sample.

        Returns
        -------
        ``(n_cells, n_output)`` float32 array (rows follow ``indices`` when given).

        Raises
        ------
        RuntimeError
            If the model is not trained.
        """
        self._check_if_trained(warn=False)
        adata = self.adata if adata is None else adata
        X = self._input_matrix(adata)
        if indices is not None:
            X = X[np.asarray(indices)]
        self.module.eval()
        bs = batch_size or 16384
        out = [
            self.module.embed_cells(torch.as_tensor(X[i : i + bs])).float().cpu().numpy()
            for i in range(0, len(X), bs)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.module.n_output), np.float32)

    @torch.inference_mode()
    def get_cell_importance(
        self,
        adata: AnnData | None = None,
        kind: Literal["relative", "probability", "logit"] = "relative",
    ) -> np.ndarray:
        """Cell-importance weights of every head, over all cells of each sample.

        Parameters
        ----------
        adata
            ``None``: the training AnnData.
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
        """
        self._check_if_trained(warn=False)
        adata = self.adata if adata is None else adata
        codes, _ = sample_codes(adata, self.sample_key)
        X = torch.as_tensor(self._input_matrix(adata))
        self.module.eval()
        logits = torch.cat(
            [self.module.pool.logits(X[i : i + 16384].to(self.device)).float().cpu()
             for i in range(0, len(X), 16384)]
        ).numpy().astype(np.float64)  # fmt: skip
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
