"""Sample-level plots (scanpy style: return the Axes, take an optional ``ax``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData


def _new_ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def sample_embedding(
    data: AnnData | pd.DataFrame,
    color: str | None = None,
    basis: str = "umap",
    rep_key: str | None = None,
    metadata: pd.DataFrame | None = None,
    n_neighbors: int = 15,
    random_state: int = 0,
    ax=None,
    **kwargs,
):
    """Scatter plot of samples (e.g. a UMAP of donor representations) coloured by metadata.

    Parameters
    ----------
    data
        A sample AnnData (from :func:`cellpop.tl.sample_adata`) or a representation DataFrame
        ``(n_samples, d)`` indexed by sample id (then ``metadata`` supplies the colours).
    color
        Column of ``obs`` / ``metadata`` to colour by (``None``: no colouring).
    basis
        Embedding to draw: ``obsm[f"X_{basis}"]`` when present; ``"umap"`` is computed when
        absent (:func:`scanpy.pp.neighbors` on ``rep_key`` with ``n_neighbors`` capped at
        ``n_samples - 1``, then :func:`scanpy.tl.umap`) on a copy, so ``data`` is not modified.
    rep_key
        Representation in ``obsm`` used for the neighbour graph; default
        ``data.uns["cellpop"]["rep_key"]`` or the only ``obsm`` key.
    metadata
        Sample metadata indexed by sample id, for a DataFrame ``data``.
    n_neighbors
        Neighbours of the sample graph (scanpy default 15, capped).
    random_state
        UMAP seed.
    ax
        Matplotlib Axes to draw into; a new figure otherwise.
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (e.g. ``palette``, ``title``; ``size`` defaults
        to 80 points instead of scanpy's cell-oriented ``120000 / n_obs``).

    Returns
    -------
    The matplotlib Axes.

    Raises
    ------
    ValueError
        If the basis is missing and cannot be computed, ``rep_key`` cannot be determined, or
        there are fewer than 3 samples.
    KeyError
        If ``color`` is not a metadata column, or ``rep_key`` is missing.
    """
    import scanpy as sc

    if isinstance(data, pd.DataFrame):
        rep = data
        rep_key = rep_key or "X_sample"
        sdata = AnnData(obs=pd.DataFrame(index=rep.index.astype(str)))
        sdata.obsm[rep_key] = rep.to_numpy(dtype=np.float64)
        if metadata is not None:
            meta = metadata.copy()
            meta.index = meta.index.astype(str)
            missing = sdata.obs_names.difference(meta.index)
            if len(missing):
                raise KeyError(f"metadata lacks sample(s) {list(missing[:5])}.")
            sdata.obs = meta.loc[sdata.obs_names].copy()
    elif isinstance(data, AnnData):
        sdata = data.copy()
    else:
        raise TypeError(f"data must be an AnnData or a DataFrame, got {type(data).__name__}.")
    if color is not None and color not in sdata.obs.columns:
        raise KeyError(f"color={color!r} is not a sample metadata column: {list(sdata.obs)}")
    n = sdata.n_obs
    if n < 3:
        raise ValueError(f"A sample embedding needs >= 3 samples, got {n}.")
    key = f"X_{basis}"
    if key not in sdata.obsm:
        if basis != "umap":
            raise ValueError(f"obsm[{key!r}] is missing; only basis='umap' is computed here.")
        if rep_key is None:
            rep_key = sdata.uns.get("cellpop", {}).get("rep_key")
        if rep_key is None:
            keys = list(sdata.obsm.keys())
            if len(keys) != 1:
                raise ValueError(f"Give rep_key=, one of {keys}.")
            rep_key = keys[0]
        if rep_key not in sdata.obsm:
            raise KeyError(f"rep_key={rep_key!r} is not in obsm: {list(sdata.obsm.keys())}")
        sc.pp.neighbors(sdata, n_neighbors=min(n_neighbors, n - 1), use_rep=rep_key)
        sc.tl.umap(sdata, random_state=random_state)
    ax = _new_ax(ax, (4.5, 4))
    kwargs.setdefault("size", 80)  # scanpy's 120000 / n_obs is meant for cells, not ~20 samples
    return sc.pl.embedding(sdata, basis=basis, color=color, ax=ax, show=False, **kwargs)


def cell_importance_heatmap(
    importance: np.ndarray | pd.DataFrame,
    cell_types: Sequence | pd.Series,
    normalize: bool = True,
    cmap: str = "viridis",
    ax=None,
):
    """Heatmap of heads x cell types of the mean per-cell importance (e.g. SampleCLR heads).

    Parameters
    ----------
    importance
        Per-cell importance ``(n_cells, n_heads)`` (e.g. ``SampleCLR.get_cell_importance()``);
        DataFrame columns name the heads, otherwise ``head 0 .. head H-1``.
    cell_types
        Cell-type label per cell, length ``n_cells``.
    normalize
        Divide each head's per-cell-type mean by the head's mean over all cells, so 1 = an
        average cell, > 1 = the head up-weights this cell type (comparable across heads whose
        weights live on different scales). ``False`` plots the raw means.
    cmap
        Matplotlib colormap.
    ax
        Matplotlib Axes; a new figure otherwise.

    Returns
    -------
    The matplotlib Axes (rows = heads, columns = cell types in category/sorted order, with a
    colorbar).

    Raises
    ------
    ValueError
        If shapes disagree, ``importance`` is not 2-D or holds NaN/inf.
    """
    import matplotlib.pyplot as plt

    if isinstance(importance, pd.DataFrame):
        heads = [str(c) for c in importance.columns]
        imp = importance.to_numpy(dtype=np.float64)
    else:
        imp = np.asarray(importance, dtype=np.float64)
        if imp.ndim == 1:
            imp = imp[:, None]
        heads = [f"head {h}" for h in range(imp.shape[1] if imp.ndim == 2 else 0)]
    if imp.ndim != 2:
        raise ValueError(f"importance must be (n_cells, n_heads), got shape {imp.shape}.")
    if not np.isfinite(imp).all():
        raise ValueError("importance contains NaN/inf.")
    ct = pd.Series(cell_types)
    if len(ct) != imp.shape[0]:
        raise ValueError(
            f"cell_types has {len(ct)} entries but importance has {imp.shape[0]} rows."
        )
    if not isinstance(ct.dtype, pd.CategoricalDtype):
        ct = ct.astype(str).astype("category")
    ct = ct.cat.remove_unused_categories()
    means = pd.DataFrame(imp, columns=heads).groupby(ct.to_numpy(), observed=True).mean()
    means = means.reindex(ct.cat.categories).T  # heads x cell types
    if normalize:
        overall = imp.mean(axis=0)
        means = means.div(np.where(overall == 0, 1.0, overall), axis=0)
    ax = _new_ax(ax, (0.45 * means.shape[1] + 2.5, 0.35 * means.shape[0] + 2))
    im = ax.imshow(means.to_numpy(), aspect="auto", cmap=cmap)
    ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns], rotation=90)
    ax.set_yticks(range(means.shape[0]), list(means.index))
    ax.set_xlabel("cell type")
    ax.set_ylabel("head")
    plt.colorbar(im, ax=ax, label="importance / head mean" if normalize else "mean importance")
    return ax


def metric_bars(scores: pd.DataFrame, ax=None):
    """Grouped bar plot of metric scores per method.

    Parameters
    ----------
    scores
        DataFrame ``(n_methods, n_metrics)``, e.g. one :func:`cellpop.metrics.spare_scores`
        Series per row.
    ax
        Matplotlib Axes; a new figure otherwise.

    Returns
    -------
    The matplotlib Axes (one bar group per metric, one colour per method, legend).

    Raises
    ------
    ValueError
        If ``scores`` is empty.
    """
    if scores.empty:
        raise ValueError("scores is empty.")
    ax = _new_ax(ax, (1.2 * scores.shape[1] + 2, 3.5))
    n_methods = scores.shape[0]
    width = 0.8 / n_methods
    x = np.arange(scores.shape[1])
    for i, (method, row) in enumerate(scores.iterrows()):
        ax.bar(
            x + (i - (n_methods - 1) / 2) * width,
            row.to_numpy(dtype=float),
            width,
            label=str(method),
        )
    ax.set_xticks(x, [str(c) for c in scores.columns], rotation=30, ha="right")
    ax.set_ylabel("score")
    ax.legend(frameon=False, fontsize="small")
    return ax
