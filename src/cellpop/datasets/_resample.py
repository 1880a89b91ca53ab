"""Larger (or smaller) copies of a real dataset for scale benchmarks: thinned cells, new donors."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

_MAX_ROUNDS = 100


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights``, at least 1 each (largest
    remainder)."""
    n = len(weights)
    share = (total - n) * weights / weights.sum()
    out = np.floor(share).astype(np.int64)
    rest = total - n - out.sum()
    out[np.argsort(-(share - out), kind="stable")[:rest]] += 1
    return out + 1


def _donor_pools(codes: np.ndarray, n_orig: int, n_donors: int) -> tuple[list, np.ndarray, list]:
    """Source cells of every new donor and the original donor(s) it comes from.

    ``n_donors >= n_orig``: new donor ``k`` is a split of original donor ``k % n_orig``;
    otherwise original donor ``d`` is merged into new donor ``d % n_donors``.
    """
    by_donor = [np.flatnonzero(codes == d) for d in range(n_orig)]
    if n_donors >= n_orig:
        src = np.arange(n_donors) % n_orig
        n_splits = np.bincount(src, minlength=n_orig)
        pools = [by_donor[d] for d in src]
        weights = np.array([len(by_donor[d]) / n_splits[d] for d in src], dtype=float)
        return pools, weights, [[d] for d in src]
    groups = [list(range(k, n_orig, n_donors)) for k in range(n_donors)]
    pools = [np.concatenate([by_donor[d] for d in g]) for g in groups]
    return pools, np.array([len(p) for p in pools], dtype=float), groups


_CHUNK = 1 << 22  # counts thinned per call: int64 temporaries of 32 MiB, not 8 bytes per count


def _thin(X: sparse.csr_matrix, rows: np.ndarray, fraction: float, rng) -> sparse.csr_matrix:
    """Rows ``rows`` of ``X`` with every count ``c`` replaced by ``Binomial(c, fraction)``.

    Thinned in chunks of :data:`_CHUNK` counts (the generator draws element by element, so
    the values equal one call on all counts)."""
    sub = X[rows]
    data = sub.data.astype(np.float32, copy=False)
    for start in range(0, data.size, _CHUNK):
        part = data[start : start + _CHUNK]
        part[:] = rng.binomial(part.astype(np.int64), fraction)
    sub.data = data
    sub.eliminate_zeros()
    return sub


def _replace_rows(X: sparse.csr_matrix, bad: np.ndarray, new: sparse.csr_matrix):
    """``X`` with its rows ``bad`` (ascending) replaced by the rows of ``new``, in order;
    one new matrix (no stacked copy)."""
    keep = np.ones(X.shape[0], dtype=bool)
    keep[bad] = False
    lengths = np.diff(X.indptr)
    lengths[bad] = np.diff(new.indptr)
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    at_kept = np.repeat(keep, lengths)  # entries of the result that come from X
    from_x = np.repeat(keep, np.diff(X.indptr))
    data = np.empty(indptr[-1], dtype=X.data.dtype)
    indices = np.empty(indptr[-1], dtype=X.indices.dtype)
    data[at_kept], indices[at_kept] = X.data[from_x], X.indices[from_x]
    data[~at_kept], indices[~at_kept] = new.data, new.indices
    return sparse.csr_matrix((data, indices, indptr), shape=X.shape)


def _bad_rows(X: sparse.csr_matrix, rng) -> np.ndarray:
    """Rows that are empty or equal to an earlier row (two random projections in float64 agree;
    a rare false positive only causes a redraw)."""
    proj = X @ rng.standard_normal((X.shape[1], 2))
    _, first = np.unique(proj, axis=0, return_index=True)
    bad = np.ones(X.shape[0], dtype=bool)
    bad[first] = False
    return np.flatnonzero(bad | (np.diff(X.indptr) == 0))


