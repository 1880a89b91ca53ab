"""Distances to soft similarities: the kNN adaptive-bandwidth kernel of POPPY (App. A.2)."""

from __future__ import annotations

import numpy as np

_K_POPPY = 100  # POPPY App. A.2: "connected to its k = 100 nearest neighbors"


def adaptive_kernel(distances, k: int = _K_POPPY, *, atol: float = 1e-8) -> np.ndarray:
    """Soft similarity S from a sample x sample distance matrix (POPPY App. A.2, eq. 6).

    A k-nearest-neighbour graph is built on ``distances`` (self excluded); ``i`` and ``j``
    are connected when either is among the other's ``k`` nearest neighbours (the undirected
    kNN graph, so S is symmetric), and each sample is connected to itself. For connected
    pairs ``S[i, j] = exp(-d_ij**2 / (sigma_i * sigma_j))`` where ``sigma_i`` is the distance
    from ``i`` to its ``k``-th nearest neighbour (Coifman & Lafon 2006 local scaling); other
    entries are 0. The diagonal is 1. S is returned unnormalised; POPPY row-normalises it
    inside the loss (§2.2.3).

    Parameters
    ----------
    distances
        ``(n, n)`` distances (e.g. :func:`composition_distances`, in hops), non-negative,
        symmetric, zero diagonal, ``n >= 2``.
    k
        Neighbours per sample; default 100 (paper App. A.2). Values ``>= n`` use ``n - 1``
        (every other sample; then the graph is complete).
    atol
        Tolerance for the symmetry and zero-diagonal checks.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64 S with entries in [0, 1], symmetric, diagonal 1.

    Raises
    ------
    TypeError
        If ``k`` is not an integer.
    ValueError
        If ``distances`` is not square with ``n >= 2``, has NaN / infinite / negative
        entries, is not symmetric, has a non-zero diagonal, or ``k < 1``.

    Notes
    -----
    Ties at the k-th neighbour are broken by :func:`numpy.argpartition`. If ``sigma_i`` is 0
    (at least ``k`` other samples at distance 0), the kernel's limit is used: 1 for pairs at
    distance 0, 0 otherwise.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 2:
        raise ValueError(f"distances must be a square (n, n) matrix with n >= 2, got {d.shape}.")
    if not np.isfinite(d).all():
        raise ValueError("distances has NaN or infinite entries.")
    if (d < 0).any():
        raise ValueError("distances has negative entries.")
    if not np.allclose(d, d.T, rtol=0, atol=atol):
        raise ValueError("distances is not symmetric.")
    if np.abs(np.diag(d)).max() > atol:
        raise ValueError("distances has a non-zero diagonal.")
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an integer, got {k!r}.")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    n = d.shape[0]
    k = min(int(k), n - 1)
    off = d.copy()
    np.fill_diagonal(off, np.inf)
    nn = np.argpartition(off, k - 1, axis=1)[:, :k]  # k nearest, unordered
    sigma = np.take_along_axis(off, nn, axis=1).max(axis=1)
    adj = np.zeros((n, n), dtype=bool)
    np.put_along_axis(adj, nn, True, axis=1)
    adj |= adj.T
    np.fill_diagonal(adj, True)
    scale = np.outer(sigma, sigma)
    d2 = d**2
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(scale > 0, np.exp(-d2 / np.where(scale > 0, scale, 1.0)), d2 == 0)
    s = np.where(adj, s, 0.0)
    np.fill_diagonal(s, 1.0)
    return s
