"""SPARE sample-embedding metrics (Shitov et al. 2025), as used by SampleCLR.

All functions take a sample x sample distance matrix or a sample representation (see
:func:`as_distance`), as a DataFrame indexed by sample id or as a plain array whose rows follow
the metadata's index, and metadata indexed by sample id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

Kind = Literal["classification", "regression", "ordinal"]

#: Largest accepted diagonal of a distance matrix, as a fraction of its median off-diagonal
#: entry. Published sample distance matrices computed by numerical optimal transport carry
#: small nonzero diagonals (the COMBAT Wasserstein matrices of patpy 0.15.2: up to 4.8e-3).
DIAG_TOL = 0.05


def _check_distance_matrix(values: np.ndarray, diag_tol: float) -> np.ndarray:
    """Validated copy of a square distance matrix: zero diagonal, negatives clipped."""
    n = values.shape[0]
    tol = 1e-8 * max(1.0, np.abs(values).max())
    if not np.allclose(values, values.T, rtol=0.0, atol=tol):
        i, j = (int(v) for v in np.unravel_index(np.abs(values - values.T).argmax(), values.shape))
        raise ValueError(
            f"The distance matrix is not symmetric: entry ({i}, {j}) = {values[i, j]:.6g} but "
            f"entry ({j}, {i}) = {values[j, i]:.6g}."
        )
    if (values < -tol).any():
        raise ValueError(
            f"A distance matrix needs non-negative entries; the smallest is {values.min():.6g}."
        )
    off = values[~np.eye(n, dtype=bool)]
    scale = float(np.median(off)) if off.size else 0.0
    diag = np.abs(np.diag(values))
    if diag.max(initial=0.0) > max(diag_tol * scale, tol):
        i = int(diag.argmax())
        raise ValueError(
            f"The distance matrix has a diagonal entry of {values[i, i]:.6g} (sample {i}), more "
            f"than diag_tol={diag_tol} times the median off-diagonal distance ({scale:.6g}): this "
            "is not a distance matrix (a similarity matrix?). A square representation "
            "(n_samples == n_dims) needs is_distance=False."
        )
    D = np.clip(values, 0.0, None)
    np.fill_diagonal(D, 0.0)
    return D


def as_distance(
    data: pd.DataFrame | np.ndarray,
    metric: str = "euclidean",
    *,
    index: Sequence | pd.Index | None = None,
    is_distance: bool | None = None,
    diag_tol: float = DIAG_TOL,
) -> pd.DataFrame:
    """Return a sample x sample distance matrix.

    Parameters
    ----------
    data
        A distance matrix, returned with a zero diagonal, or a representation
        ``(n_samples, d)``, turned into pairwise ``metric`` distances. A DataFrame is indexed by
        sample id and is a distance matrix when it is square with columns equal to its index
        (e.g. from :func:`cellpop.tl.gloscope`). A plain 2-D array takes its sample ids from
        ``index`` and is a distance matrix when it is square.
    metric
        ``"euclidean"`` (default) or ``"cosine"`` (any :func:`scipy.spatial.distance.cdist`
        metric); ignored for a distance matrix.
    index
        Sample ids of the rows of a plain array (default ``"0" .. "n-1"``); ignored for a
        DataFrame.
    is_distance
        Force the reading of ``data``: ``True`` = distance matrix, ``False`` = representation
        (e.g. a square array of 20 samples x 20 dimensions). ``None`` decides as above.
    diag_tol
        A distance matrix may have a diagonal up to ``diag_tol`` times its median off-diagonal
        entry (default :data:`DIAG_TOL` = 0.05; published Wasserstein matrices carry diagonals
        up to 4.8e-3); the diagonal is then set to 0. Negative entries down to ``-1e-8 * max``
        (round-off) are set to 0.

    Returns
    -------
    Square DataFrame ``(n_samples, n_samples)``, index = columns = sample ids (as strings).

    Raises
    ------
    TypeError
        If ``data`` is neither a DataFrame nor a 2-D array-like.
    ValueError
        On NaN/inf, duplicated sample ids, an ``index`` of the wrong length, a distance matrix
        that is not square, not symmetric, has negative entries or a diagonal above
        ``diag_tol`` times its median off-diagonal entry.
    """
    if isinstance(data, pd.DataFrame):
        ids = data.index.astype(str)
        square_named = data.shape[0] == data.shape[1] and data.columns.astype(str).equals(ids)
        if is_distance and not square_named:
            raise ValueError(
                "is_distance=True needs a square DataFrame whose columns equal its index."
            )
        values = data.to_numpy(dtype=np.float64)
        is_dist = square_named if is_distance is None else is_distance
    else:
        try:
            values = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                "Pass a pandas DataFrame indexed by sample id or a 2-D array (a representation "
                f"or a distance matrix), got {type(data).__name__}."
            ) from err
        if values.ndim != 2:
            raise TypeError(
                f"A sample representation / distance matrix is 2-D, got shape {values.shape}."
            )
        ids = pd.Index([str(i) for i in (range(len(values)) if index is None else index)])
        if len(ids) != values.shape[0]:
            raise ValueError(f"index has {len(ids)} sample ids for {values.shape[0]} rows.")
        is_dist = values.shape[0] == values.shape[1] if is_distance is None else is_distance
        if is_dist and values.shape[0] != values.shape[1]:
            raise ValueError(f"A distance matrix must be square, got shape {values.shape}.")
    if ids.has_duplicates:
        raise ValueError("The sample representation / distance matrix has duplicated sample ids.")
    if not np.isfinite(values).all():
        raise ValueError("The sample representation / distance matrix contains NaN/inf.")
    if is_dist:
        D = _check_distance_matrix(values, diag_tol)
    else:
        D = cdist(values, values, metric=metric)
        D = np.nan_to_num(D, nan=0.0)  # cosine of an all-zero vector
        np.fill_diagonal(D, 0.0)
    return pd.DataFrame(D, index=ids, columns=ids)


def _distance_for(data, ids: pd.Index, metric: str) -> pd.DataFrame:
    """:func:`as_distance`, a plain array taking its sample ids from ``ids`` (metadata order)."""
    if isinstance(data, pd.DataFrame):
        return as_distance(data, metric)
    arr = np.asarray(data)
    if arr.ndim == 2 and arr.shape[0] != len(ids):
        raise ValueError(
            f"A plain array has no sample ids: its rows are read in the order of the metadata "
            f"index, which has {len(ids)} samples, but the array has {arr.shape[0]} rows."
        )
    return as_distance(arr, metric, index=ids)


def _aligned(dist: pd.DataFrame, values: pd.Series, what: str) -> tuple[np.ndarray, pd.Series]:
    """Distances and values restricted to the samples with a non-missing value."""
    values = values.copy()
    values.index = values.index.astype(str)
    missing = dist.index.difference(values.index)
    if len(missing):
        raise KeyError(
            f"{what}: {len(missing)} sample(s) of the representation are missing from the "
            f"metadata index (first: {list(missing[:5])})."
        )
    values = values.loc[dist.index]
    keep = values.notna().to_numpy()
    return dist.to_numpy()[np.ix_(keep, keep)], values[keep]


def _loo_knn_predict(D: np.ndarray, y: np.ndarray, k: int, classifier: bool) -> np.ndarray:
    """Leave-one-out kNN prediction (distance-weighted) on a precomputed distance matrix."""
    n = D.shape[0]
    if n <= k:
        raise ValueError(f"kNN with k={k} needs more than k samples with a value, got {n}.")
    D = D.copy()
    # self exclusion: the diagonal is set above every other distance, so never a neighbour
    np.fill_diagonal(D, D.max() * 2.0 + 1.0)
    cls = KNeighborsClassifier if classifier else KNeighborsRegressor
    model = cls(n_neighbors=k, weights="distance", metric="precomputed")
    model.fit(D, y)
    return model.predict(D)


def _retention_one(D: np.ndarray, y: pd.Series, kind: Kind, k: int, key: str) -> float:
    if kind == "classification":
        labels = y.astype(str).to_numpy()
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ValueError(f"{key!r} has a single class among the samples: cannot be scored.")
        pred = _loo_knn_predict(D, labels, k, classifier=True)
        f1 = f1_score(labels, pred, labels=classes, average="macro", zero_division=0.0)
        chance = 1.0 / len(classes)
        score = (f1 - chance) / (1.0 - chance)
    elif kind in ("regression", "ordinal"):
        if isinstance(y.dtype, pd.CategoricalDtype):
            if kind == "regression" or not y.dtype.ordered:
                raise ValueError(
                    f"{key!r} is categorical: use kind='classification', or make it an ordered "
                    "categorical for kind='ordinal'."
                )
            num = y.cat.codes.to_numpy(dtype=np.float64)
        else:
            try:
                num = y.to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{key!r} is not numeric; kind={kind!r} needs numbers.") from err
        pred = _loo_knn_predict(D, num, k, classifier=False)
        rho = spearmanr(num, pred).statistic
        score = 0.0 if not np.isfinite(rho) else rho
    else:
        raise ValueError(f"kind={kind!r} must be 'classification', 'regression' or 'ordinal'.")
    return float(np.clip(score, 0.0, 1.0))


def _as_keys(keys: str | Sequence[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def information_retention(
    dist: pd.DataFrame,
    metadata: pd.DataFrame,
    keys: str | Sequence[str],
    kind: Kind = "classification",
    k: int = 3,
    metric: str = "euclidean",
) -> float | pd.Series:
    """SPARE information retention: how well a covariate is predicted by a sample's neighbours.

    Leave-one-out kNN (``k = 3``, distance-weighted, self excluded by giving the diagonal a
    distance larger than every other) on the sample distances. Classification is scored by
    macro-F1 rescaled to chance, ``(F1 - 1/K) / (1 - 1/K)`` with ``K`` classes; regression and
    ordinal covariates (ordered categoricals use their codes) by the Spearman correlation of
    prediction and truth. Scores are clipped to ``[0, 1]``. Samples whose value is missing are
    left out (as queries and as neighbours).

    Parameters
    ----------
    dist
        Distance matrix or representation, see :func:`as_distance` (a plain array: rows in the
        order of ``metadata.index``).
    metadata
        DataFrame indexed by sample id (e.g. :func:`cellpop.tl.sample_metadata`).
    keys
        One column or several columns of ``metadata``.
    kind
        ``"classification"``, ``"regression"`` or ``"ordinal"``.
    k
        Number of neighbours (SPARE: 3).
    metric
        Distance for a representation (``"euclidean"`` or ``"cosine"``).

    Returns
    -------
    Score in ``[0, 1]`` for one key (a ``str``), a Series per key for a list.

    Raises
    ------
    KeyError
        If a key is not a metadata column or samples are missing from the metadata.
    ValueError
        If a key has a single class, is non-numeric for regression, or ``<= k`` samples have a
        value; see also :func:`as_distance`.
    """
    D = _distance_for(dist, metadata.index.astype(str), metric)
    scores = {}
    for key in _as_keys(keys):
        if key not in metadata.columns:
            raise KeyError(f"{key!r} is not a column of the metadata: {list(metadata.columns)}")
        Dk, y = _aligned(D, metadata[key], key)
        scores[key] = _retention_one(Dk, y, kind, k, key)
    if isinstance(keys, str):
        return scores[keys]
    return pd.Series(scores, dtype=np.float64)


def batch_mixing(
    dist: pd.DataFrame,
    metadata: pd.DataFrame,
    keys: str | Sequence[str],
    kind: Kind = "classification",
    k: int = 3,
    metric: str = "euclidean",
) -> float | pd.Series:
    """SPARE batch mixing: ``1 -`` :func:`information_retention` of technical covariates.

    1 = the batch cannot be predicted from neighbours (well mixed), 0 = perfectly predicted.
    Parameters, returns and errors as in :func:`information_retention`.
    """
    return 1.0 - information_retention(dist, metadata, keys, kind=kind, k=k, metric=metric)


def _ordering_values(ordering: pd.Series) -> np.ndarray:
    """Ordering as float64 (ordered categoricals by code), missing values as NaN."""
    if isinstance(ordering.dtype, pd.CategoricalDtype):
        if not ordering.dtype.ordered:
            raise ValueError("ordering is an unordered categorical; make it ordered or numeric.")
        codes = ordering.cat.codes.to_numpy(dtype=np.float64)
        return np.where(codes < 0, np.nan, codes)
    try:
        return ordering.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError("ordering must be numeric or an ordered categorical.") from err


def trajectory_conservation(
    dist: pd.DataFrame | np.ndarray,
    ordering: pd.Series,
    root: str | None = None,
    n_neighbors: int = 10,
    metric: str = "euclidean",
    graph: Literal["with_value", "all"] = "with_value",
    signed: bool = False,
) -> float:
    """SPARE trajectory conservation: Spearman between an ordering and diffusion pseudotime.

    A kNN graph of the samples is built with :func:`scanpy.pp.neighbors` on the precomputed
    sample distances (``n_neighbors`` capped at ``n_samples - 1``), then :func:`scanpy.tl.diffmap`
    and :func:`scanpy.tl.dpt` from ``root``. Samples unreachable from the root (infinite
    pseudotime) rank last. The score is the Spearman correlation of ordering and pseudotime over
    the samples with an ordering value, clipped to ``[0, 1]`` (``signed=False``).

    Two choices differ from patpy 0.15.2 (``patpy.tl.evaluation.trajectory_correlation``), the
    SPARE authors' code: by default the graph is built only on the samples **with** an ordering
    value (patpy: on all samples, ``graph="all"``), and the correlation is clipped at 0 like
    every other SPARE score (patpy keeps the sign: ``signed=True``). Samples without a value
    would otherwise shape the pseudotime of those that have one; a negative correlation means
    the representation orders the samples backwards from the root, which for a score in
    ``[0, 1]`` is as bad as none. :func:`spare_scores` reports both the clipped and the signed
    value.

    Parameters
    ----------
    dist
        Distance matrix or representation, see :func:`as_distance` (a plain array: rows in the
        order of ``ordering.index``).
    ordering
        Ground-truth ordering (severity, age, ...) indexed by sample id: numbers or an ordered
        categorical; missing values (NaN / missing category) are allowed.
    root
        Sample id where pseudotime starts. Default: the sample with the smallest ordering value
        (the first such sample in the distance matrix's order).
    n_neighbors
        Neighbours of the sample graph (SPARE is silent; 10, capped at ``n_graph - 1``).
    metric
        Distance for a representation.
    graph
        ``"with_value"`` (default): graph and pseudotime on the samples with an ordering value
        only; ``"all"``: on every sample of ``dist`` (patpy), correlation still over the samples
        with a value.
    signed
        Return the Spearman correlation unclipped, in ``[-1, 1]`` (patpy's value).

    Returns
    -------
    Score in ``[0, 1]`` (``[-1, 1]`` with ``signed=True``); 0 when the correlation is undefined
    (constant pseudotime).

    Raises
    ------
    KeyError
        If samples are missing from ``ordering`` or ``root`` is not a sample with a value.
    ValueError
        If fewer than 4 samples have a value, the ordering is not numeric/ordered, or ``graph``
        is unknown.
    """
    import anndata as ad
    import scanpy as sc

    if graph not in ("with_value", "all"):
        raise ValueError(f"graph must be 'with_value' or 'all', got {graph!r}.")
    D = _distance_for(dist, ordering.index.astype(str), metric)
    y = ordering.copy()
    y.index = y.index.astype(str)
    missing = D.index.difference(y.index)
    if len(missing):
        raise KeyError(
            f"ordering: {len(missing)} sample(s) of the representation are missing from its "
            f"index (first: {list(missing[:5])})."
        )
    y = y.loc[D.index]
    yv = _ordering_values(y)
    has = np.isfinite(yv)
    if has.sum() < 4:
        raise ValueError(
            f"trajectory_conservation needs >= 4 samples with a value, got {int(has.sum())}."
        )
    in_graph = has if graph == "with_value" else np.ones(len(yv), dtype=bool)
    ids = D.index[in_graph]
    yg = yv[in_graph]
    if root is None:
        iroot = int(np.nanargmin(yg))
    else:
        if str(root) not in ids or not np.isfinite(yg[ids.get_loc(str(root))]):
            raise KeyError(f"root={root!r} is not a sample with an ordering value.")
        iroot = int(ids.get_loc(str(root)))
    n = len(ids)
    sdata = ad.AnnData(obs=pd.DataFrame(index=ids))
    sdata.obsm["distances"] = D.to_numpy()[np.ix_(in_graph, in_graph)]
    sc.pp.neighbors(
        sdata, n_neighbors=min(n_neighbors, n - 1), use_rep="distances", metric="precomputed"
    )
    sc.tl.diffmap(sdata, n_comps=min(15, n - 1))
    sdata.uns["iroot"] = iroot
    sc.tl.dpt(sdata)
    pt = sdata.obs["dpt_pseudotime"].to_numpy(dtype=np.float64)
    finite = np.isfinite(pt)
    pt = np.where(finite, pt, (pt[finite].max() if finite.any() else 0.0) + 1.0)
    ok = np.isfinite(yg)
    rho = spearmanr(yg[ok], pt[ok]).statistic
    rho = float(rho) if np.isfinite(rho) else 0.0
    return rho if signed else float(np.clip(rho, 0.0, 1.0))


def replicate_robustness(
    dist: pd.DataFrame, replicate_of: pd.Series, metric: str = "euclidean"
) -> float:
    """SPARE replicate robustness: ``1 -`` mean normalised rank of a sample's replicates.

    Samples sharing a value of ``replicate_of`` are replicates of one biological sample. For
    every ordered pair (sample ``s``, replicate ``r``) the rank of ``r`` among the
    non-replicates of ``s`` is the fraction of non-replicate samples closer to ``s`` than ``r``
    (ties count one half): 0 = the replicate is nearer than every other sample, 1 = farther.
    The score is 1 minus the mean over pairs (1 = replicates are always nearest).

    Parameters
    ----------
    dist
        Distance matrix or representation, see :func:`as_distance` (a plain array: rows in the
        order of ``replicate_of.index``).
    replicate_of
        Biological-sample id per sample (index = sample id); samples with no replicate or a
        missing value only serve as non-replicates.
    metric
        Distance for a representation.

    Returns
    -------
    Score in ``[0, 1]``.

    Raises
    ------
    KeyError
        If samples are missing from ``replicate_of``.
    ValueError
        If no sample has a replicate.
    """
    D = _distance_for(dist, replicate_of.index.astype(str), metric)
    groups = replicate_of.copy()
    groups.index = groups.index.astype(str)
    missing = D.index.difference(groups.index)
    if len(missing):
        raise KeyError(f"replicate_of lacks {len(missing)} sample(s) (first: {list(missing[:5])}).")
    g = groups.loc[D.index].astype(object).to_numpy()
    has = pd.notna(g)
    same = (g[:, None] == g[None, :]) & has[:, None] & has[None, :]
    np.fill_diagonal(same, False)
    if not same.any():
        raise ValueError("No sample has a replicate in replicate_of: nothing to score.")
    Dm = D.to_numpy()
    other = ~same
    np.fill_diagonal(other, False)
    n_other = other.sum(axis=1)
    ranks = []
    for s, r in zip(*np.nonzero(same), strict=True):  # one entry per replicate pair
        if n_other[s] == 0:
            continue
        d_other = Dm[s, other[s]]
        ranks.append(((d_other < Dm[s, r]).sum() + 0.5 * (d_other == Dm[s, r]).sum()) / n_other[s])
    if not ranks:
        raise ValueError("Every sample is a replicate of every other: nothing to rank against.")
    return float(1.0 - np.mean(ranks))


_WEIGHTS = {"retention": 1.0, "trajectory": 1.0, "batch_mixing": 0.5}


def spare_scores(
    data: pd.DataFrame | np.ndarray,
    metadata: pd.DataFrame,
    classification_keys: Sequence[str] = (),
    regression_keys: Sequence[str] = (),
    ordinal_keys: Sequence[str] = (),
    batch_keys: Sequence[str] = (),
    trajectory_key: str | None = None,
    replicate_key: str | None = None,
    k: int = 3,
    metric: str = "euclidean",
    trajectory_graph: Literal["with_value", "all"] = "with_value",
) -> pd.Series:
    """All SPARE scores of one sample representation and the SampleCLR total.

    ``retention`` = mean over the classification/regression/ordinal keys; ``batch_mixing`` =
    mean over ``batch_keys`` (classification); ``trajectory`` = :func:`trajectory_conservation`
    of ``metadata[trajectory_key]`` (clipped to ``[0, 1]``) and ``trajectory_signed`` its
    unclipped Spearman correlation (patpy's value); ``replicate_robustness`` when
    ``replicate_key`` is given (reported, not in a total).

    Two totals:

    * ``total`` = ``(retention + trajectory + 0.5 * batch_mixing) / 2.5``, the SampleCLR paper's
      definition (weights 1, 1, 0.5). NaN unless all three components are requested.
    * ``total_renormalised`` = the weighted mean over the components that were requested, the
      weights (1, 1, 0.5) renormalised, e.g. ``(retention + 0.5 * batch_mixing) / 1.5`` without
      a trajectory. Equal to ``total`` when all three are there; not comparable with the
      paper's totals otherwise.

    Parameters
    ----------
    data
        Representation ``(n_samples, d)`` or distance matrix, see :func:`as_distance`; a plain
        array has its rows in the order of ``metadata.index`` (a square array is read as a
        distance matrix: pass ``as_distance(array, index=..., is_distance=False)`` for a square
        representation).
    metadata
        DataFrame indexed by sample id holding every key.
    classification_keys, regression_keys, ordinal_keys
        Biological covariates for information retention.
    batch_keys
        Technical covariates (classification) for batch mixing.
    trajectory_key
        Ordering column for trajectory conservation.
    replicate_key
        Biological-sample column for replicate robustness.
    k, metric
        See :func:`information_retention`.
    trajectory_graph
        ``graph`` of :func:`trajectory_conservation` (``"all"`` = patpy's choice).

    Returns
    -------
    Series with ``retention``, ``batch_mixing``, ``trajectory``, ``trajectory_signed``,
    ``replicate_robustness`` (those requested), ``total``, ``total_renormalised``, and one
    ``"retention:<key>"`` / ``"batch_mixing:<key>"`` per key.

    Raises
    ------
    KeyError
        If a key is not a metadata column.
    ValueError
        If no component is requested; otherwise as the individual metrics.
    """
    D = _distance_for(data, metadata.index.astype(str), metric)
    out: dict[str, float] = {}
    ret = {}
    for keys, kind in (
        (classification_keys, "classification"),
        (regression_keys, "regression"),
        (ordinal_keys, "ordinal"),
    ):
        for key in _as_keys(keys):
            ret[key] = information_retention(D, metadata, key, kind=kind, k=k)
    if ret:
        out["retention"] = float(np.mean(list(ret.values())))
    mix = {key: batch_mixing(D, metadata, key, k=k) for key in _as_keys(batch_keys)}
    if mix:
        out["batch_mixing"] = float(np.mean(list(mix.values())))
    if trajectory_key is not None:
        if trajectory_key not in metadata.columns:
            raise KeyError(f"trajectory_key={trajectory_key!r} is not a metadata column.")
        signed = trajectory_conservation(
            D, metadata[trajectory_key], graph=trajectory_graph, signed=True
        )
        out["trajectory"] = float(np.clip(signed, 0.0, 1.0))
        out["trajectory_signed"] = signed
    if replicate_key is not None:
        if replicate_key not in metadata.columns:
            raise KeyError(f"replicate_key={replicate_key!r} is not a metadata column.")
        out["replicate_robustness"] = replicate_robustness(D, metadata[replicate_key])
    parts = {c: w for c, w in _WEIGHTS.items() if c in out}
    if not parts and not out:
        raise ValueError("Request at least one SPARE component (keys or trajectory_key).")
    if parts:
        out["total"] = (
            sum(out[c] * w for c, w in parts.items()) / sum(_WEIGHTS.values())
            if len(parts) == len(_WEIGHTS)
            else np.nan
        )
        out["total_renormalised"] = sum(out[c] * w for c, w in parts.items()) / sum(parts.values())
    out.update({f"retention:{key}": v for key, v in ret.items()})
    out.update({f"batch_mixing:{key}": v for key, v in mix.items()})
    return pd.Series(out, dtype=np.float64)
