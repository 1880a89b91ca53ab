"""scib-metrics integration benchmark on a copy of the AnnData (cell-level models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from cellpop.data import check_obs_key

__all__ = ["integration_scores"]


def _sklearn_neighbors(X: np.ndarray, k: int):
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X)
    return NeighborsResults(indices=idx, distances=dist)


def integration_scores(
    adata: AnnData,
    batch_key: str,
    label_key: str,
    embedding_obsm_keys: list[str],
    pre_integrated_embedding_obsm_key: str | None = None,
    bio_conservation_metrics=None,
    batch_correction_metrics=None,
    n_jobs: int = 1,
    neighbors: str = "sklearn",
) -> pd.DataFrame:
    """scIB metrics of cell embeddings with scib-metrics' ``Benchmarker``.

    A lean copy of ``adata`` (the embeddings, the two obs columns and ``X``) is benchmarked, so
    the user's AnnData is not modified (``Benchmarker`` writes into the AnnData it gets).

    Parameters
    ----------
    adata
        Cells with the embeddings in ``adata.obsm``; ``adata.X`` should be log-normalised when
        no ``pre_integrated_embedding_obsm_key`` is given (scib-metrics then runs PCA on it as
        the unintegrated reference for some batch metrics).
    batch_key, label_key
        ``adata.obs`` columns with the batch (e.g. donor) and the cell type.
    embedding_obsm_keys
        Embeddings to score, each shape (n_cells, d).
    pre_integrated_embedding_obsm_key
        Optional unintegrated embedding (e.g. ``"X_pca"``) instead of PCA of ``X``.
    bio_conservation_metrics, batch_correction_metrics
        scib-metrics ``BioConservation`` / ``BatchCorrection`` objects (``None``: defaults).
    n_jobs
        Parallel jobs for neighbour search.
    neighbors
        ``"sklearn"`` (default): exact kNN with scikit-learn (no JIT compilation, fine up to
        ~10^5 cells); ``"pynndescent"``: scib-metrics' approximate default.

    Returns
    -------
    pandas.DataFrame
        One row per embedding, one column per metric (raw values, ``min_max_scale=False``),
        plus the aggregates "Batch correction", "Bio conservation" and "Total".

    Raises
    ------
    KeyError
        Missing obs column or obsm key.
    ValueError
        Unknown ``neighbors``.
    """
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    check_obs_key(adata, batch_key, "batch_key")
    check_obs_key(adata, label_key, "label_key")
    keys = list(embedding_obsm_keys)
    if pre_integrated_embedding_obsm_key is not None:
        keys_all = [*keys, pre_integrated_embedding_obsm_key]
    else:
        keys_all = keys
    for k in keys_all:
        if k not in adata.obsm:
            raise KeyError(f"{k!r} is not in adata.obsm; available: {list(adata.obsm.keys())}")
    lean = AnnData(
        X=adata.X.copy() if adata.X is not None else None,
        obs=pd.DataFrame(
            {
                batch_key: adata.obs[batch_key].astype(str).astype("category").to_numpy(),
                label_key: adata.obs[label_key].astype(str).astype("category").to_numpy(),
            },
            index=adata.obs_names.copy(),
        ),
        obsm={k: np.asarray(adata.obsm[k], dtype=np.float32) for k in keys_all},
    )
    bm = Benchmarker(
        lean,
        batch_key=batch_key,
        label_key=label_key,
        embedding_obsm_keys=keys,
        pre_integrated_embedding_obsm_key=pre_integrated_embedding_obsm_key,
        bio_conservation_metrics=bio_conservation_metrics or BioConservation(),
        batch_correction_metrics=batch_correction_metrics or BatchCorrection(),
        n_jobs=n_jobs,
        progress_bar=False,
    )
    if neighbors == "sklearn":
        bm.prepare(neighbor_computer=_sklearn_neighbors)
    elif neighbors != "pynndescent":
        raise ValueError(f"neighbors must be 'sklearn' or 'pynndescent', got {neighbors!r}")
    bm.benchmark()
    res = bm.get_results(min_max_scale=False)
    res = res.drop(index="Metric Type", errors="ignore")
    return res.apply(pd.to_numeric, errors="coerce")
