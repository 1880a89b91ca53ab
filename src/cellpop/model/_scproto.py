"""ScProto: self-supervised prototype learning with decodable metacells (Hashemi G. et al.).

A scPoli-style conditional VAE whose latent space is organised by ``K`` learnable prototypes
on the unit sphere, trained with a batch-wise SwAV loss between every cell and a random
neighbour in a PCA kNN graph, a min-max propagation loss (every cell near some prototype) and
the CVAE loss. Prototypes decoded with the mean condition embedding are metacells.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalObsField, LayerField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from cellpop.data import CellDataModule, check_counts, check_obs_key, get_input_matrix
from cellpop.model.base import per_sample_mean, sample_codes
from cellpop.module._scproto import ScProtoModule, ScProtoTrainingPlan

logger = logging.getLogger(__name__)

MIN_CELLS_PER_BATCH_IN_MINIBATCH = 2  # a Sinkhorn over one cell is uninformative


#: Largest data set for which the kNN graph is exact; pynndescent above.
EXACT_KNN_MAX_CELLS = 50_000


def default_n_prototypes(n_cells: int) -> int:
    """Default number of prototypes: ``clip(ceil(n_cells / 100), 10, 500)``, at most ``n_cells``.

    About 100 cells per prototype, the metacell size range of MetaCell/SEACells (~75 cells per
    metacell); the paper does not state its ``K``.
    """
    return int(min(n_cells, min(500, max(10, math.ceil(n_cells / 100)))))


def knn_index(X, n_neighbors: int = 50, n_pcs: int = 50, random_state: int = 0) -> np.ndarray:
    """kNN graph for the augmentation (scProto §3.1 / §4.1): PCA 50 components, 50 neighbours.

    Built with scanpy on a log1p-normalised copy (``normalize_total`` to 1e4, ``log1p``,
    ``pca``, ``neighbors`` with exact scikit-learn neighbours); the input is never modified.

    Parameters
    ----------
    X
        Counts, shape ``(n_cells, n_genes)``, dense or sparse.
    n_neighbors
        Neighbours per cell, excluding the cell itself (clipped to ``n_cells - 1``).
    n_pcs
        Principal components (clipped to ``min(n_cells, n_genes) - 1``).
    random_state
        Seed of PCA and of the approximate neighbour search.

    Returns
    -------
    int64 array ``(n_cells, n_neighbors)`` of neighbour row numbers. Rows with fewer stored
    neighbours (duplicate cells) repeat their neighbours cyclically; a row without any uses the
    cell itself.
    """
    import scanpy as sc

    n_cells = X.shape[0]
    k = int(min(n_neighbors, n_cells - 1))
    if k < 1:
        raise ValueError(f"Need at least 2 cells to build a kNN graph, got {n_cells}.")
    tmp = AnnData(X=X.copy().astype(np.float32))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    n_comps = int(max(1, min(n_pcs, min(tmp.shape) - 1)))
    sc.pp.pca(tmp, n_comps=n_comps, random_state=random_state)
    # exact neighbours (scikit-learn) up to EXACT_KNN_MAX_CELLS cells: no numba compilation
    # (~30 s) for the shared datasets; pynndescent (approximate, seeded) above, where exact
    # search grows as n^2. pynndescent 0.7 returns csr_array, which scanpy 1.11 cannot read:
    # pyproject pins pynndescent < 0.6.
    transformer = "sklearn" if n_cells <= EXACT_KNN_MAX_CELLS else "pynndescent"
    sc.pp.neighbors(
        tmp,
        n_neighbors=k + 1,
        use_rep="X_pca",
        transformer=transformer,
        method="gauss",  # connectivities are unused; "umap" would JIT-compile numba (~20 s)
        random_state=random_state,
    )
    dist = tmp.obsp["distances"].tocsr()
    counts = np.diff(dist.indptr)
    pos = np.arange(k)[None, :] % np.maximum(counts, 1)[:, None] + dist.indptr[:-1, None]
    pos = np.minimum(pos, max(dist.nnz - 1, 0))
    out = dist.indices[pos] if dist.nnz else np.zeros((n_cells, k), dtype=np.int64)
    out = np.where(counts[:, None] > 0, out, np.arange(n_cells)[:, None])
    return out.astype(np.int64)


def clr(counts: np.ndarray, pseudocount: float = 0.5) -> np.ndarray:
    """Centred log-ratio of rows of non-negative counts (``pseudocount`` added first)."""
    logp = np.log(np.asarray(counts, dtype=np.float64) + pseudocount)
    return logp - logp.mean(axis=1, keepdims=True)


class ScProto(UnsupervisedTrainingMixin, BaseModelClass):
    """scProto: prototypes + metacells from a batch-aware SwAV-trained conditional VAE.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (counts).
    n_prototypes
        Number of prototypes/metacells ``K``; default :func:`default_n_prototypes`
        (``clip(ceil(n_cells/100), 10, 500)``).
    n_latent
        Latent dimension (scProto §4.1: 8).
    n_hidden
        Hidden units of encoder/decoder (default ``ceil(sqrt(n_genes))``, scPoli).
    embedding_dim
        Condition-embedding dimension (scPoli: 10).
    dropout_rate
        Dropout (scPoli: 0.05).
    temperature
        Softmax temperature of the swapped prediction (SwAV: 0.1).
    sinkhorn_epsilon
        Sinkhorn regularisation (scProto §4.1: 0.02).
    sinkhorn_iterations
        Sinkhorn iterations (SwAV: 3).
    hard_assignment
        One-hot Sinkhorn targets (scProto §4.1, "hard clustering option").
    swav_weight, propagation_weight, cvae_weight
        Loss weights of eq. 5 (scProto §4.1: 1, 1.0, 0.01). ``swav_weight=0,
        propagation_weight=0`` trains the plain scPoli-style CVAE (ablation).
    n_neighbors, n_pcs
        kNN augmentation graph (scProto §4.1: 50 neighbours on 50 PCs).

    Raises
    ------
    ValueError
        If ``n_prototypes`` exceeds the number of cells or is < 1.
    """

    _module_cls = ScProtoModule
    _training_plan_cls = ScProtoTrainingPlan

    def __init__(
        self,
        adata: AnnData,
        n_prototypes: int | None = None,
        n_latent: int = 8,
        n_hidden: int | None = None,
        embedding_dim: int = 10,
        dropout_rate: float = 0.05,
        temperature: float = 0.1,
        sinkhorn_epsilon: float = 0.02,
        sinkhorn_iterations: int = 3,
        hard_assignment: bool = True,
        swav_weight: float = 1.0,
        propagation_weight: float = 1.0,
        cvae_weight: float = 0.01,
        n_neighbors: int = 50,
        n_pcs: int = 50,
    ):
        super().__init__(adata)
        n_cells = self.adata.n_obs
        if n_prototypes is None:
            n_prototypes = default_n_prototypes(n_cells)
        if n_prototypes < 1 or n_prototypes > n_cells:
            raise ValueError(
                f"n_prototypes={n_prototypes} must be between 1 and the number of cells "
                f"({n_cells})."
            )
        self.n_neighbors = n_neighbors
        self.n_pcs = n_pcs
        self.knn_index_ = None  # (n_cells, n_neighbors) built on the first train()
        self.prototype_radius_ = None  # (K,) set after training
        n_batch = self.summary_stats.n_batch
        self.module = self._module_cls(
            n_input=self.summary_stats.n_vars,
            n_batch=n_batch,
            n_prototypes=n_prototypes,
            n_latent=n_latent,
            n_hidden=n_hidden,
            embedding_dim=embedding_dim,
            dropout_rate=dropout_rate,
            temperature=temperature,
            sinkhorn_epsilon=sinkhorn_epsilon,
            sinkhorn_iterations=sinkhorn_iterations,
            hard_assignment=hard_assignment,
            swav_weight=swav_weight,
            propagation_weight=propagation_weight,
            cvae_weight=cvae_weight,
        )
        self._model_summary_string = (
            f"ScProto: {n_prototypes} prototypes, n_latent={n_latent}, {n_batch} batch(es), "
            f"loss weights swav={swav_weight}, propagation={propagation_weight}, "
            f"cvae={cvae_weight}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        batch_key: str | None = None,
        labels_key: str | None = None,
        sample_key: str | None = None,
        **kwargs,
    ):
        """Register ``adata`` (raw counts) with the model class.

        Parameters
        ----------
        adata
            Cells x genes AnnData.
        layer
            Layer with raw integer counts; ``None`` uses ``adata.X``.
        batch_key
            ``adata.obs`` column of the study/condition: it gets a CVAE condition embedding and
            the SwAV loss is computed within each of its categories (scProto eq. 3).
        labels_key
            Cell-type labels, used only for evaluation (metacell majority label/purity).
        sample_key
            Sample/donor column for :meth:`get_sample_representation`.

        Raises
        ------
        KeyError
            If ``layer`` or an obs key is missing.
        ValueError
            If the matrix holds NaN/inf, negative or non-integer values (counts are required).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        X = get_input_matrix(adata, layer=layer)
        check_counts(X, what="adata.X" if layer is None else f"adata.layers[{layer!r}]")
        check_obs_key(adata, batch_key, "batch_key")
        check_obs_key(adata, labels_key, "labels_key")
        check_obs_key(adata, sample_key, "sample_key")
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            CategoricalObsField(REGISTRY_KEYS.LABELS_KEY, labels_key),
        ]
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    def _setup_arg(self, name: str):
        return self.adata_manager.registry["setup_args"].get(name)

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        batch_size: int = 512,
        validation_size: float = 0.1,
        split_by_sample: bool = False,
        early_stopping: bool = True,
        lr: float = 1e-3,
        n_epochs_freeze_prototypes: int = 1,
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train with the device-resident :class:`cellpop.data.CellDataModule`.

        The kNN graph is built once (first call) and kept in ``knn_index_``.

        Parameters
        ----------
        max_epochs
            Epochs; ``None`` uses scvi-tools' heuristic ``min(400, 400 * 20000 / n_cells)``.
        accelerator, devices
            Lightning device selection (``"auto"``: GPU when present).
        batch_size
            Cells per minibatch (each paired with one kNN neighbour).
        validation_size
            Fraction of cells (or of samples with ``split_by_sample``) held out.
        split_by_sample
            Hold out whole samples (``sample_key`` must be registered).
        early_stopping
            Stop on ``validation_loss`` (patience 45 epochs unless ``early_stopping_patience``).
        lr
            Adam learning rate (Adam eps 0.01, scPoli).
        n_epochs_freeze_prototypes
            Epochs without prototype updates (SwAV's freezing).
        plan_kwargs
            Extra :class:`~cellpop.module._scproto.ScProtoTrainingPlan` arguments; KL is
            annealed over the first half of ``max_epochs`` unless ``n_epochs_kl_warmup`` is given.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`.

        Raises
        ------
        ValueError
            If a batch category has so few cells that a minibatch would hold fewer than 2 of
            them on average (too few for the per-batch Sinkhorn), or ``split_by_sample`` without
            a ``sample_key``.
        """
        n_cells = self.adata.n_obs
        if max_epochs is None:
            from scvi.model._utils import get_max_epochs_heuristic

            max_epochs = get_max_epochs_heuristic(n_cells)
        self._check_batch_sizes(batch_size)
        sample = None
        if split_by_sample:
            key = self._setup_arg("sample_key")
            if key is None:
                raise ValueError("split_by_sample=True needs sample_key= in setup_anndata.")
            sample = self.adata.obs[key].to_numpy()
        if getattr(self, "knn_index_", None) is None:
            self.knn_index_ = knn_index(
                get_input_matrix(self.adata, layer=self._setup_arg("layer")),
                n_neighbors=self.n_neighbors,
                n_pcs=self.n_pcs,
                random_state=settings.seed if settings.seed is not None else 0,
            )
        seed = settings.seed if settings.seed is not None else 0
        datamodule = CellDataModule(
            self.adata_manager,
            sample=sample,
            split_by_sample=split_by_sample,
            validation_size=validation_size,
            batch_size=batch_size,
            seed=seed,
        )
        plan = {
            "neighbor_index": torch.as_tensor(self.knn_index_),
            "seed": seed,
            "lr": lr,
            "n_epochs_freeze_prototypes": n_epochs_freeze_prototypes,
            "n_epochs_kl_warmup": max(1, max_epochs // 2),
        }
        plan.update(plan_kwargs or {})
        trainer_kwargs.setdefault("benchmark", False)
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1 if validation_size > 0 else None)
        if early_stopping and validation_size > 0:
            trainer_kwargs.setdefault("early_stopping_monitor", "validation_loss")
        super().train(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            datamodule=datamodule,
            plan_kwargs=plan,
            early_stopping=early_stopping and validation_size > 0,
            **trainer_kwargs,
        )
        self.module.eval()
        self._store_prototype_radii()

    def _check_batch_sizes(self, batch_size: int) -> None:
        codes = self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY).reshape(-1)
        counts = np.bincount(codes.astype(np.int64))
        n = codes.shape[0]
        expected = min(batch_size, n) * counts / n
        bad = np.flatnonzero(expected < MIN_CELLS_PER_BATCH_IN_MINIBATCH)
        if bad.size:
            cats = self.adata_manager.get_state_registry(
                REGISTRY_KEYS.BATCH_KEY
            ).categorical_mapping
            names = [f"{cats[i]!r} ({counts[i]} cells)" for i in bad[:5]]
            raise ValueError(
                f"batch_key categories {', '.join(names)} are too small: a minibatch of "
                f"{batch_size} cells would hold fewer than {MIN_CELLS_PER_BATCH_IN_MINIBATCH} of "
                "them on average, too few for the per-batch Sinkhorn. Increase batch_size or "
                "merge/remove these batches."
            )

    # ------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices=None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Latent means of the encoder, shape ``(n_cells, n_latent)``.

        Parameters
        ----------
        adata
            AnnData with the model's genes (set up like the training data); default: training data.
        indices
            Cell positions to use; default all.
        batch_size
            Minibatch size of the inference loop.
        """
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        self.module.eval()
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        out = []
        for tensors in loader:
            x = tensors[REGISTRY_KEYS.X_KEY].to(self.device)
            b = tensors[REGISTRY_KEYS.BATCH_KEY].to(self.device)
            out.append(self.module._encode(x, b)[0].cpu())
        return torch.cat(out).numpy()

    def _scores(self, z: np.ndarray) -> torch.Tensor:
        from cellpop.nn._swav import cosine_scores

        protos = self.module.normalized_prototypes().detach().cpu()
        return cosine_scores(torch.as_tensor(z), protos)

    def get_prototype_assignment(
        self,
        adata: AnnData | None = None,
        indices=None,
        soft: bool = False,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Prototype of every cell (highest cosine similarity of its latent mean).

        Parameters
        ----------
        adata, indices, batch_size
            As in :meth:`get_latent_representation`.
        soft
            Return ``softmax(cos / temperature)`` over prototypes (eq. 2) instead.

        Returns
        -------
        ``soft=False``: int64 array ``(n_cells,)`` with values in ``0..K-1``;
        ``soft=True``: float32 array ``(n_cells, K)``, rows sum to 1.
        """
        scores = self._scores(self.get_latent_representation(adata, indices, batch_size))
        if soft:
            return torch.softmax(scores / self.module.temperature, dim=1).numpy()
        return scores.argmax(1).numpy().astype(np.int64)

    def _store_prototype_radii(self) -> None:
        z = self.get_latent_representation()
        assign = self._scores(z).argmax(1).numpy()
        norms = np.linalg.norm(z, axis=1)
        k = self.module.prototypes.shape[0]
        sums = np.bincount(assign, weights=norms, minlength=k)
        counts = np.bincount(assign, minlength=k)
        radius = np.full(k, float(np.median(norms)))
        radius[counts > 0] = sums[counts > 0] / counts[counts > 0]
        self.prototype_radius_ = radius.astype(np.float32)

    def get_prototype_latent(self) -> np.ndarray:
        """Latent points of the prototypes, shape ``(K, n_latent)``.

        Prototypes live on the unit sphere (only directions matter for assignment); to decode
        them each is placed at the mean latent norm of the training cells assigned to it
        (``prototype_radius_``; the median cell norm for an empty prototype).
        """
        self._check_if_trained(warn=False)
        if getattr(self, "prototype_radius_", None) is None:
            self._store_prototype_radii()
        protos = self.module.normalized_prototypes().detach().cpu().numpy()
        return protos * self.prototype_radius_[:, None]

    def get_metacells(self, library_size: float = 1e4) -> AnnData:
        """Decode every prototype into a metacell (scProto §3.4).

        Each prototype's latent point (:meth:`get_prototype_latent`) is decoded with the
        **mean condition embedding**; the decoder's gene proportions times ``library_size``
        give normalised expression (default: counts per 10,000, "CP10k", not log-transformed).

        Parameters
        ----------
        library_size
            Total expression of every metacell (units of ``X``).

        Returns
        -------
        New AnnData, ``K x n_genes``: ``X`` float32 per-``library_size`` normalised expression;
        ``obs['n_cells']`` training cells assigned to the prototype; when ``labels_key`` was
        registered ``obs['majority_label']`` (categorical; "unassigned" for empty prototypes)
        and ``obs['purity']`` (fraction of assigned cells carrying it, NaN when empty);
        ``obsm['X_scproto']`` prototype latent points ``(K, n_latent)``; ``var`` = a copy of the
        model's ``var``; ``uns['units']`` describes ``X``.
        """
        z_proto = self.get_prototype_latent()
        device = self.device
        prop = self.module.decode_proportions(torch.as_tensor(z_proto, device=device))
        X = (prop.cpu().numpy() * library_size).astype(np.float32)
        k = X.shape[0]
        assign = self.get_prototype_assignment()
        obs = pd.DataFrame(index=[f"prototype_{i}" for i in range(k)])
        obs["n_cells"] = np.bincount(assign, minlength=k)
        labels_key = self._setup_arg("labels_key")
        if labels_key is not None:
            tab = pd.crosstab(assign, self.adata.obs[labels_key].to_numpy())
            tab = tab.reindex(range(k), fill_value=0)
            has = tab.sum(1).to_numpy() > 0
            major = np.where(has, tab.idxmax(1).astype(str).to_numpy(), "unassigned")
            purity = np.where(has, tab.max(1) / np.maximum(tab.sum(1), 1), np.nan)
            obs["majority_label"] = pd.Categorical(major)
            obs["purity"] = purity.astype(float)
        meta = AnnData(X=X, obs=obs, var=self.adata.var.copy())
        meta.obsm["X_scproto"] = z_proto.astype(np.float32)
        meta.uns["units"] = (
            f"X: decoded prototype expression, gene proportions x {library_size:g} "
            "(per-cell normalised, not log-transformed), mean condition embedding"
        )
        return meta

    def get_sample_representation(
        self,
        adata: AnnData | None = None,
        key_added: str | None = None,
        kind: str = "occupancy",
        pseudocount: float = 0.5,
    ) -> pd.DataFrame:
        """Per-sample vectors from prototype occupancy or mean latent.

        Parameters
        ----------
        adata
            AnnData set up like the training data (default: training data); must contain the
            registered ``sample_key`` column.
        key_added
            When given, the DataFrame is also written to ``adata.uns[key_added]``.
        kind
            ``"occupancy"`` (default): number of cells of each sample assigned to each
            prototype, plus ``pseudocount``, centred-log-ratio transformed,
            shape ``(n_samples, K)``; ``"mean_latent"``: mean latent per sample,
            shape ``(n_samples, n_latent)``.
        pseudocount
            Added to the occupancy counts before the CLR.

        Returns
        -------
        DataFrame, index = sample ids in category order (named ``sample_key``).

        Raises
        ------
        ValueError
            If no ``sample_key`` was registered or ``kind`` is unknown.
        """
        key = self._setup_arg("sample_key")
        if key is None:
            raise ValueError("No sample_key was given to setup_anndata; re-run it with one.")
        if kind not in ("occupancy", "mean_latent"):
            raise ValueError(f"kind must be 'occupancy' or 'mean_latent', got {kind!r}.")
        adata = self._validate_anndata(adata)
        z = self.get_latent_representation(adata)
        if kind == "mean_latent":
            df = per_sample_mean(z, adata, key, prefix="latent")
        else:
            codes, names = sample_codes(adata, key)
            k = self.module.prototypes.shape[0]
            assign = self._scores(z).argmax(1).numpy()
            counts = np.zeros((len(names), k))
            np.add.at(counts, (codes, assign), 1.0)
            cols = [f"prototype_{i}" for i in range(k)]
            df = pd.DataFrame(clr(counts, pseudocount), index=names, columns=cols)
        if key_added is not None:
            adata.uns[key_added] = df
        return df
