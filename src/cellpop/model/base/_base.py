"""The base of every cellpop model: registry-driven input, one gene policy, one training path."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager
from scvi.data._constants import _SETUP_ARGS_KEY
from scvi.data.fields import CategoricalObsField, LayerField, ObsmField
from scvi.model._utils import use_distributed_sampler
from scvi.model.base import BaseModelClass
from scvi.model.base._save_load import _load_saved_files
from scvi.train import TrainRunner

from cellpop.data import (
    CellDataModule,
    check_categorical_obs,
    check_finite,
    gene_positions,
    get_input_matrix,
)
from cellpop.data._lazy import align_input, aligned_copy, as_lazy, check_blocks
from cellpop.data._validation import _plain
from cellpop.train import HistoryLogger, TrainingPlan

from ._docs import doc

logger = logging.getLogger(__name__)

QUERY_CATEGORY = "__cellpop_query__"
"""Category given to a registered obs column that a query AnnData lacks."""

INFERENCE_BATCH_SIZE = 1024
"""Cells per forward pass in every cell-level getter (default of ``batch_size=None``)."""

_DEFAULTED_KEYS = (REGISTRY_KEYS.BATCH_KEY, REGISTRY_KEYS.LABELS_KEY)
"""Fields registered with one default category when their key is None (scvi-tools' rule)."""
_DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
"""Lightning DDP strategy names that ``train`` runs with ``find_unused_parameters=True``."""
_TRANSFER_KWARGS = ("source_registry", "extend_categories", "allow_missing_labels")


def seed() -> int:
    """``scvi.settings.seed``, or 0 when it was never set (draws stay reproducible)."""
    return 0 if settings.seed is None else int(settings.seed)


def concat_history(first: dict | None, second: dict | None) -> dict:
    """Concatenate two training histories, keeping every key of either (epochs continue)."""
    first, second = first or {}, second or {}
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


class CellpopModel(BaseModelClass):
    """Base of every cellpop model (scvi-tools :class:`~scvi.model.base.BaseModelClass`).

    What it gives each model, once:

    * **setup**: :meth:`_register` builds the registry from an input field (``layer`` or
      ``obsm_key``) and categorical ``obs`` fields, with clear errors for missing keys, NaN
      categories and unknown keywords; on ``load`` and for queries, unseen categories extend
      the registry.
    * **input**: :meth:`_input` reads the registered matrix of the training AnnData or of a
      query (never modifying the user's AnnData) with the gene policy of
      :func:`cellpop.data.gene_positions` applied.
    * **training**: :meth:`_run_stage` runs one training stage through scvi-tools'
      ``TrainRunner`` with the one :class:`cellpop.train.TrainingPlan`, in train mode, and keeps
      ``history`` over stages and calls.
    * **outputs**: trained-state checks and ``key_added`` writes.

    A model sets ``_default_batch_size``, ``_default_patience`` and implements
    ``_default_max_epochs``, ``_datamodule`` and ``_plan_defaults``.
    """

    _default_batch_size: int = 128
    _default_patience: int = 45
    _input_args: tuple[str, str] = ("layer", "obsm_key")
    """Names of the setup arguments holding the input layer and ``obsm`` key (POPPY's
    ``setup_mudata`` names them ``rna_layer`` and ``rna_obsm_key``)."""

    def __init__(self, adata: AnnData | None = None):
        super().__init__(adata)
        if adata is not None and self._uses_genes:
            self.var_names_ = np.asarray(adata.var_names.astype(str), dtype=object)

    # ------------------------------------------------------------------ setup
    @classmethod
    def _register(
        cls,
        adata: AnnData,
        setup_method_args: dict,
        *,
        layer: str | None = None,
        obsm_key: str | None = None,
        categorical: dict[str, tuple[str | None, str]] | None = None,
        check_input=check_finite,
        transfer_kwargs: dict | None = None,
    ) -> AnnDataManager:
        """Validate and register ``adata``: the one way every model's ``setup_anndata`` ends.

        Parameters
        ----------
        adata
            The AnnData to register.
        setup_method_args
            ``cls._get_setup_method_args(**locals())`` of the caller.
        layer, obsm_key
            Input field: an ``obsm`` embedding, or a layer (``None``: ``X``).
        categorical
            ``{registry_key: (obs_key or None, argument name)}`` of categorical obs fields.
        check_input
            ``check_input(X, what)`` validating the input values (default: finite values).
        transfer_kwargs
            The caller's ``**kwargs``: only scvi-tools' transfer keywords (``source_registry``,
            ``extend_categories``, ``allow_missing_labels``), which ``load`` and queries pass.

        Raises
        ------
        TypeError
            On any other keyword (e.g. ``obsm_key=`` to a model that reads expression).
        KeyError, ValueError
            Missing keys, NaN categories (named with their count), both ``layer`` and ``obsm_key``.
        """
        kwargs = dict(transfer_kwargs or {})
        unknown = sorted(set(kwargs) - set(_TRANSFER_KWARGS))
        if unknown:
            hint = ""
            if "obsm_key" in unknown:
                hint = f": {cls.__name__} reads expression values (layer=...), not an embedding"
            raise TypeError(
                f"{cls.__name__}.setup_anndata() got unexpected keyword argument(s) {unknown}{hint}."
            )
        X = get_input_matrix(adata, layer=layer, obsm_key=obsm_key)  # KeyError naming the key
        if obsm_key is not None:
            what = f"adata.obsm[{obsm_key!r}]"
        else:
            what = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
        _check(X, check_input, what)
        fields = [
            ObsmField(REGISTRY_KEYS.X_KEY, obsm_key)
            if obsm_key is not None
            # value checks are ``check_input``'s (scvi-tools' count check rejects csr_array)
            else LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=False)
        ]
        for registry_key, (obs_key, what) in (categorical or {}).items():
            if obs_key is None and registry_key not in _DEFAULTED_KEYS:
                continue  # e.g. no sample_key: per-sample outputs are unavailable
            check_categorical_obs(adata, obs_key, what)
            fields.append(CategoricalObsField(registry_key, obs_key))
        if kwargs.get("source_registry") is not None:
            kwargs.setdefault("extend_categories", True)
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)
        return manager

    @property
    def _setup_args(self) -> dict:
        return self.adata_manager.registry[_SETUP_ARGS_KEY]

    @property
    def _uses_genes(self) -> bool:
        """Expression input (genes matched by name) rather than an ``obsm`` embedding."""
        return self._setup_args.get(self._input_args[1]) is None

    def _obs_keys(self) -> list[tuple[str, str]]:
        """``(registry key, obs column)`` of every registered categorical field."""
        out = []
        for field in self.adata_manager.fields:
            if isinstance(field, CategoricalObsField) and not field.is_default:
                out.append((field.registry_key, field._original_attr_key))
        return out

    # ------------------------------------------------------------------ input
    def _check_input(self, X, what: str) -> None:
        """Model-specific value checks of an input matrix (default: finite values)."""
        check_finite(X, what)

    def _aligned_query(self, adata: AnnData, samples: bool = False) -> AnnData:
        """A private AnnData holding ``adata``'s input in the model's gene order and its obs.

        A registered obs column that the query lacks is filled with one new category
        (``QUERY_CATEGORY``): it extends the registry like any unseen category (ScProto then uses
        its neutral condition). With ``samples=True`` the sample column is required.
        """
        args = self._setup_args
        obs = pd.DataFrame(index=adata.obs_names)
        for registry_key, obs_key in self._obs_keys():
            if obs_key in adata.obs.columns or (
                samples and registry_key == REGISTRY_KEYS.SAMPLE_KEY
            ):
                check_categorical_obs(adata, obs_key, obs_key)
                obs[obs_key] = adata.obs[obs_key].to_numpy()
            else:
                obs[obs_key] = QUERY_CATEGORY
        layer, obsm_key = (args.get(k) for k in self._input_args)
        X = get_input_matrix(adata, layer=layer, obsm_key=obsm_key)
        if obsm_key is not None:
            n = len(self.adata_manager.get_state_registry(REGISTRY_KEYS.X_KEY).column_names)
            if X.shape[1] != n:
                raise ValueError(
                    f"adata.obsm[{obsm_key!r}] has {X.shape[1]} features but the model was "
                    f"trained on {n}."
                )
            return AnnData(obs=obs, obsm={obsm_key: np.asarray(X)})
        X = align_input(X, gene_positions(adata.var_names, self.var_names_))
        q = AnnData(obs=obs, var=pd.DataFrame(index=pd.Index(self.var_names_.astype(str))))
        if layer is None:
            q.X = X
        else:
            q.layers[layer] = X
        return q

    def _manager(self, adata: AnnData | None, samples: bool = False) -> AnnDataManager:
        """Registry of the training AnnData, or of an aligned private copy of a query."""
        if adata is None or adata is self.adata:
            return self.adata_manager
        q = self._aligned_query(adata, samples=samples)
        return self.adata_manager.transfer_fields(q, extend_categories=True)

    def _input(self, manager: AnnDataManager | None = None, check: bool = True):
        """The registered input matrix ``(n_cells, n_features)`` in the model's feature order.

        Dense input stays dense, sparse becomes CSR (``csr_array`` included); never densified.
        An on-disk input (backed ``.h5ad``, zarr store, collection of files: see
        :func:`cellpop.data.is_on_disk`) comes back as a :class:`cellpop.data.LazyRows` that the
        data modules read by row blocks; its values are checked in one streaming pass.
        """
        manager = manager or self.adata_manager
        X = _plain(manager.get_from_registry(REGISTRY_KEYS.X_KEY))
        if isinstance(X, pd.DataFrame):
            X = X.to_numpy()
        pos = None
        if self._uses_genes:
            pos = gene_positions(manager.adata.var_names, self.var_names_)
        X = align_input(X, pos)
        if check:
            what = "query" if manager is not self.adata_manager else "input"
            _check(X, self._check_input, what)
        return X

    def _codes(self, manager: AnnDataManager, registry_key: str) -> np.ndarray | None:
        """int64 ``(n_cells,)`` codes of a registered categorical field (``None`` if absent)."""
        if registry_key not in manager.data_registry:
            return None
        return np.asarray(manager.get_from_registry(registry_key)).reshape(-1).astype(np.int64)

    def _require_samples(self, manager: AnnDataManager) -> None:
        if REGISTRY_KEYS.SAMPLE_KEY not in manager.data_registry:
            raise ValueError(
                f"{type(self).__name__} needs sample_key= in setup_anndata for per-sample outputs."
            )

    def _samples(self, manager: AnnDataManager) -> tuple[np.ndarray, pd.Index]:
        """Sample code per cell ``(n_cells,)`` and the sample ids present (registry order).

        Raises
        ------
        ValueError
            If no ``sample_key`` was registered.
        """
        self._require_samples(manager)
        codes = self._codes(manager, REGISTRY_KEYS.SAMPLE_KEY)
        mapping = np.asarray(
            manager.get_state_registry(REGISTRY_KEYS.SAMPLE_KEY).categorical_mapping
        )
        present = np.unique(codes)
        remap = np.full(len(mapping), -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        names = pd.Index(mapping[present].astype(str), name=self._setup_args["sample_key"])
        return remap[codes], names

    def _inference_batches(
        self,
        manager: AnnDataManager,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Minibatch dicts (as in training) of the cells ``indices``, in order, on the device."""
        X = self._input(manager)
        idx = np.arange(X.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
        dm = CellDataModule(
            X,
            batch=self._codes(manager, REGISTRY_KEYS.BATCH_KEY),
            labels=self._codes(manager, REGISTRY_KEYS.LABELS_KEY),
            external_indexing=[idx, np.array([], dtype=np.int64)],
            batch_size=batch_size or INFERENCE_BATCH_SIZE,
            device=self.device,
        )
        yield from dm.inference_dataloader()

    # ------------------------------------------------------------------ outputs
    def _check_trained(self) -> None:
        if not self.is_trained_:
            raise RuntimeError(
                f"{type(self).__name__} is not trained yet: call model.train() first."
            )

    @staticmethod
    def _write_obsm(adata: AnnData, key_added: str | None, values: np.ndarray, indices) -> None:
        if key_added is None:
            return
        if indices is not None:
            raise ValueError("key_added writes adata.obsm and needs all cells: pass indices=None.")
        adata.obsm[key_added] = values

    @staticmethod
    def _write_uns(adata: AnnData, key_added: str | None, df: pd.DataFrame) -> pd.DataFrame:
        if key_added is not None:
            adata.uns[key_added] = df
        return df

    @doc.dedent
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        key_added: str | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Per-cell embedding, ``(n_cells, d)`` float32 (rows follow ``indices``).

        Parameters
        ----------
        %(param_adata)s
        %(param_indices)s
        %(param_batch_size_inference)s
        %(param_key_added_obsm)s
        **kwargs
            Model-specific options of the embedding (see the model's docs).

        Raises
        ------
        RuntimeError
            Before training.
        KeyError, ValueError
            A query lacking the registered input or keys, NaN categories, too many missing
            genes, invalid values.
        """
        self._check_trained()
        manager = self._manager(adata)
        fn = functools.partial(self._embed_batch, **kwargs) if kwargs else None
        z = self._latent(manager, indices, batch_size, fn=fn)
        self._write_obsm(self.adata if adata is None else adata, key_added, z, indices)
        return z

    @torch.inference_mode()
    def _latent(self, manager: AnnDataManager, indices, batch_size, fn=None) -> np.ndarray:
        """``fn(batch)`` (default :meth:`_embed_batch`) over all cells, in eval mode, as numpy."""
        self.module.eval()
        fn = fn or self._embed_batch
        out = [
            fn(b).float().cpu().numpy()
            for b in self._inference_batches(manager, indices, batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def _embed_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @doc.dedent
    def get_sample_representation(
        self, adata: AnnData | None = None, key_added: str | None = None, **kwargs
    ) -> pd.DataFrame:
        """One vector per sample (donor).

        Parameters
        ----------
        %(param_adata)s New samples (donors) are fine.
        %(param_key_added_uns)s
        **kwargs
            Model-specific options (see the model's docs).

        Returns
        -------
        DataFrame ``(n_samples, d)``: index = sample ids (named ``sample_key``; registry order,
        training samples first).

        Raises
        ------
        RuntimeError
            Before training.
        KeyError, ValueError
            No ``sample_key`` registered; a query lacking the sample key or the input.
        """
        self._require_samples(self.adata_manager)
        self._check_trained()
        df = self._sample_vectors(self._manager(adata, samples=True), **kwargs)
        return self._write_uns(self.adata if adata is None else adata, key_added, df)

    def _sample_vectors(self, manager: AnnDataManager) -> pd.DataFrame:
        """Default: the mean latent of each sample's cells, columns ``latent_i``."""
        from cellpop.data import per_sample_mean

        codes, names = self._samples(manager)
        return per_sample_mean(self._latent(manager, None, None), codes, names)

    # ------------------------------------------------------------------ training
    def _default_max_epochs(self) -> int:
        raise NotImplementedError

    def _datamodule(self, batch_size: int, train_size: float, load_to_device, **kwargs):
        raise NotImplementedError

    def _plan_defaults(self, max_epochs: int) -> dict:
        raise NotImplementedError

    def _callbacks(self) -> list:
        return []

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
        **trainer_kwargs,
    ) -> None:
        """Train the model.

        %(train_notes)s

        Parameters
        ----------
        %(param_train_common)s

        Raises
        ------
        ValueError
            If ``max_epochs < 1`` or an option is invalid.
        """
        max_epochs = self._check_epochs(max_epochs)
        dm = self._datamodule(
            batch_size or self._default_batch_size,
            train_size,
            load_to_device,
            **(datasplitter_kwargs or {}),
        )
        plan = {**self._plan_defaults(max_epochs), **(plan_kwargs or {})}
        self._run_stage(
            dm, plan, max_epochs, accelerator, devices, early_stopping, early_stopping_patience,
            trainer_kwargs,
        )  # fmt: skip
        self._on_trained()

    def _on_trained(self) -> None:
        """Derived state to compute after a successful training run (default: none)."""

    def _check_epochs(self, max_epochs: int | None) -> int:
        max_epochs = self._default_max_epochs() if max_epochs is None else int(max_epochs)
        if max_epochs < 1:
            raise ValueError(
                f"max_epochs must be >= 1, got {max_epochs}: a model trained for 0 epochs keeps "
                "its random weights."
            )
        return max_epochs

    def _run_stage(
        self,
        datamodule,
        plan_kwargs: dict,
        max_epochs: int,
        accelerator,
        devices,
        early_stopping: bool,
        early_stopping_patience: int | None,
        trainer_kwargs: dict,
        module=None,
    ) -> None:
        """One training stage through ``TrainRunner`` (history appended, train mode).

        ``module`` (default ``self.module``) is what the plan optimises, e.g. a fine-tuning
        module wrapping ``self.module``.
        """
        trainer_kwargs = dict(trainer_kwargs)
        strategy = trainer_kwargs.get("strategy")
        if isinstance(strategy, str) and strategy in _DDP_STRATEGIES:
            # frozen parameters (stage schedules) and idle heads get no gradient in some steps
            trainer_kwargs["strategy"] = f"{strategy}_find_unused_parameters_true"
        has_val = getattr(datamodule, "n_val", 0) > 0
        if early_stopping and not has_val:
            logger.info("No validation set: early stopping is off.")
            early_stopping = False
        trainer_kwargs.setdefault("benchmark", False)
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1 if has_val else None)
        trainer_kwargs.setdefault("early_stopping_monitor", "validation_loss")
        trainer_kwargs.setdefault(
            "early_stopping_patience", early_stopping_patience or self._default_patience
        )
        own_logger = {"logger", "log_save_dir"} & set(trainer_kwargs)
        if not own_logger and not use_distributed_sampler(strategy):  # DDP: scvi-tools' logger
            trainer_kwargs["logger"] = HistoryLogger()  # same history, no per-epoch pandas cost
        callbacks = list(trainer_kwargs.pop("callbacks", None) or []) + self._callbacks()
        plan = TrainingPlan(module or self.module, max_epochs=max_epochs, **plan_kwargs)
        runner = TrainRunner(
            self,
            training_plan=plan,
            data_splitter=datamodule,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            callbacks=callbacks,
            **trainer_kwargs,
        )
        was_trained, previous = self.is_trained_, self.history_
        self.is_trained_ = False  # the runner then writes this stage's full history
        plan.module.train()  # a getter leaves eval mode; the plan also sets it every epoch
        try:
            runner()
        except BaseException:
            self.is_trained_, self.history_ = was_trained, previous
            raise
        finally:
            self.module.eval()
        if was_trained and previous:
            self.history_ = concat_history(previous, self.history_)

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, dir_path: str, adata: AnnData | None = None, **kwargs):
        """Load a saved model, applying the gene policy to ``adata``.

        Genes of ``adata`` are matched to the model's by name: another order is fine (the
        registered AnnData is read in the model's order); extra genes are ignored; when model
        genes are missing, they are zero-filled (warning; error above
        :data:`cellpop.data.MAX_MISSING_GENE_FRACTION`) and ``model.adata`` is then an aligned
        copy of ``adata``. Donors, batches and labels unseen in training extend the registry.
        Other parameters: :meth:`scvi.model.base.BaseModelClass.load`.

        Raises
        ------
        ValueError
            Too many missing genes, or what scvi-tools raises for a model of another class.
        """
        if isinstance(adata, AnnData):
            attr, var_names, _, _ = _load_saved_files(
                dir_path, False, map_location="cpu", prefix=kwargs.get("prefix")
            )
            args = attr["registry_"][_SETUP_ARGS_KEY]
            if args.get(cls._input_args[1]) is None and var_names is not None:
                model_genes = pd.Index(np.asarray(var_names).astype(str))
                pos = gene_positions(adata.var_names, model_genes)
                if pos is not None and (pos < 0).any():
                    logger.warning("model.adata is an aligned copy of the given AnnData.")
                    adata = aligned_copy(adata, model_genes, args.get(cls._input_args[0]), pos)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*var_names for adata passed in.*")
            return super().load(dir_path, adata=adata, **kwargs)


def _check(X, check, what: str) -> None:
    """``check(X, what)``, block by block when ``X`` is on disk."""
    lazy = as_lazy(X)
    if lazy is None:
        check(X, what)
    else:
        check_blocks(lazy, check, what)