def resample(
    adata: AnnData,
    n_cells: int,
    n_donors: int,
    seed: int = 0,
    *,
    sample_key: str = "donor_id",
    layer: str | None = None,
    fraction: float = 0.8,
) -> AnnData:
    """A resampled copy of a real count dataset with ``n_cells`` cells and ``n_donors`` donors.

    Meant for scale and throughput benchmarks that need more (or fewer) cells and donors than
    a real dataset holds while keeping its gene-gene and cell-type structure. Every new cell is
    a real cell drawn with replacement whose counts are binomially thinned: each count ``c``
    becomes ``Binomial(c, fraction)``, so the expected library size is ``fraction`` times the
    source cell's and two draws of the same cell differ (binomial thinning keeps the
    Poisson/negative-binomial form of UMI counts, with the mean scaled by ``fraction``).
    Output rows are never empty and never duplicated: such rows are drawn again.

    Donors: with ``n_donors`` at least the original number ``D``, new donor ``k`` is a split of
    original donor ``k % D`` (its cells come from that donor only, so split donors share their
    source's distribution: they add donors, not biological variation); with fewer, original
    donor ``d`` is merged into new donor ``d % n_donors``. Cells are allotted to new donors in
    proportion to their source cells (largest remainder, at least one cell each), then drawn
    uniformly from the source cells.

    Parameters
    ----------
    adata
        Single-cell AnnData with non-negative integer counts in ``X`` or ``layers[layer]``
        (dense or sparse). Not modified.
    n_cells
        Number of cells of the result (at least ``n_donors``).
    n_donors
        Number of donors of the result (at least 1).
    seed
        Seed of :func:`numpy.random.default_rng`: the same seed gives the same result.
    sample_key
        Donor (sample) column of ``adata.obs``.
    layer
        Counts layer (``None``: ``X``).
    fraction
        Binomial thinning probability in ``(0, 1)``; default 0.8 (keeps most of the counts and
        makes repeated draws distinct).

    Returns
    -------
    AnnData ``(n_cells, n_vars)`` with the thinned counts as float32 CSR in ``X`` (and no
    layers or ``obsm``: embeddings of the source cells do not describe thinned counts),
    ``var`` copied, ``obs`` = the source cells' columns plus ``obs[sample_key]`` = the new
    donors (categories ``"donor0"``, ``"donor1"``, ...), ``obs["source_donor"]`` (the original
    donor(s) joined by ``"+"``) and ``obs["source_cell"]`` (the source cell's ``obs_name``).
    ``uns["resample"]`` records the arguments.

    Raises
    ------
    ValueError
        If ``sample_key`` or ``layer`` is missing, the counts are negative or not integers,
        ``n_donors < 1``, ``n_cells < n_donors``, ``fraction`` is not in ``(0, 1)``, or no
        distinct non-empty rows could be drawn in 100 rounds (too few counts per cell).
    """
    if sample_key not in adata.obs:
        raise ValueError(f"sample_key={sample_key!r} is not a column of adata.obs")
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"layer={layer!r} is not in adata.layers ({list(adata.layers)})")
    n_cells, n_donors = int(n_cells), int(n_donors)
    if n_donors < 1:
        raise ValueError(f"n_donors must be at least 1, got {n_donors}")
    if n_cells < n_donors:
        raise ValueError(f"n_cells={n_cells} must be at least n_donors={n_donors}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    X = adata.X if layer is None else adata.layers[layer]
    if not (sparse.issparse(X) and X.format == "csr"):
        X = sparse.csr_matrix(X, dtype=np.float32)
    if X.data.size and (X.data.min() < 0 or not np.all(X.data == np.round(X.data))):
        where = "X" if layer is None else f"layers[{layer!r}]"
        raise ValueError(f"{where} must hold non-negative integer counts")

    rng = np.random.default_rng(seed)
    donors = pd.Categorical(adata.obs[sample_key]).remove_unused_categories()
    pools, weights, groups = _donor_pools(donors.codes, len(donors.categories), n_donors)
    sizes = _allocate(n_cells, weights)
    new_donor = np.repeat(np.arange(n_donors), sizes)
    rows = np.concatenate([rng.choice(p, size=s) for p, s in zip(pools, sizes, strict=True)])
    out = _thin(X, rows, fraction, rng)
    for _ in range(_MAX_ROUNDS):
        bad = _bad_rows(out, rng)
        if bad.size == 0:
            break
        rows[bad] = [rng.choice(pools[k]) for k in new_donor[bad]]
        out = _replace_rows(out, bad, _thin(X, rows[bad], fraction, rng))
    else:
        raise ValueError(
            f"no {n_cells} distinct non-empty thinned cells in {_MAX_ROUNDS} rounds: too few "
            f"counts per cell for fraction={fraction}"
        )

    obs = adata.obs.iloc[rows].copy()
    names = np.asarray(adata.obs_names)[rows]
    labels = np.array([f"donor{k}" for k in range(n_donors)])
    source = np.array(["+".join(str(donors.categories[d]) for d in g) for g in groups])
    obs[sample_key] = pd.Categorical(labels[new_donor], categories=labels)
    obs["source_donor"] = pd.Categorical(source[new_donor])
    obs["source_cell"] = names
    obs.index = [f"cell{i}" for i in range(n_cells)]
    result = AnnData(out, obs=obs, var=adata.var.copy())
    result.uns["resample"] = dict(
        n_cells=n_cells, n_donors=n_donors, seed=seed, fraction=fraction, layer=layer,
        sample_key=sample_key, n_source_cells=int(adata.n_obs),
    )  # fmt: skip
    return result
