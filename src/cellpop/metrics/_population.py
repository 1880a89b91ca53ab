"""Sample-embedding metrics of SC-JEPA's Tables 1-2 (paper 000, §4; METHODS.md "SC-JEPA tables").

Batch integration: :func:`dataset_silhouette`, :func:`leiden_ari`. Biology: :func:`svm_scores`
(disease precision/recall), :func:`composition_probe` (CLR cell-type proportions, MSE and R²).
Stratification of donor x perturbation samples: :func:`perturbation_cv`,
:func:`silhouette_auc`. Every function takes a sample representation as a DataFrame
``(n_samples, d)`` indexed by sample id and per-sample labels as Series indexed by sample id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._probe import align_to_samples

__all__ = [
    "composition_probe",
    "dataset_silhouette",
    "leiden_ari",
    "perturbation_cv",
    "silhouette_auc",
    "svm_scores",
]


def _matrix(representation: pd.DataFrame) -> np.ndarray:
    if not isinstance(representation, pd.DataFrame):
        raise TypeError(
            f"representation must be a DataFrame indexed by sample id, got "
            f"{type(representation).__name__}."
        )
    X = representation.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError("The representation contains NaN/inf.")
    return X


def _aligned(representation: pd.DataFrame, values, name: str) -> np.ndarray:
    """``values`` in the representation's row order; missing values raise."""
    out = align_to_samples(representation, values, name)
    if out.isna().to_numpy().any():
        raise ValueError(f"{name} has missing values for some samples.")
    return out.to_numpy()


def dataset_silhouette(
    representation: pd.DataFrame, labels: pd.Series, metric: str = "euclidean"
) -> float:
    """Silhouette of the sample embeddings on dataset (batch) labels (Table 1, lower = better).

    Parameters
    ----------
    representation
        Sample embeddings ``(n_samples, d)`` indexed by sample id.
    labels
        Dataset label per sample id.
    metric
        Distance of :func:`sklearn.metrics.silhouette_score` (default Euclidean; the paper
        names none).

    Returns
    -------
    Mean silhouette in ``[-1, 1]``: ~0 = datasets mixed, 1 = datasets separated.

    Raises
    ------
    TypeError, KeyError, ValueError
        Not a DataFrame; samples missing from ``labels``; NaN values, fewer than 2 or more than
        ``n_samples - 1`` labels.
    """
    from sklearn.metrics import silhouette_score

    X = _matrix(representation)
    y = _aligned(representation, labels, "labels").astype(str)
    n_labels = len(np.unique(y))
    if not 2 <= n_labels <= len(y) - 1:
        raise ValueError(f"silhouette needs 2..n_samples-1 labels, got {n_labels}.")
    return float(silhouette_score(X, y, metric=metric))


