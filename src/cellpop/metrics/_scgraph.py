"""scGraph metrics ("Metric mirages in cell embeddings", Wang, Leskovec & Regev 2024).

Do cell-type centroid distances in an embedding agree with those of a per-batch PCA
reference? Reference: in every batch with >= 100 cells, 1,000 highly variable genes, 10 PCs,
5%-trimmed-mean centroid of every cell type with >= 10 cells, Euclidean centroid distances,
each column divided by its max; the consensus is the mean over batches (cell types missing
from a batch are left out of that batch's vote). The same centroid distances are computed in
the embedding over all cells. Per reference cell type (column), over the other cell types:
Rank-PCA = Spearman, Corr-PCA = Pearson, Corr-Weighted = Pearson weighted by
``1 / d_consensus`` (the cell type itself gets weight 0; weights sum to 1); each averaged over
columns. Unlike the published package, embeddings of any dimension (including 2-D) are scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from cellpop.data import check_obs_key

__all__ = ["centroid_distances", "scgraph", "scgraph_reference"]


def centroid_distances(
    X: np.ndarray, labels: np.ndarray, min_cells: int = 10, trim: float = 0.05
) -> pd.DataFrame:
    """Column-max-normalised Euclidean distances between trimmed-mean cell-type centroids.

    Parameters
    ----------
    X
        Cell coordinates, shape ``(n_cells, d)``.
    labels
        Cell-type label per cell, shape ``(n_cells,)``.
    min_cells
        Cell types with fewer cells are left out.
    trim
        Fraction cut from each end by :func:`scipy.stats.trim_mean` (per coordinate).

    Returns
    -------
    Square DataFrame (cell types x cell types), zero diagonal, every column divided by its
    maximum (so each column's largest entry is 1).
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels).astype(str)
    types, counts = np.unique(labels, return_counts=True)
    types = types[counts >= min_cells]
    if len(types) == 0:
        return pd.DataFrame()
    cent = np.stack([stats.trim_mean(X[labels == t], trim, axis=0) for t in types])
    d = np.sqrt(((cent[:, None, :] - cent[None, :, :]) ** 2).sum(-1))
    col_max = d.max(0)
    d = d / np.where(col_max > 0, col_max, 1.0)
    return pd.DataFrame(d, index=types, columns=types)


def scgraph_reference(
    adata: AnnData,
    batch_key: str,
    label_key: str,
    layer: str | None = None,
    counts: bool = False,
    n_hvg: int = 1000,
    n_pcs: int = 10,
    min_cells_batch: int = 100,
    min_cells_type: int = 10,
    trim: float = 0.05,
) -> pd.DataFrame:
    """Consensus reference distances: mean over batches of per-batch PCA centroid distances.

    Parameters
    ----------
    adata
        Cells x genes; expression in ``X`` (or ``layer``) log1p-normalised, or raw counts with
        ``counts=True`` (then normalised to 1e4 and log1p-transformed on a copy).
    batch_key, label_key
        ``adata.obs`` columns of batch and cell type.
    layer
        Layer to read instead of ``X``.
    counts
        The matrix holds raw counts.
    n_hvg, n_pcs, min_cells_batch, min_cells_type, trim
        scGraph defaults: 1000 HVGs (scanpy, Seurat flavour), 10 PCs, batches with >= 100
        cells, cell types with >= 10 cells, 5% trimmed means.

    Returns
    -------
    Square DataFrame over the cell types seen in at least one batch.

    Raises
    ------
    KeyError
        If a key is missing.
    ValueError
        If no batch has ``min_cells_batch`` cells.
    """
    import scanpy as sc

    check_obs_key(adata, batch_key, "batch_key")
    check_obs_key(adata, label_key, "label_key")
    X = adata.layers[layer] if layer is not None else adata.X
    base = AnnData(X=X.copy(), obs=adata.obs[[batch_key, label_key]].copy())
    if counts:
        sc.pp.normalize_total(base, target_sum=1e4)
        sc.pp.log1p(base)
    mats = []
    for b in pd.unique(base.obs[batch_key]):
        sub = base[(base.obs[batch_key] == b).to_numpy()].copy()
        if sub.n_obs < min_cells_batch:
            continue
        n_top = min(n_hvg, sub.n_vars)
        sc.pp.highly_variable_genes(sub, n_top_genes=n_top, subset=True)
        n_comps = min(n_pcs, min(sub.shape) - 1)
        sc.pp.pca(sub, n_comps=n_comps, random_state=0)
        d = centroid_distances(
            sub.obsm["X_pca"], sub.obs[label_key].to_numpy(), min_cells_type, trim
        )
        if d.shape[0] > 1:
            mats.append(d)
    if not mats:
        raise ValueError(
            f"No batch of {batch_key!r} has >= {min_cells_batch} cells with >= 2 cell types of "
            f">= {min_cells_type} cells: scGraph needs at least one."
        )
    types = sorted(set().union(*[m.index for m in mats]))
    stack = np.stack([m.reindex(index=types, columns=types).to_numpy() for m in mats])
    return pd.DataFrame(np.nanmean(stack, axis=0), index=types, columns=types)


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    w = w / w.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    if vx <= 0 or vy <= 0:
        return np.nan
    return float(cov / np.sqrt(vx * vy))


