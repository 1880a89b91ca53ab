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


def pooled_pca(
    adata: AnnData,
    sample_key: str,
    layer: str | None = None,
    n_comps: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """Pooled PCA: the mean of each sample's cells on the top principal components.

    SC-JEPA's "Pooled-PCA" baseline (paper 000, §4: "the mean of the top 50 PCA components per
    sample"). PCA (:func:`scanpy.pp.pca`, centred, ARPACK) is fitted on all cells of the
    expression matrix as given; pass log-normalised values (``normalize_total`` + ``log1p``).
    For an embedding that already exists use ``pseudobulk(adata, sample_key, obsm_key=...)``.

    Parameters
    ----------
    adata
        AnnData of cells ``(n_cells, n_genes)``. Not modified.
    sample_key
        Column of ``adata.obs`` with the sample id.
    layer
        Log-normalised expression layer (default ``adata.X``).
    n_comps
        Principal components (paper: 50).
    seed
        Random state of the PCA solver.

    Returns
    -------
    DataFrame ``(n_samples, n_comps)``, columns ``PC_i``, index = sample ids (category order).

    Raises
    ------
    KeyError
        If ``sample_key`` or ``layer`` is missing.
    ValueError
        If the matrix holds NaN/inf or ``n_comps`` is not below ``min(n_cells, n_genes)``.
    """
    import scanpy as sc

    from cellpop.data import per_sample_mean

    X = get_input_matrix(adata, layer=layer)
    check_finite(X, f"adata.layers[{layer!r}]" if layer else "adata.X")
    if not 0 < n_comps < min(X.shape):
        raise ValueError(f"n_comps={n_comps} must be in 1..{min(X.shape) - 1} for {X.shape}.")
    codes, samples = _sample_codes(adata, sample_key)
    pcs = sc.pp.pca(X.astype(np.float32), n_comps=n_comps, random_state=seed)
    return per_sample_mean(np.asarray(pcs, dtype=np.float64), codes, samples, prefix="PC")


def pooled_scvi(
    adata: AnnData,
    sample_key: str,
    layer: str | None = "counts",
    batch_key: str | None = None,
    n_latent: int = 10,
    max_epochs: int | None = None,
    seed: int = 0,
    **train_kwargs,
) -> pd.DataFrame:
    """Pooled scVI: the mean of each sample's cells in a trained scvi-tools ``SCVI`` latent.

    SC-JEPA's "Pooled-VAE (scVI)" baseline (paper 000, §4). An :class:`scvi.model.SCVI`
    (scvi-tools defaults: 1 hidden layer of 128, ZINB likelihood) is trained on the counts and
    its latent means (``get_latent_representation()``) are averaged per sample.

    Parameters
    ----------
    adata
        AnnData of cells with raw counts. Not modified (a copy is registered).
    sample_key
        Column of ``adata.obs`` with the sample id.
    layer
        Raw-count layer (default ``"counts"``; ``None`` = ``adata.X``).
    batch_key
        Optional ``adata.obs`` batch column (e.g. the source dataset) scVI corrects for.
    n_latent
        Latent dimensions (scvi-tools default 10).
    max_epochs
        Training epochs (default: scvi-tools' heuristic, ``min(round(20000 / n_cells * 400),
        400)``).
    seed
        ``scvi.settings.seed`` before training.
    **train_kwargs
        Passed to :meth:`scvi.model.SCVI.train`.

    Returns
    -------
    DataFrame ``(n_samples, n_latent)``, columns ``scvi_i``, index = sample ids.

    Raises
    ------
    KeyError
        If ``sample_key``, ``layer`` or ``batch_key`` is missing.
    """
    import scvi

    from cellpop.data import per_sample_mean

    codes, samples = _sample_codes(adata, sample_key)
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"layer={layer!r} is not in adata.layers: {list(adata.layers.keys())}")
    if batch_key is not None:
        check_obs_key(adata, batch_key, "batch_key")
    scvi.settings.seed = seed
    a = adata.copy()
    scvi.model.SCVI.setup_anndata(a, layer=layer, batch_key=batch_key)
    model = scvi.model.SCVI(a, n_latent=n_latent)
    train_kwargs.setdefault("enable_progress_bar", False)
    model.train(max_epochs=max_epochs, **train_kwargs)
    z = model.get_latent_representation()
    return per_sample_mean(np.asarray(z, dtype=np.float64), codes, samples, prefix="scvi")
