"""One row per sample: sample metadata and the sample-level AnnData."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from cellpop.data._samples import sample_codes as _sample_codes
from cellpop.data._validation import check_obs_key


def _indicator(codes: np.ndarray, n_samples: int):
    """Sparse (n_samples, n_cells) one-hot matrix of sample membership."""
    from scipy import sparse

    n = codes.shape[0]
    return sparse.csr_matrix(
        (np.ones(n, dtype=np.float64), (codes, np.arange(n))), shape=(n_samples, n)
    )


def sample_metadata(
    adata: AnnData, sample_key: str, majority_keys: str | list[str] | None = None
) -> pd.DataFrame:
    """Per-sample metadata: the ``adata.obs`` columns that are constant within every sample.

    Parameters
    ----------
    adata
        AnnData of cells, shape ``(n_cells, n_genes)``.
    sample_key
        Column of ``adata.obs`` holding the sample (donor) id.
    majority_keys
        Columns that may vary within a sample (e.g. a technical ``barcode_batch`` when donors
        span libraries); each sample gets its most frequent value (ties: first in category order).

    Returns
    -------
    :class:`pandas.DataFrame`, shape ``(n_samples, n_constant_columns + 1)``, indexed by sample
    id (observed samples, in category order; index name = ``sample_key``). Categorical columns
    stay categorical (unused categories removed); ``n_cells`` holds the number of cells.

    Raises
    ------
    KeyError
        If ``sample_key`` or a ``majority_keys`` column is missing from ``adata.obs``.
    ValueError
        If a cell has no sample id.
    """
    codes, samples = _sample_codes(adata, sample_key)
    majority_keys = [majority_keys] if isinstance(majority_keys, str) else list(majority_keys or [])
    for key in majority_keys:
        check_obs_key(adata, key, "majority_keys")
    obs = adata.obs
    grouped = obs.groupby(codes, sort=True)
    cols = [c for c in obs.columns if c != sample_key]
    nunique = grouped[cols].nunique(dropna=False) if cols else pd.DataFrame(index=range(0))
    constant = [c for c in cols if (nunique[c] <= 1).all()]
    first = np.unique(codes, return_index=True)[1]
    meta = obs.iloc[first][constant].copy()
    for key in majority_keys:
        if key in constant:
            continue
        counts = pd.crosstab(codes, obs[key].to_numpy())
        meta[key] = counts.idxmax(axis=1).to_numpy()
        if isinstance(obs[key].dtype, pd.CategoricalDtype):
            meta[key] = pd.Categorical(meta[key], categories=obs[key].cat.categories)
    meta.index = samples
    for c in meta.columns:
        if isinstance(meta[c].dtype, pd.CategoricalDtype):
            meta[c] = meta[c].cat.remove_unused_categories()
    meta["n_cells"] = np.bincount(codes, minlength=len(samples))
    return meta


def sample_adata(
    adata: AnnData,
    rep_key: str | None = None,
    sample_key: str | None = None,
    representation: pd.DataFrame | None = None,
    majority_keys: str | list[str] | None = None,
) -> AnnData:
    """Build an AnnData with one row per sample, its metadata and a sample representation.

    Parameters
    ----------
    adata
        AnnData of cells. Not modified.
    rep_key
        Key of the sample representation: read from ``adata.uns[rep_key]`` (a DataFrame
        ``(n_samples, d)`` indexed by sample id, as ``model.get_sample_representation(key_added=...)``
        writes it) unless ``representation`` is given. The result stores it in ``obsm[rep_key]``
        (``"X_sample"`` when ``rep_key`` is None).
    sample_key
        Column of ``adata.obs`` with the sample id. Default: the name of the representation's
        index when it is an ``adata.obs`` column (cellpop models name it after their
        ``sample_key``), else ``adata.uns["cellpop"]["sample_key"]``.
    representation
        Sample representation ``(n_samples, d)`` indexed by sample id; overrides ``adata.uns``.
        It may cover a subset of the samples (e.g. held-out donors): only those rows are kept.
    majority_keys
        Passed to :func:`sample_metadata`.

    Returns
    -------
    AnnData
        Shape ``(n_samples, 0)``: ``obs`` = :func:`sample_metadata` (incl. ``n_cells``),
        ``obsm[rep_key]`` = float array ``(n_samples, d)``, ``uns["cellpop"]`` holds
        ``sample_key`` and ``rep_key``. Rows follow the sample order of ``adata``.

    Raises
    ------
    ValueError
        If no sample_key can be determined, or ``representation``'s index holds ids that are not
        samples of ``adata`` (or has duplicates).
    KeyError
        If ``rep_key`` is not in ``adata.uns`` (and no ``representation`` is given) or
        ``sample_key`` is missing from ``adata.obs``.
    TypeError
        If the representation is not a DataFrame.
    """
    if representation is None:
        if rep_key is None:
            raise ValueError("Give rep_key= (a key of adata.uns) or representation=.")
        if rep_key not in adata.uns:
            raise KeyError(
                f"rep_key={rep_key!r} is not in adata.uns; available: {list(adata.uns.keys())}. "
                "Write it with model.get_sample_representation(key_added=...) or pass "
                "representation=."
            )
        representation = adata.uns[rep_key]
    if sample_key is None:
        index_name = getattr(getattr(representation, "index", None), "name", None)
        if index_name is not None and index_name in adata.obs.columns:
            sample_key = index_name  # cellpop models name the index after their sample_key
        else:
            sample_key = adata.uns.get("cellpop", {}).get("sample_key")
        if sample_key is None:
            raise ValueError(
                "sample_key= is required: the representation's index is not named after an "
                "adata.obs column and adata.uns['cellpop']['sample_key'] is not set."
            )
    if not isinstance(representation, pd.DataFrame):
        raise TypeError(
            "The sample representation must be a pandas DataFrame indexed by sample id, got "
            f"{type(representation).__name__}."
        )
    rep_key = rep_key or "X_sample"
    meta = sample_metadata(adata, sample_key, majority_keys=majority_keys)
    rep_index = representation.index.astype(str)
    if rep_index.has_duplicates:
        raise ValueError(f"The representation {rep_key!r} has duplicated sample ids.")
    unknown = rep_index.difference(meta.index)
    if len(unknown):
        raise ValueError(
            f"The representation {rep_key!r} has {len(unknown)} id(s) that are not samples of "
            f"adata.obs[{sample_key!r}] (first: {list(unknown[:5])})."
        )
    keep = meta.index[meta.index.isin(rep_index)]
    rep = representation.set_axis(rep_index).loc[keep]
    values = rep.to_numpy(dtype=np.float64)
    sdata = AnnData(obs=meta.loc[keep].copy())
    sdata.obsm[rep_key] = values
    sdata.uns["cellpop"] = {"sample_key": sample_key, "rep_key": rep_key}
    return sdata