def scgraph(
    adata: AnnData,
    embedding_key: str | list[str],
    batch_key: str,
    label_key: str,
    reference: pd.DataFrame | None = None,
    min_cells_type: int = 10,
    trim: float = 0.05,
    **reference_kwargs,
) -> pd.DataFrame:
    """scGraph Rank-PCA, Corr-PCA and Corr-Weighted of one or more embeddings.

    Parameters
    ----------
    adata
        Cells x genes with the embedding(s) in ``adata.obsm`` (not modified).
    embedding_key
        ``adata.obsm`` key(s) of embeddings, shape ``(n_cells, d)`` each (any ``d >= 1``).
    batch_key, label_key
        ``adata.obs`` columns of batch and cell type.
    reference
        Precomputed :func:`scgraph_reference` (computed here when ``None``).
    min_cells_type, trim
        Cell types with fewer cells are ignored; trimmed-mean fraction.
    **reference_kwargs
        Passed to :func:`scgraph_reference` (``layer``, ``counts``, ``n_hvg``, ...).

    Returns
    -------
    DataFrame, one row per embedding, columns ``rank_pca``, ``corr_pca``, ``corr_weighted``
    (each in [-1, 1], higher = embedding agrees better with the PCA reference).

    Raises
    ------
    KeyError
        If an embedding or obs key is missing.
    """
    keys = [embedding_key] if isinstance(embedding_key, str) else list(embedding_key)
    for k in keys:
        if k not in adata.obsm:
            raise KeyError(f"embedding_key={k!r} is not in adata.obsm: {list(adata.obsm)}")
    if reference is None:
        reference = scgraph_reference(adata, batch_key, label_key, **reference_kwargs)
    labels = adata.obs[label_key].to_numpy()
    rows = {}
    for k in keys:
        emb = centroid_distances(np.asarray(adata.obsm[k]), labels, min_cells_type, trim)
        types = [t for t in reference.index if t in emb.index]
        ref = reference.loc[types, types].to_numpy()
        e = emb.loc[types, types].to_numpy()
        rank, corr, wcorr = [], [], []
        for j in range(len(types)):
            others = np.array([i for i in range(len(types)) if i != j])
            x, y = ref[others, j], e[others, j]
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3:
                continue
            x, y = x[ok], y[ok]
            rank.append(stats.spearmanr(x, y).statistic)
            corr.append(stats.pearsonr(x, y).statistic)
            wcorr.append(_weighted_pearson(x, y, 1.0 / np.maximum(x, 1e-12)))
        rows[k] = {
            "rank_pca": float(np.nanmean(rank)) if rank else np.nan,
            "corr_pca": float(np.nanmean(corr)) if corr else np.nan,
            "corr_weighted": float(np.nanmean(wcorr)) if wcorr else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")
