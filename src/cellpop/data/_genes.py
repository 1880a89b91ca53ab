"""One gene policy for every expression-input model: match by name, reorder, zero-fill."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from scipy import sparse

logger = logging.getLogger(__name__)

MAX_MISSING_GENE_FRACTION = 0.5
"""A query may miss at most this fraction of the model's genes (zero-filled, with a warning)."""


def gene_positions(
    source: pd.Index, target: pd.Index, max_missing_fraction: float = MAX_MISSING_GENE_FRACTION
) -> np.ndarray | None:
    """Column of each ``target`` (model) gene in ``source`` (query), ``-1`` where it is missing.

    Parameters
    ----------
    source
        The query's ``var_names``.
    target
        The model's genes, in training order.
    max_missing_fraction
        Largest tolerated fraction of missing model genes (default
        :data:`MAX_MISSING_GENE_FRACTION` = 0.5).

    Returns
    -------
    ``None`` when ``source`` equals ``target`` (nothing to do), else int64 ``(len(target),)``.

    Warns
    -----
    UserWarning
        When some model genes are missing (they are zero-filled).

    Raises
    ------
    ValueError
        If ``source`` has duplicated names, or more than ``max_missing_fraction`` of the model's
        genes are missing.
    """
    source, target = pd.Index(source).astype(str), pd.Index(target).astype(str)
    if source.equals(target):
        return None
    if not source.is_unique:
        dup = source[source.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"var_names are not unique (e.g. {dup}): run adata.var_names_make_unique()."
        )
    pos = source.get_indexer(target)
    missing = pos < 0
    frac = float(missing.mean()) if len(target) else 0.0
    if frac > max_missing_fraction:
        raise ValueError(
            f"{int(missing.sum())} of the model's {len(target)} genes ({frac:.0%}) are missing from "
            f"the AnnData (tolerance {max_missing_fraction:.0%}); first missing: "
            f"{list(target[missing][:5])}. Do var_names use the same gene naming as the training data?"
        )
    if missing.any():
        warnings.warn(
            f"{int(missing.sum())} of the model's {len(target)} genes are missing from the AnnData "
            f"and set to 0 (first: {list(target[missing][:5])}).",
            UserWarning,
            stacklevel=4,
        )
    n_extra = len(source) - int((~missing).sum())
    if n_extra:
        logger.info("Ignoring %d genes unknown to the model.", n_extra)
    return pos.astype(np.int64)


def align_columns(X, positions: np.ndarray | None):
    """Columns of ``X`` in the model's gene order; ``-1`` positions become zero columns.

    Parameters
    ----------
    X
        ``(n_cells, n_query_genes)`` dense or sparse matrix.
    positions
        Output of :func:`gene_positions` (``None``: ``X`` is returned as it is).

    Returns
    -------
    ``(n_cells, len(positions))`` matrix, sparse (CSR) when ``X`` is sparse; ``X`` is never
    modified.
    """
    if positions is None:
        return X
    present = positions >= 0
    if sparse.issparse(X):
        X = sparse.csr_matrix(X)
        out = X[:, np.where(present, positions, 0)]
        if not present.all():
            out = sparse.csr_matrix(out @ sparse.diags(present.astype(X.dtype)))
            out.eliminate_zeros()
        return out
    X = np.asarray(X)
    out = X[:, np.where(present, positions, 0)]
    if not present.all():
        out[:, ~present] = 0
    return out
