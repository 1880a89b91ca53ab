"""Fixed cell sets for inference (SampleCLR App. A.5).

SampleCLR embeds each sample at inference from the cells of lowest eigenvector centrality in
the sample's 15-NN graph. On a graph with several connected components the leading eigenvector
of the adjacency matrix lives on one component only: every other cell gets a centrality of
round-off size (~1e-16) and the "lowest" cells are chosen by floating-point noise. Here
centrality is computed per connected component and every component contributes cells in
proportion to its size (see :func:`inference_cells`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh
from sklearn.neighbors import kneighbors_graph

from ._lazy import as_lazy
from ._samples import rows_by_code


def _knn_adjacency(X: np.ndarray, n_neighbors: int) -> sp.csr_matrix:
    """Symmetrised (``A or A^T``) binary kNN adjacency, no self loops."""
    k = min(n_neighbors, X.shape[0] - 1)
    adj = kneighbors_graph(X, k, mode="connectivity", include_self=False)
    return ((adj + adj.T) > 0).astype(np.float64).tocsr()


def _leading_eigenvector(adj: sp.csr_matrix) -> np.ndarray:
    """Non-negative leading eigenvector of a connected adjacency matrix, unit maximum."""
    n = adj.shape[0]
    if n <= 2:
        return np.ones(n)
    if n <= 64:  # small components: dense and exact
        vec = np.linalg.eigh(adj.toarray())[1][:, -1]
    else:
        vec = eigsh(adj, k=1, which="LA", v0=np.ones(n))[1][:, 0]
    vec = np.abs(vec)  # Perron vector: one sign on a connected graph
    return vec / vec.max()


def _centrality_and_components(
    X: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-component centrality ``(n,)`` and the members of each component (ascending)."""
    n = X.shape[0]
    if n <= 2:
        return np.ones(n), [np.arange(n)]
    adj = _knn_adjacency(X, n_neighbors)
    n_comp, comp = connected_components(adj, directed=False)
    groups = rows_by_code(comp, n_comp)
    cent = np.empty(n)
    for members in groups:
        cent[members] = _leading_eigenvector(adj[members][:, members])
    return cent, groups


def eigenvector_centrality(X: np.ndarray, n_neighbors: int = 15) -> np.ndarray:
    """Eigenvector centrality of each cell in the symmetrised kNN graph of ``X``.

    Computed per connected component of the graph (the leading eigenvector of the whole
    adjacency matrix is zero, up to round-off, outside one component).

    Parameters
    ----------
    X
        ``(n_cells, n_features)`` cell coordinates (an embedding such as PCs).
    n_neighbors
        ``k`` of the kNN graph (App. A.5: 15), capped at ``n_cells - 1``; the graph joins
        ``i`` and ``j`` when either is among the other's ``k`` nearest neighbours.

    Returns
    -------
    ``(n_cells,)`` centralities in ``(0, 1]``: the leading eigenvector of each connected
    component's adjacency matrix, scaled to unit maximum within the component (so values are
    comparable within a component, not across components). ``n_cells <= 2``: all ones.
    """
    return _centrality_and_components(np.asarray(X), n_neighbors)[0]


def component_quotas(sizes: np.ndarray, n_cells: int) -> np.ndarray:
    """Split ``n_cells`` over components in proportion to their sizes (largest remainder).

    Component ``c`` of ``m_c`` cells (``M = sum m_c > n_cells``) gets ``floor(n_cells m_c / M)``
    cells; the cells left over go one each to the components with the largest fractional
    parts (ties: the larger component, then the lower index). Each quota is at most ``m_c``.

    Parameters
    ----------
    sizes
        ``(n_components,)`` component sizes.
    n_cells
        Cells to split, ``0 <= n_cells <= sizes.sum()``.

    Returns
    -------
    ``(n_components,)`` integer quotas summing to ``n_cells``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = n_cells * sizes / sizes.sum()
    quota = np.floor(exact).astype(np.int64)
    left = n_cells - int(quota.sum())
    if left:
        order = np.lexsort((np.arange(len(sizes)), -sizes, -(exact - quota)))
        quota[order[:left]] += 1
    return quota


def inference_cells(
    X: np.ndarray,
    sample_codes: np.ndarray,
    n_samples: int,
    n_cells: int = 1000,
    method: Literal["centrality", "random"] = "centrality",
    n_neighbors: int = 15,
    seed: int = 0,
) -> np.ndarray:
    """Pick a fixed set of ``n_cells`` cells per sample for inference.

    ``"centrality"`` (SampleCLR App. A.5): the cells of lowest eigenvector centrality in the
    sample's ``n_neighbors``-NN graph. When that graph has several connected components,
    centrality is computed per component (:func:`eigenvector_centrality`) and component ``c``
    with ``m_c`` of the sample's ``M`` cells contributes its ``q_c`` cells of lowest
    centrality, ``q_c`` = ``n_cells * m_c / M`` rounded by largest remainder
    (:func:`component_quotas`), so the set keeps the sample's mix of separated populations.
    (App. A.5 does not treat disconnected graphs; on a connected graph this is the plain rule.)
    ``"random"``: a seeded random subset. Samples with at most ``n_cells`` cells keep all
    their cells, and smaller ones are topped up by resampling with replacement (seeded).

    Parameters
    ----------
    X
        ``(n_cells_total, n_features)`` cell coordinates: dense, sparse, or on disk (each
        sample's rows are then read on their own).
    sample_codes
        ``(n_cells_total,)`` sample index of every cell, ``0 .. n_samples - 1``.
    n_samples
        Number of samples.
    n_cells
        Cells per sample (App. A.5: 1000).
    method
        ``"centrality"`` or ``"random"``.
    n_neighbors
        ``k`` of the kNN graph (App. A.5: 15).
    seed
        Seed of the random subsets and of the resampling.

    Returns
    -------
    ``(n_samples, n_cells)`` integer row indices into ``X``.

    Raises
    ------
    ValueError
        If a sample has no cells or ``method`` is unknown.
    """
    if method not in ("centrality", "random"):
        raise ValueError(f"method must be 'centrality' or 'random', got {method!r}")
    rng = np.random.default_rng(seed)
    lazy = as_lazy(X)
    if lazy is None and not sp.issparse(X):
        X = np.asarray(X)
    out = np.empty((n_samples, n_cells), dtype=np.int64)
    for s, idx in enumerate(rows_by_code(sample_codes, n_samples)):
        if len(idx) == 0:
            raise ValueError(f"sample {s} has no cells")
        if len(idx) > n_cells:
            if method == "centrality":
                if lazy is not None:  # one sample's rows from disk
                    rows = lazy.rows(idx)
                else:
                    rows = X[idx].toarray() if sp.issparse(X) else X[idx]
                cent, groups = _centrality_and_components(rows, n_neighbors)
                quotas = component_quotas(np.array([len(g) for g in groups]), n_cells)
                chosen = [
                    members[np.argsort(cent[members], kind="stable")[:q]]
                    for members, q in zip(groups, quotas, strict=True)
                ]
                idx = idx[np.sort(np.concatenate(chosen))]
            else:
                idx = rng.choice(idx, n_cells, replace=False)
        elif len(idx) < n_cells:
            idx = np.concatenate([idx, rng.choice(idx, n_cells - len(idx), replace=True)])
        out[s] = idx
    return out
