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
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.model._utils import get_max_epochs_heuristic

from cellpop.data import CellDataModule, check_counts
from cellpop.data._lazy import as_lazy, streaming_pca
from cellpop.model.base import CellpopModel, seed
from cellpop.model.base._docs import doc
from cellpop.module._scproto import ScProtoModule

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

    Built on a log1p-normalised copy (scanpy's ``normalize_total`` to 1e4, ``log1p``, ``pca``);
    the input is never modified. Neighbours are exact (scikit-learn through scanpy's
    ``neighbors``) up to :data:`EXACT_KNN_MAX_CELLS` cells and approximate above (pynndescent's
    NN-descent graph, seeded; recall against exact neighbours in ``docs/scale.md``).

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
    n_cells = X.shape[0]
    k = int(min(n_neighbors, n_cells - 1))
    if k < 1:
        raise ValueError(f"Need at least 2 cells to build a kNN graph, got {n_cells}.")
    n_comps = int(max(1, min(n_pcs, min(X.shape) - 1)))
    return pcs_knn(knn_pcs(X, n_comps, random_state), k, random_state)


def knn_pcs(X, n_comps: int, random_state: int = 0) -> np.ndarray:
    """``(n_cells, n_comps)`` PCs of the log1p-normalised counts ``X`` (not modified).

    In memory: scanpy's ``normalize_total`` (1e4), ``log1p`` and ``pca`` on one float32 copy
    (float32 PCs); on disk: the same PCA in two streaming passes (exact eigenvectors).
    """
    import scanpy as sc

    lazy = as_lazy(X)
    if lazy is not None:
        return np.asarray(streaming_pca(lazy, n_comps, transform=_log1p_normalised))
    tmp = AnnData(X=X.astype(np.float32, copy=True))  # one copy
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.pca(tmp, n_comps=n_comps, random_state=random_state)
    return np.asarray(tmp.obsm["X_pca"])


def pcs_knn(pcs: np.ndarray, k: int, random_state: int = 0) -> np.ndarray:
    """``(n_cells, k)`` int64 Euclidean neighbours of every row of ``pcs``, self excluded.

    Exact (scikit-learn through scanpy's ``neighbors``) up to :data:`EXACT_KNN_MAX_CELLS`
    rows: no numba compilation (~30 s) for the shared datasets; approximate above
    (:func:`_approximate_knn`), where exact search grows as ``n^2``. Rows with fewer stored
    neighbours (duplicate cells) repeat them cyclically; a row without any uses the cell itself.
    """
    import scanpy as sc

    n_cells = pcs.shape[0]
    if n_cells > EXACT_KNN_MAX_CELLS:
        return _approximate_knn(pcs, k, random_state)
    tmp = AnnData(obs=pd.DataFrame(index=pd.RangeIndex(n_cells).astype(str)))
    tmp.obsm["X_pca"] = pcs
    sc.pp.neighbors(
        tmp,
        n_neighbors=k + 1,
        use_rep="X_pca",
        transformer="sklearn",
        method="gauss",  # connectivities are unused; "umap" would JIT-compile numba (~20 s)
        random_state=random_state,
    )
    dist = tmp.obsp["distances"].tocsr()
    return _first_k_cyclic(dist.indptr, dist.indices, k)


def _first_k_cyclic(indptr: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """``(n_cells, k)`` int64: the first ``k`` stored neighbours of each CSR row, repeated
    cyclically when a row has fewer (duplicate cells), the cell itself when it has none."""
    n_cells = len(indptr) - 1
    counts = np.diff(indptr)
    pos = np.arange(k)[None, :] % np.maximum(counts, 1)[:, None] + indptr[:-1, None]
    pos = np.minimum(pos, max(len(indices) - 1, 0))
    out = indices[pos] if len(indices) else np.zeros((n_cells, k), dtype=np.int64)
    out = np.where(counts[:, None] > 0, out, np.arange(n_cells)[:, None])
    return out.astype(np.int64)


def _approximate_knn(pcs: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """``(n_cells, k)`` approximate neighbours (pynndescent's NN-descent graph, self removed).

    ``pynndescent.NNDescent`` with its default trees and iterations (as scanpy's
    ``transformer="pynndescent"`` used here before, which searched ``k + 2`` neighbours) and
    only its neighbour graph read: going through scanpy's transformer also built a search index
    (graph diversification and a numba search function) that is never queried. Rows are sorted by distance; the cell itself is
    dropped (the farthest of ``k + 1`` when the cell is missing, e.g. an exact duplicate) and a
    row with fewer than ``k`` valid neighbours repeats them cyclically (the cell itself when it
    has none), as in the exact branch. pyproject pins pynndescent < 0.6 (0.7 returns csr_array,
    which scanpy 1.11 cannot read).
    """
    from pynndescent import NNDescent

    n_cells = pcs.shape[0]
    index = NNDescent(
        np.ascontiguousarray(pcs, dtype=np.float32),
        n_neighbors=k + 1,
        metric="euclidean",
        random_state=random_state,
        low_memory=True,
    )
    idx = index.neighbor_graph[0]
    del index
    valid = (idx != np.arange(n_cells)[:, None]) & (idx >= 0)  # self and empty slots dropped
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(valid.sum(1), out=indptr[1:])
    return _first_k_cyclic(indptr, idx[valid], k)


def _log1p_normalised(block: np.ndarray) -> np.ndarray:
    """``log1p`` of rows scaled to 1e4 counts (scanpy's ``normalize_total`` + ``log1p``)."""
    size = block.sum(1, keepdims=True)
    return np.log1p(block / np.where(size > 0, size, 1.0) * np.float32(1e4))


#: scPoli's Adam eps, set for its unscaled CVAE loss (NB summed over genes).
SCPOLI_ADAM_EPS = 0.01


def adam_eps(cvae_weight: float) -> float:
    """Adam eps for a CVAE loss scaled by ``cvae_weight``: ``SCPOLI_ADAM_EPS * cvae_weight``.

    Adam on ``c * L`` with eps ``c * e`` takes exactly the steps of Adam on ``L`` with eps ``e``.
    The decoder, the dispersions and the condition embeddings receive gradients from the CVAE
    term only, so this keeps scPoli's optimiser (eps 0.01 on the unscaled loss) for them. With
    eps 0.01 on the 0.01-scaled loss their gradients (median ~1e-3 for the decoder's output
    weights on Kang at initialisation) sat below eps, Adam's steps shrank ~10-100x and decoded
    metacells stayed near the mean profile (docs/scproto.md). The authors' LARC-SGD scales each
    layer's step to its weight norm, so the 0.01 weight does not slow their decoder either.
    ``cvae_weight <= 0`` (no CVAE term): 1e-8, torch's default.
    """
    return SCPOLI_ADAM_EPS * cvae_weight if cvae_weight > 0 else 1e-8


def clr(counts: np.ndarray, pseudocount: float = 0.5) -> np.ndarray:
    """Centred log-ratio of rows of non-negative counts (``pseudocount`` added first)."""
    logp = np.log(np.asarray(counts, dtype=np.float64) + pseudocount)
    return logp - logp.mean(axis=1, keepdims=True)


class ScProto(CellpopModel):
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
    sinkhorn_min_group_ratio
        A ``batch_key`` group holding fewer than ``ceil(ratio * K)`` cells of a minibatch takes
        its Sinkhorn targets from one Sinkhorn over the whole minibatch (global fallback)
        instead of its own. Default 1.0 (a group needs one cell per prototype; below that
        the equal partition pulls targets off the nearest prototype, docs/scproto.md);
        ``0``: always per group (eq. 3 as written).
    swav_weight, propagation_weight, cvae_weight
        Loss weights of eq. 5 (scProto §4.1: 1, 1.0, 0.01). ``swav_weight=0,
        propagation_weight=0`` trains the plain scPoli-style CVAE (ablation).
    n_neighbors, n_pcs
        kNN augmentation graph (scProto §4.1: 50 neighbours on 50 PCs).
    n_conditions
        Number of condition embeddings (default: the ``batch_key`` categories of ``adata``;
        recorded so that ``load`` onto data with new batches keeps the trained shapes). Query
        cells of a batch unseen in training get the mean condition embedding.

    Raises
    ------
    ValueError
        If ``n_prototypes`` exceeds the number of cells or is < 1, or
        ``sinkhorn_min_group_ratio < 0``.

    Notes
    -----
    :meth:`train` defaults: ``max_epochs`` scvi-tools' heuristic, ``batch_size`` 512 cells, each
    paired with a kNN partner from its own split, ``early_stopping_patience`` 45 (scvi-tools),
    ``plan_kwargs`` Adam lr 1e-3, weight decay 1e-6 (scPoli), eps ``0.01 * cvae_weight``
    (:func:`adam_eps`: scPoli's eps 0.01 on the unscaled CVAE loss), prototypes frozen in the
    first epoch (SwAV), KL annealed over the first half of the run; ``datasplitter_kwargs``
    ``split_by_sample=False``. The kNN graph is built on the first ``train()``.
    """

    _module_cls = ScProtoModule
    _default_batch_size = 512
    _default_patience = 45

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
        sinkhorn_min_group_ratio: float = 1.0,
        swav_weight: float = 1.0,
        propagation_weight: float = 1.0,
        cvae_weight: float = 0.01,
        n_neighbors: int = 50,
        n_pcs: int = 50,
        n_conditions: int | None = None,
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
        if n_conditions is None:
            n_conditions = int(self.summary_stats.n_batch)
        self.n_neighbors = n_neighbors
        self.n_pcs = n_pcs
        self.knn_index_ = None  # (n_cells, n_neighbors) built on the first train()
        self.prototype_radius_ = None  # (K,) set after training
        self.module = self._module_cls(
            n_input=len(self.var_names_),
            n_batch=n_conditions,
            n_prototypes=n_prototypes,
            n_latent=n_latent,
            n_hidden=n_hidden,
            embedding_dim=embedding_dim,
            dropout_rate=dropout_rate,
            temperature=temperature,
            sinkhorn_epsilon=sinkhorn_epsilon,
            sinkhorn_iterations=sinkhorn_iterations,
            hard_assignment=hard_assignment,
            sinkhorn_min_group_ratio=sinkhorn_min_group_ratio,
            swav_weight=swav_weight,
            propagation_weight=propagation_weight,
            cvae_weight=cvae_weight,
        )
        self._model_summary_string = (
            f"ScProto: {n_prototypes} prototypes, n_latent={n_latent}, {n_conditions} "
            f"condition(s), loss weights swav={swav_weight}, propagation={propagation_weight}, "
            f"cvae={cvae_weight}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    @doc.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        *,
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
        %(param_layer)s Raw integer counts.
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
            If the matrix holds NaN/inf, negative or non-integer values (counts are required),
            or an obs key has missing values.
        TypeError
            On an unknown keyword (e.g. ``obsm_key``).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        cls._register(
            adata, setup_method_args, layer=layer, check_input=check_counts,
            categorical={
                REGISTRY_KEYS.BATCH_KEY: (batch_key, "batch_key"),
                REGISTRY_KEYS.LABELS_KEY: (labels_key, "labels_key"),
                REGISTRY_KEYS.SAMPLE_KEY: (sample_key, "sample_key"),
            },
            transfer_kwargs=kwargs,
        )  # fmt: skip

    def _check_input(self, X, what: str) -> None:
        check_counts(X, what)

    # ------------------------------------------------------------------ training
    def _default_max_epochs(self) -> int:
        """scvi-tools' heuristic ``min(400, 400 * 20000 / n_cells)``."""
        return get_max_epochs_heuristic(self.adata.n_obs)

    def _datamodule(self, batch_size, train_size, load_to_device, split_by_sample: bool = False):
        """Cells on the device, each batch with one kNN partner per cell (same split).

        ``datasplitter_kwargs``: ``split_by_sample`` holds out whole samples (needs
        ``sample_key``). The kNN graph is built once (first call) and kept in ``knn_index_``.
        """
        batch = self._codes(self.adata_manager, REGISTRY_KEYS.BATCH_KEY)
        self._check_batch_sizes(batch, batch_size)
        sample = None
        if split_by_sample:
            sample = self._samples(self.adata_manager)[0]
        X = self._input()
        if self.knn_index_ is None:
            self.knn_index_ = knn_index(X, self.n_neighbors, self.n_pcs, random_state=seed())
        return CellDataModule(
            X,
            batch=batch,
            labels=self._codes(self.adata_manager, REGISTRY_KEYS.LABELS_KEY),
            sample=sample,
            validation_size=1.0 - train_size,
            batch_size=batch_size,
            load_to_device=load_to_device,
            seed=seed(),
            partners=self.knn_index_,
        )

    def _plan_defaults(self, max_epochs: int) -> dict:
        """Adam (weight decay 1e-6: scPoli; eps :func:`adam_eps`), constant lr 1e-3,
        prototypes frozen in the first epoch (SwAV), KL annealed over the first half of the run,
        ELBO logged."""
        return dict(
            optimizer="Adam", lr=1e-3, eps=adam_eps(self.module.cvae_weight), weight_decay=1e-6,
            scheduler=None, frozen=("prototypes",), frozen_epochs=1, log_elbo=True,
            n_epochs_kl_warmup=max(1, max_epochs // 2),
        )  # fmt: skip

    def _check_batch_sizes(self, codes: np.ndarray, batch_size: int) -> None:
        counts = np.bincount(codes)
        used = np.flatnonzero(counts)
        n = codes.shape[0]
        expected = min(batch_size, n) * counts / n
        bad = used[expected[used] < MIN_CELLS_PER_BATCH_IN_MINIBATCH]
        if bad.size:
            cats = self.adata_manager.get_state_registry(
                REGISTRY_KEYS.BATCH_KEY
            ).categorical_mapping
            names = [f"{cats[i]!r} ({counts[i]} cells)" for i in bad[:5]]
            raise ValueError(
                f"batch_key categories {', '.join(names)} are too small: a minibatch of "
                f"{batch_size} cells would hold fewer than {MIN_CELLS_PER_BATCH_IN_MINIBATCH} of "
                "them on average, too few to form swapped-prediction pairs (groups with fewer "
                "than 2 cells are left out of the SwAV loss). Increase batch_size or "
                "merge/remove these batches."
            )

    # ------------------------------------------------------------------ outputs
    def _embed_batch(self, batch: dict) -> torch.Tensor:
        """Latent means of the encoder ``(b, n_latent)``."""
        return self.module._encode(batch[REGISTRY_KEYS.X_KEY], batch[REGISTRY_KEYS.BATCH_KEY])[0]

    def _scores(self, z: np.ndarray) -> torch.Tensor:
        from cellpop.nn._swav import cosine_scores

        protos = self.module.normalized_prototypes().detach().cpu()
        return cosine_scores(torch.as_tensor(z), protos)

    @doc.dedent
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
        %(param_adata)s
        %(param_indices)s
        soft
            Return ``softmax(cos / temperature)`` over prototypes (eq. 2) instead.
        %(param_batch_size_inference)s

        Returns
        -------
        ``soft=False``: int64 array ``(n_cells,)`` with values in ``0..K-1``;
        ``soft=True``: float32 array ``(n_cells, K)``, rows sum to 1.
        """
        scores = self._scores(self.get_latent_representation(adata, indices, batch_size))
        if soft:
            return torch.softmax(scores / self.module.temperature, dim=1).numpy()
        return scores.argmax(1).numpy().astype(np.int64)

    def _on_trained(self) -> None:
        self._store_prototype_radii()

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

        Raises
        ------
        RuntimeError
            Before training.
        """
        self._check_trained()
        if self.prototype_radius_ is None:
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
        ``obsm['X_scproto']`` prototype latent points ``(K, n_latent)``; ``var`` = the model's
        genes (with the training ``var`` columns); ``uns['units']`` describes ``X``.

        Raises
        ------
        RuntimeError
            Before training.
        """
        z_proto = self.get_prototype_latent()
        prop = self.module.decode_proportions(torch.as_tensor(z_proto, device=self.device))
        X = (prop.cpu().numpy() * library_size).astype(np.float32)
        k = X.shape[0]
        assign = self.get_prototype_assignment()
        obs = pd.DataFrame(index=[f"prototype_{i}" for i in range(k)])
        obs["n_cells"] = np.bincount(assign, minlength=k)
        labels = self._codes(self.adata_manager, REGISTRY_KEYS.LABELS_KEY)
        if self._setup_args.get("labels_key") is not None:
            mapping = self.adata_manager.get_state_registry(
                REGISTRY_KEYS.LABELS_KEY
            ).categorical_mapping
            tab = pd.crosstab(assign, np.asarray(mapping)[labels])
            tab = tab.reindex(range(k), fill_value=0)
            has = tab.sum(1).to_numpy() > 0
            major = np.where(has, tab.idxmax(1).astype(str).to_numpy(), "unassigned")
            purity = np.where(has, tab.max(1) / np.maximum(tab.sum(1), 1), np.nan)
            obs["majority_label"] = pd.Categorical(major)
            obs["purity"] = purity.astype(float)
        var = self.adata.var.reindex(pd.Index(self.var_names_.astype(str))).copy()
        meta = AnnData(X=X, obs=obs, var=var)
        meta.obsm["X_scproto"] = z_proto.astype(np.float32)
        meta.uns["units"] = (
            f"X: decoded prototype expression, gene proportions x {library_size:g} "
            "(per-cell normalised, not log-transformed), mean condition embedding"
        )
        return meta

    def _sample_vectors(
        self, manager: AnnDataManager, kind: str = "occupancy", pseudocount: float = 0.5
    ) -> pd.DataFrame:
        """``kind="occupancy"`` (default): cells of each sample assigned to each prototype, plus
        ``pseudocount``, centred-log-ratio transformed, ``(n_samples, K)``, columns
        ``prototype_i``; ``kind="mean_latent"``: mean latent ``(n_samples, n_latent)``, columns
        ``latent_i``. ``ValueError`` for another ``kind``."""
        if kind == "mean_latent":
            return super()._sample_vectors(manager)
        if kind != "occupancy":
            raise ValueError(f"kind must be 'occupancy' or 'mean_latent', got {kind!r}.")
        codes, names = self._samples(manager)
        k = self.module.prototypes.shape[0]
        assign = self._scores(self._latent(manager, None, None)).argmax(1).numpy()
        counts = np.zeros((len(names), k))
        np.add.at(counts, (codes, assign), 1.0)
        cols = [f"prototype_{i}" for i in range(k)]
        return pd.DataFrame(clr(counts, pseudocount), index=names, columns=cols)
