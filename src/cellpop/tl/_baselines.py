"""Simple sample-level baselines: pseudobulk and cell-type composition."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from cellpop.data._validation import check_finite, check_obs_key, get_input_matrix

from ._sample_adata import _indicator, _sample_codes


def pseudobulk(
    adata: AnnData,
    sample_key: str,
    layer: str | None = None,
    obsm_key: str | None = None,
    mode: Literal["mean", "sum"] | None = None,
) -> pd.DataFrame:
    """Aggregate cells per sample (pseudobulk).

    Parameters
    ----------
    adata
        AnnData of cells, shape ``(n_cells, n_genes)``. Not modified.
    sample_key
        Column of ``adata.obs`` with the sample id.
    layer
        Expression layer to aggregate (e.g. ``"counts"``); default ``adata.X``.
    obsm_key
        Aggregate a cell embedding ``adata.obsm[obsm_key]`` (e.g. ``"X_pca"``) instead.
    mode
        ``"sum"`` or ``"mean"`` over the cells of a sample. Default: ``"sum"`` for expression
        (raw counts in give pseudobulk counts out, the usual input of bulk DE tools) and
        ``"mean"`` for an embedding (the "mean of the PCs" baseline of SPARE / SampleCLR).

    Returns
    -------
    DataFrame ``(n_samples, n_features)``, index = sample ids (observed, in category order),
    columns = ``var_names`` for expression or ``"{obsm_key}_{i}"`` (or the embedding DataFrame's
    columns) for an embedding. Units: those of the input (e.g. summed UMI counts), float64.

    Raises
    ------
    KeyError
        If ``sample_key``, ``layer`` or ``obsm_key`` is missing.
    ValueError
        If both ``layer`` and ``obsm_key`` are given, ``adata.X`` is empty, ``mode`` is unknown
        or the input holds NaN/inf.
    """
    X = get_input_matrix(adata, layer=layer, obsm_key=obsm_key)
    if mode is None:
        mode = "mean" if obsm_key is not None else "sum"
    if mode not in ("mean", "sum"):
        raise ValueError(f"mode={mode!r} must be 'mean' or 'sum'.")
    what = f"adata.obsm[{obsm_key!r}]" if obsm_key else f"adata.layers[{layer!r}]" if layer else "X"
    check_finite(X, what)
    codes, samples = _sample_codes(adata, sample_key)
    G = _indicator(codes, len(samples))
    if mode == "mean":
        G = sparse.diags(1.0 / np.bincount(codes, minlength=len(samples))) @ G
    agg = G @ (X if sparse.issparse(X) else np.asarray(X, dtype=np.float64))
    agg = agg.toarray() if sparse.issparse(agg) else np.asarray(agg)
    if obsm_key is not None:
        raw = adata.obsm[obsm_key]
        if isinstance(raw, pd.DataFrame):
            columns = raw.columns
        else:
            columns = [f"{obsm_key}_{i}" for i in range(agg.shape[1])]
    else:
        columns = adata.var_names
    return pd.DataFrame(agg.astype(np.float64), index=samples, columns=columns)


def cell_type_composition(
    adata: AnnData,
    sample_key: str,
    labels_key: str,
    transform: Literal["proportion", "clr", "count"] = "proportion",
    pseudocount: float = 0.5,
) -> pd.DataFrame:
    """Cell-type composition of every sample.

    Parameters
    ----------
    adata
        AnnData of cells. Not modified.
    sample_key
        Column of ``adata.obs`` with the sample id.
    labels_key
        Column of ``adata.obs`` with the cell-type label.
    transform
        ``"count"``: number of cells; ``"proportion"``: counts divided by the sample's cell
        number (rows sum to 1); ``"clr"``: centred log-ratio
        ``log(c + pseudocount) - mean_t log(c_t + pseudocount)`` of the counts ``c``, the
        standard compositional transform (rows sum to 0).
    pseudocount
        Added to every **cell count** before the CLR log, so absent cell types stay finite.
        Default 0.5 (half a cell, the usual choice for compositional count data, e.g. scCODA).
        Ignored for the other transforms.

    Returns
    -------
    DataFrame ``(n_samples, n_cell_types)``, index = sample ids, columns = the observed
    cell types in category order.

    Raises
    ------
    KeyError
        If ``sample_key`` or ``labels_key`` is missing.
    ValueError
        If ``transform`` is unknown, ``pseudocount <= 0`` for CLR, or labels are missing.
    """
    if transform not in ("count", "proportion", "clr"):
        raise ValueError(f"transform={transform!r} must be 'count', 'proportion' or 'clr'.")
    if transform == "clr" and not pseudocount > 0:
        raise ValueError(f"pseudocount={pseudocount!r} must be > 0 for the CLR transform.")
    check_obs_key(adata, labels_key, "labels_key")
    labels = adata.obs[labels_key]
    if labels.isna().any():
        raise ValueError(
            f"labels_key={labels_key!r} has {int(labels.isna().sum())} cell(s) without a label."
        )
    if not isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.astype(str).astype("category")
    labels = labels.cat.remove_unused_categories()
    codes, samples = _sample_codes(adata, sample_key)
    counts = (
        _indicator(codes, len(samples))
        @ _indicator(np.asarray(labels.cat.codes), len(labels.cat.categories)).T
    )
    counts = np.asarray(counts.toarray(), dtype=np.float64)
    if transform == "proportion":
        out = counts / counts.sum(axis=1, keepdims=True)
    elif transform == "clr":
        logc = np.log(counts + pseudocount)
        out = logc - logc.mean(axis=1, keepdims=True)
    else:
        out = counts
    columns = pd.Index(labels.cat.categories.astype(str), name=labels_key)
    return pd.DataFrame(out, index=samples, columns=columns)
