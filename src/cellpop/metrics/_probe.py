"""Leave-one-sample-out linear probe on sample representations."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def align_to_samples(representation: pd.DataFrame, values, name: str):
    """``values`` (a Series or DataFrame indexed by sample id) in the representation's row order
    (ids compared as strings; missing values kept).

    Raises
    ------
    TypeError
        If ``values`` is not a Series/DataFrame.
    KeyError
        If samples of the representation are missing from ``values`` (the message says ``name``).
    """
    if not isinstance(values, pd.Series | pd.DataFrame):
        raise TypeError(f"{name} must be a pandas Series/DataFrame indexed by sample id.")
    index = representation.index.astype(str)
    v = values.copy()
    v.index = v.index.astype(str)
    missing = index.difference(v.index)
    if len(missing):
        raise KeyError(
            f"{name} lack {len(missing)} sample(s) of the representation (first: "
            f"{list(missing[:5])})."
        )
    return v.loc[index]


def loo_probe(
    representation: pd.DataFrame,
    labels: pd.Series,
    score: Literal["auto", "auroc", "macro_f1"] = "auto",
    C: float = 0.1,
    max_iter: int = 5000,
) -> float:
    """Leave-one-sample-out logistic-regression probe of a sample-level label.

    For every sample, a standardised (:class:`~sklearn.preprocessing.StandardScaler`),
    class-balanced L2 logistic regression (``C``) is fitted on all other samples and predicts
    the held-out one. Unlike SPARE's 3-NN vote, the probe is not dominated by the majority
    class when classes are imbalanced (e.g. 16 COVID-19 vs 4 healthy donors).

    Parameters
    ----------
    representation
        Sample representation ``(n_samples, d)`` indexed by sample id.
    labels
        Label per sample id (index = sample id); samples with a missing label are left out.
    score
        ``"auroc"`` (binary labels only; pooled held-out probabilities of the second class in
        sorted order), ``"macro_f1"`` (held-out predicted classes), or ``"auto"``: AUROC for
        two classes, macro-F1 otherwise.
    C
        Inverse L2 regularisation strength. Default 0.1 (stronger than sklearn's 1.0) because
        sample-level probes see few samples (~20) with many features (50); on Stephenson 2021
        it gives the AUROCs quoted in METHODS.md (pseudobulk 0.75, CLR composition 0.80).
    max_iter
        Solver iterations.

    Returns
    -------
    The score (AUROC in ``[0, 1]``, 0.5 = chance; macro-F1 in ``[0, 1]``).

    Raises
    ------
    TypeError
        If ``representation`` is not a DataFrame.
    KeyError
        If samples of ``representation`` are missing from ``labels``.
    ValueError
        If the representation has NaN/inf, fewer than two classes, a class with a single sample
        (it could not be held out), or ``score="auroc"`` with more than two classes.
    """
    if not isinstance(representation, pd.DataFrame):
        raise TypeError(
            f"representation must be a DataFrame indexed by sample id, got "
            f"{type(representation).__name__}."
        )
    if score not in ("auto", "auroc", "macro_f1"):
        raise ValueError(f"score={score!r} must be 'auto', 'auroc' or 'macro_f1'.")
    y = align_to_samples(representation, labels, "labels")
    keep = y.notna().to_numpy()
    X = representation.to_numpy(dtype=np.float64)[keep]
    if not np.isfinite(X).all():
        raise ValueError("The representation contains NaN/inf.")
    y = y[keep].astype(str).to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"labels have {len(classes)} class(es) among the samples; need >= 2.")
    if counts.min() < 2:
        raise ValueError(
            f"class {classes[counts.argmin()]!r} has a single sample: leave-one-out needs >= 2 "
            "samples per class."
        )
    if score == "auto":
        score = "auroc" if len(classes) == 2 else "macro_f1"
    if score == "auroc" and len(classes) != 2:
        raise ValueError(f"score='auroc' needs two classes, got {len(classes)}.")
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter),
    )
    if score == "auroc":
        proba = cross_val_predict(clf, X, y, cv=LeaveOneOut(), method="predict_proba")
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    pred = cross_val_predict(clf, X, y, cv=LeaveOneOut())
    return float(f1_score(y, pred, labels=classes, average="macro", zero_division=0.0))
