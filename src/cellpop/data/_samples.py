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