def leiden_ari(
    representation: pd.DataFrame,
    labels: pd.Series,
    resolution: float = 0.1,
    n_neighbors: int = 15,
    seed: int = 0,
    neighbors_method: str = "umap",
) -> tuple[float, int]:
    """ARI between Leiden clusters of the samples and dataset labels (Table 1, lower = better).

    A kNN graph of the samples (:func:`scanpy.pp.neighbors`, Euclidean, ``n_neighbors`` capped
    at ``n_samples - 1``) is clustered with :func:`scanpy.tl.leiden` using the python-igraph
    implementation (``flavor="igraph"``, runs until convergence; no ``leidenalg`` needed).

    Parameters
    ----------
    representation
        Sample embeddings ``(n_samples, d)`` indexed by sample id.
    labels
        Dataset label per sample id.
    resolution
        Leiden resolution (paper: 0.1).
    n_neighbors
        kNN graph size (scanpy's default 15; the paper names none).
    seed
        Random state of the clustering.
    neighbors_method
        Edge weights of :func:`scanpy.pp.neighbors`: ``"umap"`` (scanpy's default; its first
        call in a process JIT-compiles numba code, ~20 s) or ``"gauss"`` (no compilation).

    Returns
    -------
    ``(ari, n_clusters)``: the adjusted Rand index (1 = clusters are the datasets, ~0 = unrelated)
    and the number of Leiden clusters found.

    Raises
    ------
    TypeError, KeyError, ValueError
        Not a DataFrame; samples missing from ``labels``; NaN values or fewer than 3 samples.
    """
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    X = _matrix(representation)
    y = _aligned(representation, labels, "labels").astype(str)
    if len(y) < 3:
        raise ValueError(f"leiden_ari needs >= 3 samples, got {len(y)}.")
    a = ad.AnnData(np.zeros((len(y), 0), dtype=np.float32))
    a.obsm["X_rep"] = X
    sc.pp.neighbors(
        a, n_neighbors=min(n_neighbors, len(y) - 1), use_rep="X_rep", method=neighbors_method,
        random_state=0,
    )  # fmt: skip
    sc.tl.leiden(
        a, resolution=resolution, flavor="igraph", n_iterations=-1, directed=False,
        random_state=seed,
    )  # fmt: skip
    clusters = a.obs["leiden"].to_numpy()
    return float(adjusted_rand_score(y, clusters)), int(len(np.unique(clusters)))


