"""Sample (donor) bookkeeping shared by models, baselines and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ._validation import check_obs_key


def sample_codes(adata: AnnData, sample_key: str) -> tuple[np.ndarray, pd.Index]:
    """Integer sample code per cell and the sample ids (observed ones, in category order).

    Parameters
    ----------
    adata
        AnnData of cells.
    sample_key
        ``adata.obs`` column with each cell's sample (donor) id.

    Returns
    -------
    codes
        int64 array ``(n_cells,)`` in ``0 .. n_samples - 1``.
    samples
        :class:`pandas.Index` of the ``n_samples`` observed sample ids (str), named ``sample_key``.

    Raises
    ------
    KeyError
        If ``sample_key`` is not a column of ``adata.obs``.
    ValueError
        If a cell has a missing sample id.
    """
    check_obs_key(adata, sample_key, "sample_key")
    col = adata.obs[sample_key]
    if col.isna().any():
        raise ValueError(
            f"sample_key={sample_key!r} has {int(col.isna().sum())} cell(s) with a missing sample id."
        )
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.cat.remove_unused_categories()
    else:
        col = col.astype(str).astype("category")
    samples = pd.Index(col.cat.categories.astype(str), name=sample_key)
    return np.asarray(col.cat.codes, dtype=np.int64), samples


def per_sample_mean(
    values: np.ndarray, codes: np.ndarray, names: pd.Index, prefix: str = "latent"
) -> pd.DataFrame:
    """Mean of per-cell ``values`` within each sample.

    Parameters
    ----------
    values
        ``(n_cells, d)`` per-cell vectors.
    codes
        ``(n_cells,)`` sample code of each cell, ``0 .. len(names) - 1``.
    names
        Sample ids (the DataFrame index).
    prefix
        Column prefix: columns are ``f"{prefix}_{i}"``.

    Returns
    -------
    DataFrame ``(n_samples, d)`` indexed by ``names``.
    """
    sums = np.zeros((len(names), values.shape[1]))
    np.add.at(sums, codes, values)
    mean = sums / np.maximum(np.bincount(codes, minlength=len(names)), 1)[:, None]
    return pd.DataFrame(mean, index=names, columns=[f"{prefix}_{i}" for i in range(mean.shape[1])])


def rows_by_code(codes: np.ndarray, n_codes: int) -> list[np.ndarray]:
    """The rows of each code ``0 .. n_codes - 1``, ascending (one stable sort, not one pass over
    all rows per code); a code without rows gives an empty array.

    Parameters
    ----------
    codes
        ``(n_rows,)`` integer codes in ``[0, n_codes)`` (e.g. sample codes of cells).
    n_codes
        Number of codes.

    Returns
    -------
    ``n_codes`` int64 arrays; array ``c`` equals ``np.flatnonzero(codes == c)``.
    """
    codes = np.asarray(codes)
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes, minlength=n_codes))[:-1])[:n_codes]
