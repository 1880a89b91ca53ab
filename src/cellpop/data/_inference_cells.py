"""Fixed cell sets for inference (SampleCLR App. A.5)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.sparse.linalg import eigsh
from sklearn.neighbors import kneighbors_graph


def eigenvector_centrality(X: np.ndarray, n_neighbors: int = 15) -> np.ndarray:
    """Eigenvector centrality of each cell in the symmetrised kNN graph of ``X``.

    Parameters
    ----------
    X
        ``(n_cells, n_features)`` cell coordinates (an embedding such as PCs).
    n_neighbors
        ``k`` of the kNN graph (App. A.5: 15).

    Returns
    -------
    ``(n_cells,)`` non-negative centralities (leading eigenvector of the adjacency matrix,
    scaled to unit maximum).
    """
    n = X.shape[0]
    if n <= 2:
        return np.ones(n)
    k = min(n_neighbors, n - 1)
    adj = kneighbors_graph(X, k, mode="connectivity", include_self=False)
    adj = ((adj + adj.T) > 0).astype(np.float64)
    if n <= k + 2:
        vals, vecs = np.linalg.eigh(adj.toarray())
        vec = vecs[:, -1]
    else:
        _, vecs = eigsh(adj, k=1, which="LA", v0=np.ones(n))
        vec = vecs[:, 0]
    vec = np.abs(vec)
    return vec / vec.max()


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

    ``"centrality"`` (App. A.5): the ``n_cells`` cells of lowest eigenvector centrality in the
    sample's ``n_neighbors``-NN graph; ``"random"``: a seeded random subset. Samples with fewer
    cells are resampled with replacement (seeded) up to ``n_cells``.

    Returns
    -------
    ``(n_samples, n_cells)`` integer row indices into ``X``.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n_samples, n_cells), dtype=np.int64)
    for s in range(n_samples):
        idx = np.flatnonzero(sample_codes == s)
        if len(idx) == 0:
            raise ValueError(f"sample {s} has no cells")
        if len(idx) > n_cells:
            if method == "centrality":
                c = eigenvector_centrality(X[idx], n_neighbors)
                idx = idx[np.argsort(c, kind="stable")[:n_cells]]
            elif method == "random":
                idx = rng.choice(idx, n_cells, replace=False)
            else:
                raise ValueError(f"method must be 'centrality' or 'random', got {method!r}")
        elif len(idx) < n_cells:
            idx = np.concatenate([idx, rng.choice(idx, n_cells - len(idx), replace=True)])
        out[s] = idx
    return out