def _folds(y: np.ndarray | None, groups: np.ndarray, n_splits: int, seed: int):
    """Cross-validation folds by group (donor): stratified when ``y`` is given."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_splits < 2 or n_splits > n_groups:
        raise ValueError(f"n_splits={n_splits} must be in 2..n_groups ({n_groups}).")
    if y is None:
        return GroupKFold(n_splits=n_splits).split(groups, groups=groups)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return cv.split(groups, y, groups=groups)


def _groups(representation: pd.DataFrame, groups: pd.Series | None) -> np.ndarray:
    if groups is None:
        return np.asarray(representation.index.astype(str))
    return _aligned(representation, groups, "groups").astype(str)


def svm_scores(
    representation: pd.DataFrame,
    labels: pd.Series,
    positive: str | None = None,
    groups: pd.Series | None = None,
    n_splits: int = 5,
    C: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """Cross-validated linear-SVM precision and recall of a sample label (Table 1, disease).

    A standardised (:class:`~sklearn.preprocessing.StandardScaler`) class-balanced
    :class:`~sklearn.svm.LinearSVC` is fitted on the training folds and predicts the held-out
    fold; folds never split a donor (:class:`~sklearn.model_selection.StratifiedGroupKFold`,
    seeded shuffle). Precision and recall of ``positive`` are computed on the pooled held-out
    predictions.

    Parameters
    ----------
    representation
        Sample embeddings ``(n_samples, d)`` indexed by sample id.
    labels
        Class per sample id (e.g. ``disease``).
    positive
        The class scored (e.g. ``"COVID-19"``; default: the last class in sorted order).
    groups
        Donor per sample id (default: every sample its own donor).
    n_splits
        Folds (default 5; at most the number of donors; capped at the smallest class's sample
        count so that every fold can hold every class).
    C
        SVM regularisation (sklearn's default 1.0; the paper gives none).
    seed
        Seed of the fold shuffle.

    Returns
    -------
    ``{"precision": p, "recall": r}`` of ``positive`` (precision 0 if never predicted).

    Raises
    ------
    TypeError, KeyError, ValueError
        Not a DataFrame; samples missing from ``labels``/``groups``; NaN values, fewer than two
        classes, an unknown ``positive``, ``n_splits`` (after capping) outside ``2..n_donors``.
    """
    from sklearn.metrics import precision_score, recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    X = _matrix(representation)
    y = _aligned(representation, labels, "labels").astype(str)
    g = _groups(representation, groups)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"labels have {len(classes)} class(es); need >= 2.")
    positive = classes[-1] if positive is None else str(positive)
    if positive not in classes:
        raise ValueError(f"positive={positive!r} is not a class; classes: {classes.tolist()}.")
    pred = np.empty_like(y)
    n_splits = min(n_splits, int(np.unique(y, return_counts=True)[1].min()))
    for train, test in _folds(y, g, n_splits, seed):
        clf = make_pipeline(StandardScaler(), LinearSVC(C=C, class_weight="balanced"))
        pred[test] = clf.fit(X[train], y[train]).predict(X[test])
    truth, guess = y == positive, pred == positive
    return {
        "precision": float(precision_score(truth, guess, zero_division=0.0)),
        "recall": float(recall_score(truth, guess, zero_division=0.0)),
    }


def composition_probe(
    representation: pd.DataFrame,
    composition: pd.DataFrame,
    groups: pd.Series | None = None,
    n_splits: int = 5,
    alpha: float = 1.0,
) -> dict[str, float]:
    """Cross-validated linear probe of (CLR) cell-type proportions (Tables 1-2, "CT MSE / R²").

    A standardised ridge regression (:class:`~sklearn.linear_model.Ridge`, ``alpha``) maps the
    embedding to all composition columns at once; folds never split a donor
    (:class:`~sklearn.model_selection.GroupKFold`). Scores use the pooled held-out predictions.

    Parameters
    ----------
    representation
        Sample embeddings ``(n_samples, d)`` indexed by sample id.
    composition
        Target ``(n_samples, n_cell_types)`` indexed by sample id, e.g.
        ``tl.cell_type_composition(..., transform="clr")`` (paper: CLR proportions).
    groups
        Donor per sample id (default: every sample its own donor).
    n_splits
        Folds (default 5; ``n_splits = n_samples`` gives leave-one-out).
    alpha
        Ridge penalty (default 1.0; the paper's probe is unspecified, a small penalty keeps it
        defined with more dimensions than samples).

    Returns
    -------
    ``{"mse": m, "r2": r}``: mean squared error over all entries (units of the target) and
    :func:`sklearn.metrics.r2_score` averaged uniformly over cell types (1 = perfect, 0 = the
    training mean, negative = worse).

    Raises
    ------
    TypeError, KeyError, ValueError
        Not DataFrames; samples missing from ``composition``/``groups``; NaN values;
        ``n_splits`` outside ``2..n_donors``.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = _matrix(representation)
    if not isinstance(composition, pd.DataFrame):
        raise TypeError("composition must be a DataFrame (n_samples, n_cell_types).")
    Y = _aligned(representation, composition, "composition").astype(np.float64)
    g = _groups(representation, groups)
    pred = np.empty_like(Y)
    for train, test in _folds(None, g, n_splits, 0):
        clf = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        pred[test] = clf.fit(X[train], Y[train]).predict(X[test])
    return {"mse": float(mean_squared_error(Y, pred)), "r2": float(r2_score(Y, pred))}


def _per_donor(representation, donors, perturbations):
    X = _matrix(representation)
    d = _aligned(representation, donors, "donors").astype(str)
    p = _aligned(representation, perturbations, "perturbations").astype(str)
    frame = pd.DataFrame({"donor": d, "pert": p})
    if frame.duplicated().any():
        dup = frame[frame.duplicated()].iloc[0].tolist()
        raise ValueError(f"(donor, perturbation) {dup} occurs in more than one sample.")
    return X, d, p


def perturbation_cv(
    representation: pd.DataFrame, donors: pd.Series, perturbations: pd.Series
) -> dict[str, float]:
    """Across-donor variability of perturbation-perturbation distances (Table 2, "CV").

    For each donor, the Euclidean distances between the embeddings of its perturbations are
    computed; for each perturbation pair present in at least two donors, the coefficient of
    variation across donors is ``std / mean`` (population std, ``ddof=0``).

    Parameters
    ----------
    representation
        Embeddings of donor x perturbation samples ``(n_samples, d)`` indexed by sample id.
    donors, perturbations
        Donor and perturbation per sample id; each (donor, perturbation) at most once.

    Returns
    -------
    ``{"cv_mean": m, "cv_max": M, "n_pairs": n}``: mean and max CV over perturbation pairs
    (dimensionless; higher = donors differ more in how perturbations relate).

    Raises
    ------
    TypeError, KeyError, ValueError
        Not a DataFrame; samples missing from ``donors``/``perturbations``; NaN values; a
        repeated (donor, perturbation); no pair in two donors; a pair at mean distance 0.
    """
    X, d, p = _per_donor(representation, donors, perturbations)
    dist: dict[tuple[str, str], list[float]] = {}
    for donor in np.unique(d):
        rows = np.flatnonzero(d == donor)
        for a_i, a in enumerate(rows):
            for b in rows[a_i + 1 :]:
                key = tuple(sorted((p[a], p[b])))
                dist.setdefault(key, []).append(float(np.linalg.norm(X[a] - X[b])))
    vals = {k: np.asarray(v) for k, v in dist.items() if len(v) >= 2}
    if not vals:
        raise ValueError("No perturbation pair occurs in two donors: the CV is undefined.")
    cvs = []
    for key, v in vals.items():
        if v.mean() == 0:
            raise ValueError(f"Perturbations {key} coincide in every donor: CV undefined.")
        cvs.append(v.std() / v.mean())
    return {"cv_mean": float(np.mean(cvs)), "cv_max": float(np.max(cvs)), "n_pairs": len(cvs)}


def silhouette_auc(
    representation: pd.DataFrame,
    donors: pd.Series,
    k_range: tuple[int, int] = (2, 20),
    seed: int = 0,
    n_init: int = 10,
) -> pd.Series:
    """Per-donor area under the k-means silhouette curve (Table 2, "AUC-Sil").

    For each donor, its samples (e.g. one per perturbation) are clustered with
    :class:`~sklearn.cluster.KMeans` for every ``k`` in ``k_range`` (capped at
    ``n_donor_samples - 1``, the largest ``k`` a silhouette allows); the silhouette scores are
    integrated over ``k`` with the trapezoidal rule (unit step). The paper reports mean ± sd
    over donors (``result.mean()``, ``result.std()``).

    Parameters
    ----------
    representation
        Embeddings of donor x perturbation samples ``(n_samples, d)`` indexed by sample id.
    donors
        Donor per sample id.
    k_range
        Smallest and largest ``k`` (paper: 2..20).
    seed, n_init
        KMeans random state and restarts.

    Returns
    -------
    Series of the AUC per donor (units: silhouette x k; at most ``k_max - k_min``).

    Raises
    ------
    TypeError, KeyError, ValueError
        Not a DataFrame; samples missing from ``donors``; NaN values; ``k_range[0] < 2``; a
        donor with fewer than ``k_range[0] + 2`` samples (two ``k`` values are needed for an
        area).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    X = _matrix(representation)
    d = _aligned(representation, donors, "donors").astype(str)
    k_lo, k_hi = int(k_range[0]), int(k_range[1])
    if k_lo < 2 or k_hi <= k_lo:
        raise ValueError(f"k_range={k_range} must satisfy 2 <= k_min < k_max.")
    out = {}
    for donor in np.unique(d):
        Xd = X[d == donor]
        ks = np.arange(k_lo, min(k_hi, len(Xd) - 1) + 1)
        if len(ks) < 2:
            raise ValueError(
                f"donor {str(donor)!r} has {len(Xd)} samples: need >= {k_lo + 2} for a silhouette "
                "curve over two k values."
            )
        sil = [
            silhouette_score(
                Xd, KMeans(n_clusters=int(k), n_init=n_init, random_state=seed).fit_predict(Xd)
            )
            for k in ks
        ]
        out[donor] = float(np.trapezoid(sil, ks))
    return pd.Series(out, name="silhouette_auc")
