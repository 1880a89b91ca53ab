"""GloScope (Wang et al. 2024): sample x sample divergence between cell densities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.neighbors import NearestNeighbors

from cellpop.data._samples import rows_by_code
from cellpop.data._validation import check_finite, get_input_matrix

from ._sample_adata import _sample_codes


def _jitter_duplicates(X: np.ndarray, random_state: int) -> tuple[np.ndarray, int]:
    """Add a tiny seeded Gaussian jitter to every cell that has an identical copy."""
    _, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    dup = counts[inverse.ravel()] > 1
    n_dup = int(dup.sum())
    if n_dup:
        scale = 1e-6 * float(np.std(X)) if np.std(X) > 0 else 1e-6
        rng = np.random.default_rng(random_state)
        X = X.copy()
        X[dup] += rng.normal(scale=scale, size=(n_dup, X.shape[1]))
    return X, n_dup


def gloscope(
    adata: AnnData,
    sample_key: str,
    obsm_key: str = "X_pca",
    n_dims: int | None = None,
    k: int = 25,
    random_state: int = 0,
    n_jobs: int | None = None,
    n_query_cells: int | None = None,
) -> pd.DataFrame:
    """GloScope sample x sample distance: symmetrised kNN estimate of the KL divergence.

    For samples ``i`` (``m_i`` cells) and ``j`` in a ``d``-dimensional cell embedding
    (Wang et al. 2024, kNN density option)::

        KL(i || j) = d / m_i * sum_{x in i} log(r_j(x) / r_i(x)) + log(m_j / (m_i - 1))

    where ``r_j(x)`` is the distance from cell ``x`` to its ``k``-th nearest neighbour among the
    cells of ``j`` and ``r_i(x)`` the same within ``i`` excluding ``x`` itself. The result is
    ``D_ij = KL(i||j) + KL(j||i)`` with negatives clipped to 0 and a zero diagonal. One
    exact (sklearn) neighbour index is built per sample and queried with all cells, in blocks
    of 65,536 cells (memory ``O(block k)`` besides the embedding).

    Cost: every cell is queried against every sample, ``n_samples x n_cells`` queries of a
    ``k``-NN search in one sample (1e9 at 1,000 samples x 1M cells: about 2 CPU-hours,
    ``docs/scale.md``). ``n_query_cells`` makes it ``n_samples^2 x n_query_cells``: the mean
    over the cells ``x`` of ``i`` is then taken over a seeded random subset of at most
    ``n_query_cells`` cells of ``i`` (a Monte Carlo estimate of the same expectation, as the
    GloScope R package does for its GMM densities; ``r_i`` and ``r_j`` still use every cell
    of ``i`` and ``j``, so ``m_i`` and ``m_j`` are unchanged).

    Parameters
    ----------
    adata
        AnnData of cells. Not modified.
    sample_key
        Column of ``adata.obs`` with the sample id.
    obsm_key
        Cell embedding in ``adata.obsm`` (default ``"X_pca"``). GloScope is meant for a
        low-dimensional embedding (the authors use 10-30 dimensions).
    n_dims
        Use the first ``n_dims`` columns of the embedding; ``None`` = all of them.
    k
        Neighbour rank of the kNN estimator. Default 25, the GloScope Python port's default
        (the R package uses 50); every sample needs more than ``k`` cells.
    random_state
        Seed of the tiny jitter (1e-6 x the embedding's standard deviation) added to cells
        that have an exact duplicate, so that no neighbour distance is 0.
    n_jobs
        Passed to :class:`sklearn.neighbors.NearestNeighbors`.
    n_query_cells
        Cells per sample whose neighbour distances enter the mean (a seeded random subset;
        samples with fewer cells use all of them). ``None`` (default): every cell, the exact
        estimator. Accuracy against the exact matrix is measured in ``docs/scale.md``.

    Returns
    -------
    Symmetric DataFrame ``(n_samples, n_samples)`` of non-negative divergences (nats), zero
    diagonal; index and columns = sample ids in category order.

    Raises
    ------
    KeyError
        If ``sample_key`` or ``obsm_key`` is missing.
    ValueError
        If the embedding holds NaN/inf, ``n_dims``, ``k`` or ``n_query_cells`` is out of
        range, fewer than two samples exist, or a sample has ``<= k`` cells (the sample and
        its size are named).
    """
    X = get_input_matrix(adata, obsm_key=obsm_key)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"adata.obsm[{obsm_key!r}] must be 2-D, got shape {X.shape}.")
    if n_dims is not None:
        if not 1 <= n_dims <= X.shape[1]:
            raise ValueError(
                f"n_dims={n_dims} must be between 1 and the {X.shape[1]} columns of "
                f"adata.obsm[{obsm_key!r}]."
            )
        X = X[:, :n_dims]
    check_finite(X, f"adata.obsm[{obsm_key!r}]")
    if k < 1:
        raise ValueError(f"k={k} must be >= 1.")
    if n_query_cells is not None and n_query_cells < 1:
        raise ValueError(f"n_query_cells={n_query_cells} must be >= 1 (or None: every cell).")
    codes, samples = _sample_codes(adata, sample_key)
    n_samples = len(samples)
    if n_samples < 2:
        raise ValueError(f"sample_key={sample_key!r} defines {n_samples} sample(s); need >= 2.")
    m = np.bincount(codes, minlength=n_samples)
    small = np.flatnonzero(m <= k)
    if len(small):
        desc = ", ".join(f"{samples[s]!r} ({m[s]} cells)" for s in small[:10])
        raise ValueError(
            f"GloScope with k={k} needs more than k cells per sample; too small: {desc}. "
            "Lower k or remove these samples."
        )
    X, _ = _jitter_duplicates(X, random_state)
    d = X.shape[1]

    members = rows_by_code(codes, n_samples)  # the cells of sample j: members[j]
    if n_query_cells is None:
        query = np.arange(len(codes))
    else:
        rng = np.random.default_rng((random_state, 1))  # a stream apart from the jitter's
        query = np.sort(
            np.concatenate(
                [c if len(c) <= n_query_cells else rng.choice(c, n_query_cells, False)
                 for c in members]
            )
        )  # fmt: skip
    qcodes = codes[query]
    n_query = np.bincount(qcodes, minlength=n_samples).astype(np.float64)

    # S[i, j] = sum over the query cells x of sample i of log r_j(x), r_j = k-th neighbour
    # distance in sample j (self excluded when x is in j); one column per reference sample
    S = np.zeros((n_samples, n_samples))
    block = 65_536
    for j in range(n_samples):
        nn = NearestNeighbors(n_neighbors=k + 1, n_jobs=n_jobs).fit(X[members[j]])
        for start in range(0, len(query), block):
            rows, qc = query[start : start + block], qcodes[start : start + block]
            dist = nn.kneighbors(X[rows], n_neighbors=k + 1)[0]
            r = np.where(qc == j, dist[:, k], dist[:, k - 1])
            if (r <= 0).any():
                raise ValueError(
                    "GloScope found zero neighbour distances even after de-duplication."
                )
            S[:, j] += np.bincount(qc, weights=np.log(r), minlength=n_samples)
    own = np.diag(S)[:, None]
    mf = m.astype(np.float64)
    kl = d / n_query[:, None] * (S - own) + np.log(mf[None, :] / (mf[:, None] - 1.0))
    D = kl + kl.T
    np.fill_diagonal(D, 0.0)
    D = np.clip(D, 0.0, None)
    return pd.DataFrame(D, index=samples, columns=samples.copy())
