"""SPARE sample-embedding metrics (Shitov et al. 2025), as used by SampleCLR.

All functions take either a sample x sample distance matrix or a sample representation
(see :func:`as_distance`) and metadata indexed by sample id.
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


def as_distance(data: pd.DataFrame, metric: str = "euclidean") -> pd.DataFrame:
    """Return a sample x sample distance matrix.

    Parameters
    ----------
    data
        Either a distance matrix (square DataFrame whose columns equal its index, e.g. from
        :func:`cellpop.tl.gloscope`) returned as is, or a representation ``(n_samples, d)``
        indexed by sample id, turned into pairwise ``metric`` distances.
    metric
        ``"euclidean"`` (default) or ``"cosine"`` (any :func:`scipy.spatial.distance.cdist`
        metric); ignored for a distance matrix.

    Returns
    -------
    Square DataFrame ``(n_samples, n_samples)``, index = columns = sample ids (as strings).

    Raises
    ------
    TypeError
        If ``data`` is not a DataFrame.
    ValueError
        On NaN/inf, duplicated sample ids, a non-symmetric / negative distance matrix or a
        nonzero diagonal.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            "Pass a pandas DataFrame indexed by sample id (a representation or a distance "
            f"matrix), got {type(data).__name__}."
        )
    index = data.index.astype(str)
    if index.has_duplicates:
        raise ValueError("The sample representation / distance matrix has duplicated sample ids.")
    values = data.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("The sample representation / distance matrix contains NaN/inf.")
    is_dist = data.shape[0] == data.shape[1] and data.columns.astype(str).equals(index)
    if is_dist:
        tol = 1e-8 * max(1.0, np.abs(values).max())
        if not np.allclose(values, values.T, rtol=0.0, atol=tol):
            raise ValueError("The distance matrix is not symmetric.")
        if (values < -tol).any() or np.abs(np.diag(values)).max() > tol:
            raise ValueError("A distance matrix needs non-negative entries and a zero diagonal.")
        D = np.clip(values, 0.0, None)
        np.fill_diagonal(D, 0.0)
    else:
        D = cdist(values, values, metric=metric)
        D = np.nan_to_num(D, nan=0.0)  # cosine of an all-zero vector
        np.fill_diagonal(D, 0.0)
    return pd.DataFrame(D, index=index, columns=index)


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
        Distance matrix or representation, see :func:`as_distance`.
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
    D = as_distance(dist, metric)
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


