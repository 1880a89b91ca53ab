"""Input checks shared by every cellpop model: clear errors instead of silent garbage."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse


def check_obs_key(adata: AnnData, key: str | None, what: str = "key") -> None:
    """Raise ``KeyError`` naming ``key`` when it is given but missing from ``adata.obs``."""
    if key is not None and key not in adata.obs.columns:
        raise KeyError(
            f"{what}={key!r} is not a column of adata.obs; available columns: "
            f"{list(adata.obs.columns)[:20]}"
        )


def check_categorical_obs(adata: AnnData, key: str | None, what: str = "key") -> None:
    """Raise a clear error when a categorical ``adata.obs`` column is missing or has NaN values.

    Raises
    ------
    KeyError
        If ``key`` is given but not a column of ``adata.obs``.
    ValueError
        If the column has missing values (NaN/None): their count and first cell are named.
    """
    if key is None:
        return
    check_obs_key(adata, key, what)
    col = adata.obs[key]
    bad = col.isna().to_numpy()
    if bad.any():
        raise ValueError(
            f"{what}={key!r} has {int(bad.sum())} missing value(s) (NaN), e.g. cell "
            f"{adata.obs_names[np.flatnonzero(bad)[0]]!r}: fill them (e.g. 'unknown') or drop "
            "those cells first."
        )


def get_input_matrix(adata: AnnData, layer: str | None = None, obsm_key: str | None = None):
    """Return the cell matrix a model reads: ``adata.obsm[obsm_key]``, ``adata.layers[layer]`` or ``adata.X``.

    Raises
    ------
    ValueError
        If both ``layer`` and ``obsm_key`` are given.
    KeyError
        If ``layer`` or ``obsm_key`` is not present.
    """
    if layer is not None and obsm_key is not None:
        raise ValueError("Give either layer= or obsm_key=, not both.")
    if obsm_key is not None:
        if obsm_key not in adata.obsm:
            raise KeyError(
                f"obsm_key={obsm_key!r} is not in adata.obsm; available: {list(adata.obsm.keys())}"
            )
        X = adata.obsm[obsm_key]
        if isinstance(X, pd.DataFrame):
            X = X.to_numpy()
        return X
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(
                f"layer={layer!r} is not in adata.layers; available: {list(adata.layers.keys())}"
            )
        return _plain(adata.layers[layer])
    if adata.X is None or adata.n_vars == 0:
        raise ValueError(
            "adata.X is empty (no genes): pass obsm_key= for an embedding-only AnnData "
            "or layer= for expression stored in a layer."
        )
    return _plain(adata.X)


def _plain(X):
    """scipy sparse arrays (``csr_array``, ...) as the matrix classes every consumer accepts."""
    if sparse.issparse(X) and not isinstance(X, sparse.spmatrix):
        return sparse.csr_matrix(X)
    return X


def _values(X) -> np.ndarray:
    if sparse.issparse(X):
        return np.asarray(X.data)
    return np.asarray(X)


def check_finite(X, what: str = "input") -> None:
    """Raise ``ValueError`` when ``X`` (dense or sparse) holds NaN or inf values."""
    v = _values(X)
    if v.dtype.kind in "fc" and not np.isfinite(v).all():
        n_bad = int((~np.isfinite(v)).sum())
        raise ValueError(f"{what} contains {n_bad} NaN/inf value(s); remove or impute them first.")


def check_counts(X, what: str = "input") -> None:
    """Raise ``ValueError`` unless ``X`` holds non-negative integer counts (dense or sparse)."""
    check_finite(X, what)
    v = _values(X)
    if v.size == 0:
        return
    if (v < 0).any():
        raise ValueError(f"{what} has negative values: raw counts are required.")
    # check a bounded subset for speed on large matrices, all values for small ones
    sub = v if v.size <= 5_000_000 else v[:: max(1, v.size // 5_000_000)]
    if not np.all(np.equal(np.mod(sub, 1), 0)):
        raise ValueError(
            f"{what} has non-integer values: raw counts are required (use layer= to point at "
            "the counts layer, e.g. layer='counts')."
        )


def check_min_samples(n_samples: int, sample_key: str, minimum: int = 2) -> None:
    """Raise ``ValueError`` when fewer than ``minimum`` samples are present."""
    if n_samples < minimum:
        raise ValueError(
            f"sample_key={sample_key!r} defines {n_samples} sample(s); at least {minimum} are needed "
            "to learn sample representations."
        )


def check_var_names_match(adata: AnnData, reference_var_names, what: str = "adata") -> None:
    """Raise ``ValueError`` unless ``adata.var_names`` equal the trained model's genes, in order."""
    ref = pd.Index(reference_var_names)
    if len(ref) != adata.n_vars or not ref.equals(adata.var_names):
        missing = ref.difference(adata.var_names)
        extra = adata.var_names.difference(ref)
        raise ValueError(
            f"{what} genes do not match the trained model: {len(missing)} of the model's "
            f"{len(ref)} genes are missing and {len(extra)} are extra "
            f"(first missing: {list(missing[:5])}). Subset/reorder with adata[:, model_var_names]."
        )


def check_constant_within_samples(
    adata: AnnData, key: str, sample_key: str, what: str, why: str = ""
) -> None:
    """Raise ``ValueError`` when the categorical ``obs[key]`` takes several values in a sample.

    Checks ``key`` first with :func:`check_categorical_obs`. The message names ``what=key`` and
    up to five offending samples, followed by ``why``.

    Raises
    ------
    KeyError, ValueError
        A missing column or NaN values; a value that varies within a sample.
    """
    check_categorical_obs(adata, key, what)
    per = adata.obs.groupby(adata.obs[sample_key].astype(str), observed=True)[key]
    varies = per.nunique()
    if (varies > 1).any():
        raise ValueError(
            f"{what}={key!r} varies within samples {varies.index[varies > 1][:5].tolist()}{why}"
        )
