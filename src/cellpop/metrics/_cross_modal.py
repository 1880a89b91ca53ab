"""Cross-modal (single-cell <-> bulk) sample-embedding metrics of POPPY (paper 004, §3.3-3.4;
METHODS.md "Cross-modal (POPPY)").

* :func:`cross_modal_recall`: recall@k of each sample's matching bulk profile among the
  candidates, from its single-cell (cell-set) embedding, and back (§3.3, Figure 2a).
* :func:`distance_correlation`: Spearman correlation between the pairwise distances of an
  embedding and reference distances (e.g. Cell-Ontology EMD between compositions, or distances
  between measured fractions), over all pairs and over the pairs within / across cohorts
  (§3.4, Figure 3).
* :func:`cross_modal_scores`: both, plus the cohort silhouette of the bulk embeddings
  (:func:`cellpop.metrics.dataset_silhouette`, §3.3, Figure 2b), in one dict.

Every function takes embeddings as DataFrames ``(n_samples, d)`` indexed by sample id.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

from ._population import _aligned, _matrix, dataset_silhouette
from ._spare import as_distance

__all__ = ["cross_modal_recall", "cross_modal_scores", "distance_correlation"]


def _unique_index(df: pd.DataFrame, name: str) -> pd.Index:
    index = df.index.astype(str)
    if index.has_duplicates:
        raise ValueError(f"{name} has duplicated sample ids: {index[index.duplicated()][:5]}.")
    return index


def cross_modal_recall(
    cell_embedding: pd.DataFrame,
    bulk_embedding: pd.DataFrame,
    ks: Sequence[int] = (1, 3, 5),
    metric: str = "cosine",
) -> dict[str, float]:
    """Recall@k of matched single-cell / bulk pairs, in both directions (paper 004, §3.3).

    For each sample of ``cell_embedding``, the bulk profiles of all those samples are ranked by
    distance to its cell-set embedding; the pair counts as recalled at ``k`` when the sample's
    own bulk profile is among the ``k`` nearest (``"cell->bulk"``). ``"bulk->cell"`` ranks the
    cell-set embeddings from each bulk profile. Ties are counted against the true match (a
    collapsed embedding, all distances equal, scores 0 at every ``k < n``).

    Parameters
    ----------
    cell_embedding
        Cell-set embeddings ``(n_samples, d)`` indexed by sample id (e.g.
        ``POPPY.get_sample_representation()`` restricted to held-out samples).
    bulk_embedding
        Bulk embeddings ``(m, d)`` indexed by sample id, one row per sample (e.g. each sample's
        pseudobulk); rows of samples absent from ``cell_embedding`` are ignored.
    ks
        Cut-offs ``k`` (each ``1 <= k``; values above ``n_samples`` give recall 1).
    metric
        :func:`scipy.spatial.distance.cdist` metric (default cosine, as the model's
        contrastive loss).

    Returns
    -------
    dict with ``"cell->bulk R@k"``, ``"bulk->cell R@k"`` (fractions in ``[0, 1]``) and
    ``"chance R@k"`` = ``min(k, n) / n`` (the expected recall of a random ranking) for each
    ``k``, and ``"n_samples"``.

    Raises
    ------
    TypeError
        An embedding that is not a DataFrame.
    KeyError
        Samples of ``cell_embedding`` missing from ``bulk_embedding`` (named).
    ValueError
        Duplicated sample ids, NaN/inf, different widths, fewer than 2 samples, ``k < 1``.
    """
    Zc = _matrix(cell_embedding)
    ids = _unique_index(cell_embedding, "cell_embedding")
    _unique_index(bulk_embedding, "bulk_embedding")
    Zb = _matrix(_aligned_rows(bulk_embedding, ids))
    if Zc.shape[1] != Zb.shape[1]:
        raise ValueError(f"The embeddings differ in width: {Zc.shape[1]} vs {Zb.shape[1]}.")
    n = len(ids)
    if n < 2:
        raise ValueError(f"recall@k needs at least 2 samples, got {n}.")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"ks must be >= 1, got {ks}.")
    D = np.nan_to_num(cdist(Zc, Zb, metric=metric), nan=1.0)  # cosine of a zero vector
    out: dict[str, float] = {}
    for name, d in (("cell->bulk", D), ("bulk->cell", D.T)):
        true = np.diag(d)[:, None]
        rank = (d <= true).sum(1) - 1  # candidates at least as close as the true match
        out.update({f"{name} R@{k}": float((rank < k).mean()) for k in ks})
    out.update({f"chance R@{k}": min(k, n) / n for k in ks})
    out["n_samples"] = n
    return out


def _aligned_rows(df: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    from ._probe import align_to_samples

    return align_to_samples(pd.DataFrame(index=ids), df, "bulk_embedding")


def distance_correlation(
    representation: pd.DataFrame,
    reference,
    groups: pd.Series | None = None,
    metric: str = "cosine",
) -> dict[str, float]:
    """Spearman correlation between embedding distances and reference distances (§3.4).

    The paper correlates "the pairwise patient embedding distance and the ground truth
    pairwise patient cell type-based distance", within and across cohorts (Figure 3).

    Parameters
    ----------
    representation
        Sample embeddings ``(n_samples, d)`` indexed by sample id.
    reference
        Reference distances: a square DataFrame ``(N, N)`` with index = columns = sample ids
        (e.g. :func:`cellpop.ontology.composition_distances` wrapped in a DataFrame, or
        :func:`cellpop.metrics.as_distance` of measured fractions) covering the samples of
        ``representation``.
    groups
        Cohort of each sample (Series indexed by sample id). ``None``: only ``"all"``.
    metric
        Distance between embeddings (:func:`scipy.spatial.distance.cdist`; default cosine).

    Returns
    -------
    dict: ``"all"`` (all pairs); with ``groups``: ``"within"`` (pairs of the same cohort,
    pooled), ``"across"`` (pairs of different cohorts) and ``"within <cohort>"`` per cohort;
    ``"n_pairs ..."`` for each. A subset with fewer than 3 pairs or constant distances gives NaN.

    Raises
    ------
    TypeError, KeyError, ValueError
        A representation that is not a DataFrame; samples missing from ``reference`` or
        ``groups``; NaN/inf; duplicated ids; a ``reference`` that is not a distance matrix
        (see :func:`cellpop.metrics.as_distance`); fewer than 3 samples.
    """
    _matrix(representation)
    ids = _unique_index(representation, "representation")
    if len(ids) < 3:
        raise ValueError(f"distance_correlation needs at least 3 samples, got {len(ids)}.")
    emb = as_distance(representation, metric, is_distance=False).to_numpy()
    if not isinstance(reference, pd.DataFrame):
        raise TypeError("reference must be a square DataFrame indexed by sample id.")
    ref = as_distance(reference, is_distance=True)
    missing = ids.difference(ref.index)
    if len(missing):
        raise KeyError(f"reference lacks {len(missing)} sample(s): {list(missing[:5])}.")
    ref = ref.loc[ids, ids].to_numpy()
    iu = np.triu_indices(len(ids), 1)
    a, b = emb[iu], ref[iu]
    subsets = {"all": np.ones(len(a), dtype=bool)}
    if groups is not None:
        g = _aligned(representation, groups, "groups").astype(str)
        same = g[iu[0]] == g[iu[1]]
        subsets["within"], subsets["across"] = same, ~same
        for c in pd.unique(g):
            subsets[f"within {c}"] = same & (g[iu[0]] == c)
    out: dict[str, float] = {}
    for name, m in subsets.items():
        out[name] = _spearman(a[m], b[m])
        out[f"n_pairs {name}"] = int(m.sum())
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a, b).statistic)


def cross_modal_scores(
    cell_embedding: pd.DataFrame,
    bulk_embedding: pd.DataFrame,
    composition_distance: pd.DataFrame,
    cohorts: pd.Series,
    ks: Sequence[int] = (1, 3, 5),
    metric: str = "cosine",
) -> dict[str, float]:
    """All cross-modal scores of paper 004 §3.3-3.4 for one set of samples.

    Parameters
    ----------
    cell_embedding, bulk_embedding
        Cell-set and bulk (e.g. pseudobulk) embeddings of the same samples, indexed by sample
        id (see :func:`cross_modal_recall`).
    composition_distance
        Square DataFrame of composition distances (e.g. Cell-Ontology EMD) over the samples.
    cohorts
        Cohort per sample id (at least 2 cohorts and fewer than ``n_samples``).
    ks, metric
        As in :func:`cross_modal_recall`.

    Returns
    -------
    dict: the recall entries of :func:`cross_modal_recall`; ``"cohort silhouette (bulk)"``
    (cosine silhouette of the bulk embeddings on ``cohorts``; lower = cohorts mixed, the
    paper's "integration across cohorts"); ``"Spearman <emb> vs EMD (<subset>)"`` for
    ``emb`` in ``bulk``/``cells`` and ``subset`` in ``all``/``within``/``across``.

    Raises
    ------
    TypeError, KeyError, ValueError
        As the functions it calls.
    """
    out: dict[str, float] = dict(cross_modal_recall(cell_embedding, bulk_embedding, ks, metric))
    bulk = _aligned_rows(bulk_embedding, cell_embedding.index.astype(str))
    out["cohort silhouette (bulk)"] = dataset_silhouette(bulk, cohorts, metric=metric)
    for name, emb in (("bulk", bulk), ("cells", cell_embedding)):
        rho = distance_correlation(emb, composition_distance, cohorts, metric)
        out.update({f"Spearman {name} vs EMD ({s})": rho[s] for s in ("all", "within", "across")})
    return out