def trajectory_conservation(
    dist: pd.DataFrame,
    ordering: pd.Series,
    root: str | None = None,
    n_neighbors: int = 10,
    metric: str = "euclidean",
) -> float:
    """SPARE trajectory conservation: Spearman between an ordering and diffusion pseudotime.

    A kNN graph of the samples is built with :func:`scanpy.pp.neighbors` on the precomputed
    sample distances (``n_neighbors`` capped at ``n_samples - 1``), then :func:`scanpy.tl.diffmap`
    and :func:`scanpy.tl.dpt` from ``root``. Samples unreachable from the root (infinite
    pseudotime) rank last. The Spearman correlation is clipped to ``[0, 1]``.

    Parameters
    ----------
    dist
        Distance matrix or representation, see :func:`as_distance`.
    ordering
        Ground-truth ordering (severity, age, ...) indexed by sample id: numbers or an ordered
        categorical. Samples with a missing value are left out.
    root
        Sample id where pseudotime starts. Default: the sample with the smallest ordering value
        (the first such sample in the distance matrix's order).
    n_neighbors
        Neighbours of the sample graph (SPARE is silent; 10, capped at ``n_samples - 1``).
    metric
        Distance for a representation.

    Returns
    -------
    Score in ``[0, 1]``.

    Raises
    ------
    KeyError
        If samples are missing from ``ordering`` or ``root`` is not a sample with a value.
    ValueError
        If fewer than 4 samples have a value, or the ordering is not numeric/ordered.
    """
    import anndata as ad
    import scanpy as sc

    D = as_distance(dist, metric)
    Dk, y = _aligned(D, ordering, "ordering")
    if isinstance(y.dtype, pd.CategoricalDtype):
        if not y.dtype.ordered:
            raise ValueError("ordering is an unordered categorical; make it ordered or numeric.")
        y = pd.Series(y.cat.codes.to_numpy(dtype=np.float64), index=y.index)
    try:
        yv = y.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError("ordering must be numeric or an ordered categorical.") from err
    n = len(yv)
    if n < 4:
        raise ValueError(f"trajectory_conservation needs >= 4 samples with a value, got {n}.")
    if root is None:
        iroot = int(np.argmin(yv))
    else:
        if str(root) not in y.index:
            raise KeyError(f"root={root!r} is not a sample with an ordering value.")
        iroot = int(y.index.get_loc(str(root)))
    sdata = ad.AnnData(obs=pd.DataFrame(index=y.index))
    sdata.obsm["distances"] = Dk
    sc.pp.neighbors(
        sdata, n_neighbors=min(n_neighbors, n - 1), use_rep="distances", metric="precomputed"
    )
    sc.tl.diffmap(sdata, n_comps=min(15, n - 1))
    sdata.uns["iroot"] = iroot
    sc.tl.dpt(sdata)
    pt = sdata.obs["dpt_pseudotime"].to_numpy(dtype=np.float64)
    finite = np.isfinite(pt)
    pt = np.where(finite, pt, (pt[finite].max() if finite.any() else 0.0) + 1.0)
    rho = spearmanr(yv, pt).statistic
    return float(np.clip(rho if np.isfinite(rho) else 0.0, 0.0, 1.0))


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
        Distance matrix or representation, see :func:`as_distance`.
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
    D = as_distance(dist, metric)
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
    data: pd.DataFrame,
    metadata: pd.DataFrame,
    classification_keys: Sequence[str] = (),
    regression_keys: Sequence[str] = (),
    ordinal_keys: Sequence[str] = (),
    batch_keys: Sequence[str] = (),
    trajectory_key: str | None = None,
    replicate_key: str | None = None,
    k: int = 3,
    metric: str = "euclidean",
) -> pd.Series:
    """All SPARE scores of one sample representation and the SampleCLR total.

    ``retention`` = mean over the classification/regression/ordinal keys; ``batch_mixing`` =
    mean over ``batch_keys`` (classification); ``trajectory`` = :func:`trajectory_conservation`
    of ``metadata[trajectory_key]``; ``replicate_robustness`` when ``replicate_key`` is given
    (reported, not in the total). ``total = (retention + trajectory + 0.5 * batch_mixing) / 2.5``
    (SampleCLR App., weights 1, 1, 0.5). When a component is not requested, the total is the
    weighted mean over the given components with the weights renormalised (e.g. retention and
    mixing only: ``(retention + 0.5 * mixing) / 1.5``).

    Parameters
    ----------
    data
        Representation ``(n_samples, d)`` or distance matrix, see :func:`as_distance`.
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

    Returns
    -------
    Series with ``retention``, ``batch_mixing``, ``trajectory``, ``replicate_robustness`` (those
    requested), ``total``, and one ``"retention:<key>"`` / ``"batch_mixing:<key>"`` per key.

    Raises
    ------
    ValueError
        If no component is requested; otherwise as the individual metrics.
    """
    D = as_distance(data, metric)
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
        out["trajectory"] = trajectory_conservation(D, metadata[trajectory_key])
    if replicate_key is not None:
        if replicate_key not in metadata.columns:
            raise KeyError(f"replicate_key={replicate_key!r} is not a metadata column.")
        out["replicate_robustness"] = replicate_robustness(D, metadata[replicate_key])
    parts = {c: w for c, w in _WEIGHTS.items() if c in out}
    if not parts and not out:
        raise ValueError("Request at least one SPARE component (keys or trajectory_key).")
    if parts:
        out["total"] = sum(out[c] * w for c, w in parts.items()) / sum(parts.values())
    out.update({f"retention:{key}": v for key, v in ret.items()})
    out.update({f"batch_mixing:{key}": v for key, v in mix.items()})
    return pd.Series(out, dtype=np.float64)
