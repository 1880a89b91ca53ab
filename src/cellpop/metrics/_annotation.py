"""Cell-type annotation of held-out donors from frozen cell embeddings (paper-style F1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["annotation_f1", "f1_scores"]


def f1_scores(y_true, y_pred) -> dict[str, float]:
    """Macro and micro F1 (sklearn), keys ``f1_macro`` and ``f1_micro``.

    Macro F1 averages over the labels present in ``y_true`` or ``y_pred``; micro F1 equals
    accuracy for single-label predictions.
    """
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    return {
        "f1_macro": float(f1_score(y_true, y_pred, average="macro")),
        "f1_micro": float(f1_score(y_true, y_pred, average="micro")),
    }


def annotation_f1(
    embedding: np.ndarray,
    labels,
    donors,
    test_donors,
    probe: str = "logistic",
    n_neighbors: int = 15,
    max_iter: int = 1000,
) -> pd.Series:
    """Macro/micro F1 of a probe trained on some donors' cells and tested on held-out donors.

    Parameters
    ----------
    embedding
        Frozen cell embeddings, shape (n_cells, d).
    labels
        Cell types, shape (n_cells,).
    donors
        Donor (sample) of each cell, shape (n_cells,).
    test_donors
        Donors whose cells form the test set; all other cells train the probe.
    probe
        ``"logistic"``: standardised features + multinomial logistic regression (sklearn,
        L2, C = 1); ``"knn"``: standardised features + ``n_neighbors``-NN majority vote.
    n_neighbors, max_iter
        kNN size; logistic-regression iterations.

    Returns
    -------
    pandas.Series
        ``f1_macro``, ``f1_micro``, ``n_train``, ``n_test``.

    Raises
    ------
    ValueError
        Shape mismatch, unknown probe, or an empty train or test set.
    """
    X = np.asarray(embedding, dtype=np.float64)
    labels, donors = np.asarray(labels).astype(str), np.asarray(donors).astype(str)
    if not (X.shape[0] == len(labels) == len(donors)):
        raise ValueError(
            f"embedding ({X.shape[0]} rows), labels ({len(labels)}) and donors ({len(donors)}) "
            "must have the same length."
        )
    test = np.isin(donors, np.asarray(test_donors).astype(str))
    if test.all() or not test.any():
        raise ValueError("test_donors must select some but not all cells.")
    if probe == "logistic":
        clf = LogisticRegression(max_iter=max_iter)
    elif probe == "knn":
        clf = KNeighborsClassifier(n_neighbors=n_neighbors)
    else:
        raise ValueError(f"probe must be 'logistic' or 'knn', got {probe!r}")
    model = make_pipeline(StandardScaler(), clf).fit(X[~test], labels[~test])
    scores = f1_scores(labels[test], model.predict(X[test]))
    return pd.Series({**scores, "n_train": int((~test).sum()), "n_test": int(test.sum())})
