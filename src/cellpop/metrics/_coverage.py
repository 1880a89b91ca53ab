"""Prototype/metacell evaluations of scProto (Hashemi G. et al., §3.3 and §4.2).

* :func:`rare_population_coverage` -- is every labelled cell type the majority label of at
  least one prototype (the propagation loss is meant to guarantee this for rare types)?
* :func:`metacell_denoising_f1` -- macro F1 of classifiers separating two cell types from
  marker genes of single cells, from the marker genes of each cell's decoded prototype
  (metacell), and from the embedding (paper Fig. 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "KANG_MARKERS",
    "metacell_denoising_f1",
    "rare_population_coverage",
]

#: Marker genes for the paper's two contrasts, restricted to genes present in the 1,287-gene
#: ``kang2018_ctrl_8donors`` file. The paper's TYROBP (NK) vs CD8A (CD8+ T) uses CD3D/CD3E/CD3G
#: (T-cell receptor complex) here because CD8A, CD8B and CD4 are not among the file's genes;
#: CD4+ vs CD8+ T uses naive/central-memory genes (higher in CD4+ T: IL7R, CCR7, LEF1, SELL, LTB)
#: against cytotoxic genes (higher in CD8+ T: NKG7, GZMB, GNLY, CCL5) -- standard PBMC markers.
KANG_MARKERS: dict[tuple[str, str], list[str]] = {
    ("NK cell", "CD8+ T cell"): ["TYROBP", "FCER1G", "GNLY", "NKG7", "CD3D", "CD3E", "CD3G"],
    ("CD4+ T cell", "CD8+ T cell"): [
        "IL7R",
        "CCR7",
        "LEF1",
        "SELL",
        "LTB",
        "NKG7",
        "GZMB",
        "GNLY",
        "CCL5",
    ],
}


def rare_population_coverage(assignment: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Which cell types are the majority label of at least one prototype.

    Parameters
    ----------
    assignment
        Prototype index of every cell, shape ``(n_cells,)`` (e.g.
        ``ScProto.get_prototype_assignment()``).
    labels
        Cell-type label of every cell, shape ``(n_cells,)``.

    Returns
    -------
    DataFrame indexed by cell type (rarest first): ``n_cells``, ``fraction`` (of all cells),
    ``n_prototypes`` (prototypes whose majority label it is) and ``covered`` (bool).

    Raises
    ------
    ValueError
        If the two arrays differ in length.
    """
    assignment = np.asarray(assignment)
    labels = np.asarray(labels).astype(str)
    if assignment.shape[0] != labels.shape[0]:
        raise ValueError(
            f"assignment has {assignment.shape[0]} cells but labels has {labels.shape[0]}."
        )
    tab = pd.crosstab(assignment, labels)
    majority = tab.idxmax(axis=1)
    n_proto = majority.value_counts()
    counts = pd.Series(labels).value_counts()
    out = pd.DataFrame(
        {
            "n_cells": counts,
            "fraction": counts / counts.sum(),
            "n_prototypes": n_proto.reindex(counts.index, fill_value=0).astype(int),
        }
    )
    out["covered"] = out["n_prototypes"] > 0
    return out.sort_values("n_cells")


def _macro_f1_cv(X: np.ndarray, y: np.ndarray, n_splits: int, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")
    )
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pred = cross_val_predict(clf, X, y, cv=cv)
    return float(f1_score(y, pred, average="macro"))


def metacell_denoising_f1(
    cell_expression: np.ndarray,
    metacell_expression: np.ndarray,
    assignment: np.ndarray,
    embedding: np.ndarray,
    labels: np.ndarray,
    var_names,
    contrasts: dict[tuple[str, str], list[str]] | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Macro F1 of two-class classifiers on single-cell markers, metacell markers, embedding.

    For each contrast ``(type_a, type_b)``, the cells of the two types are classified with a
    class-balanced, standardised logistic regression in stratified ``n_splits``-fold
    cross-validation from (i) the cells' own marker-gene values ("single_cell"), (ii) the
    marker-gene values of each cell's assigned prototype's decoded metacell ("metacell") and
    (iii) the embedding ("embedding").

    Parameters
    ----------
    cell_expression
        Single-cell expression, shape ``(n_cells, n_genes)`` (log1p-normalised recommended;
        dense or sparse).
    metacell_expression
        Decoded metacells, shape ``(K, n_genes)``, in the same units as ``cell_expression``.
    assignment
        Prototype of every cell, shape ``(n_cells,)``, values in ``0..K-1``.
    embedding
        Cell embedding, shape ``(n_cells, d)``.
    labels
        Cell-type label per cell, shape ``(n_cells,)``.
    var_names
        Gene names of the expression columns, length ``n_genes``.
    contrasts
        ``{(type_a, type_b): marker genes}``; default :data:`KANG_MARKERS`. Markers missing
        from ``var_names`` are dropped.
    n_splits, seed
        Cross-validation folds and seed.

    Returns
    -------
    DataFrame with columns ``contrast``, ``representation``, ``f1_macro``, ``n_cells``,
    ``markers`` (one row per contrast and representation).

    Raises
    ------
    ValueError
        If a contrast's cell types are absent or none of its markers is present.
    """
    from scipy import sparse

    contrasts = KANG_MARKERS if contrasts is None else contrasts
    labels = np.asarray(labels).astype(str)
    var_names = pd.Index(var_names)
    assignment = np.asarray(assignment)
    rows = []
    for (a, b), markers in contrasts.items():
        genes = [g for g in markers if g in var_names]
        if not genes:
            raise ValueError(f"None of the markers {markers} for {a} vs {b} is in var_names.")
        mask = np.isin(labels, [a, b])
        y = labels[mask]
        if len(np.unique(y)) < 2:
            raise ValueError(f"Cell types {a!r} and/or {b!r} are absent from labels.")
        cols = var_names.get_indexer(genes)
        sc_x = cell_expression[mask][:, cols]
        sc_x = sc_x.toarray() if sparse.issparse(sc_x) else np.asarray(sc_x)
        feats = {
            "single_cell": sc_x,
            "metacell": np.asarray(metacell_expression)[assignment[mask]][:, cols],
            "embedding": np.asarray(embedding)[mask],
        }
        for name, X in feats.items():
            rows.append(
                {
                    "contrast": f"{a} vs {b}",
                    "representation": name,
                    "f1_macro": _macro_f1_cv(X, y, n_splits, seed),
                    "n_cells": int(mask.sum()),
                    "markers": ",".join(genes),
                }
            )
    return pd.DataFrame(rows)
