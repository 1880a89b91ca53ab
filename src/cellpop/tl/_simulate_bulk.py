"""POPPY's training bulk profiles: in-silico mixtures of sorted populations and pseudobulk pairs.

Paper 004 (POPPY) §2.1 and App. A.3.2: surrogate bulk profiles are (i) pseudobulk profiles, the
counts of all cells of a single-cell sample summed, and (ii) *in silico* bulk profiles, weighted
averages of sorted-population bulk profiles with known proportions, matched to the single-cell
compositions "with the same proportions for shared cell types".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData

from cellpop.data._validation import check_finite, check_obs_key, get_input_matrix

from ._baselines import cell_type_composition, pseudobulk

COMPOSITION_KEY = "cell_type_fractions"
"""``obsm`` key of the known composition of every simulated or pseudobulk profile."""


def _check_compositions(props: pd.DataFrame, atol: float, what: str) -> np.ndarray:
    values = props.to_numpy(dtype=np.float64)
    check_finite(values, what)
    if (values < 0).any():
        raise ValueError(
            f"{what} has negative proportions (rows {_rows(props, values.min(1) < 0)})."
        )
    bad = np.abs(values.sum(1) - 1.0) > atol
    if bad.any():
        raise ValueError(
            f"{what}: {int(bad.sum())} composition(s) do not sum to one within {atol} "
            f"(rows {_rows(props, bad)}, sums {np.round(values.sum(1)[bad][:5], 4).tolist()})."
        )
    return values


def _rows(df: pd.DataFrame, mask: np.ndarray) -> list:
    return df.index[mask][:5].tolist()


def _library_normalise(X: np.ndarray, target_sum: float) -> np.ndarray:
    totals = X.sum(1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError("a sorted-population profile has no expression (all zeros).")
    return X / totals * target_sum


def simulate_bulk(
    sorted_bulk: AnnData,
    proportions: pd.DataFrame,
    cell_type_key: str = "cell_type_ontology_term_id",
    layer: str | None = None,
    target_sum: float = 1e6,
    seed: int = 0,
    atol: float = 1e-5,
) -> AnnData:
    """In-silico bulk profiles: mixtures of sorted-population profiles with known proportions.

    Each simulated profile ``s`` is ``sum_t p_st * x_t`` where ``x_t`` is one sorted profile of
    population ``t`` drawn at random among that population's samples (POPPY App. A.3.2, after
    Zaitsev et al. 2022: "we resample datasets within each cell type to improve dataset
    variability"), library-normalised to ``target_sum`` before mixing so that proportions are
    shares of the mixture's transcripts.

    Parameters
    ----------
    sorted_bulk
        Bulk profiles of sorted populations, ``(n_profiles, n_genes)``, e.g.
        ``cellpop.datasets.hoek2015_sorted_pbmc_bulk()``. Not modified.
    proportions
        ``(n_simulated, n_types)`` DataFrame: index = names of the simulated profiles, columns =
        population labels (values of ``sorted_bulk.obs[cell_type_key]``), rows on the simplex.
    cell_type_key
        ``sorted_bulk.obs`` column of each profile's population (default: the CL ID column).
    layer
        Layer of ``sorted_bulk`` with the expression (``None``: ``X``); counts or TPM-like.
    target_sum
        Library size of each sorted profile before mixing and hence of each mixture
        (default 1e6: counts per million).
    seed
        Seed of the per-profile choice of sorted samples.
    atol
        Tolerance on each row summing to one.

    Returns
    -------
    AnnData ``(n_simulated, n_genes)``: float32 ``X`` on the ``target_sum`` scale,
    ``obsm["cell_type_fractions"]`` = ``proportions``, ``obs["source"] = "in_silico"``,
    ``var`` = ``sorted_bulk.var``.

    Raises
    ------
    KeyError
        If ``cell_type_key`` is missing, or a column of ``proportions`` is not a population of
        ``sorted_bulk`` (all such columns named).
    ValueError
        If a row does not sum to one, holds negative or NaN values, a sorted profile is all
        zeros or holds NaN/inf.
    """
    check_obs_key(sorted_bulk, cell_type_key, "cell_type_key")
    pops = sorted_bulk.obs[cell_type_key].astype(str).to_numpy()
    cols = pd.Index(proportions.columns.astype(str))
    unknown = cols.difference(pd.Index(pops))
    if len(unknown):
        raise KeyError(
            f"proportions columns {unknown.tolist()} are not populations of "
            f"sorted_bulk.obs[{cell_type_key!r}] (available: {sorted(set(pops))})."
        )
    p = _check_compositions(proportions, atol, "proportions")
    X = get_input_matrix(sorted_bulk, layer=layer)
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    check_finite(X, "sorted_bulk expression")
    X = _library_normalise(X, target_sum)
    rng = np.random.default_rng(seed)
    members = {t: np.flatnonzero(pops == t) for t in cols}
    picks = np.stack([rng.choice(members[t], size=len(p)) for t in cols], axis=1)  # (S, T)
    out = np.einsum("st,stg->sg", p, X[picks])
    obs = pd.DataFrame({"source": "in_silico"}, index=proportions.index.astype(str))
    sim = AnnData(out.astype(np.float32), obs=obs, var=sorted_bulk.var.copy())
    sim.obsm[COMPOSITION_KEY] = pd.DataFrame(p, index=obs.index, columns=cols)
    return sim


def match_compositions(
    compositions: pd.DataFrame,
    populations,
    ancestors: Mapping[str, frozenset] | None = None,
    min_coverage: float = 0.0,
) -> tuple[pd.DataFrame, pd.Series]:
    """Restrict single-cell compositions to the sorted populations and renormalise.

    POPPY App. A.3.2: "for each training single-cell dataset with overlapping cell types with
    the sorted data, we construct a simulated bulk tumor with the same proportions for shared
    cell types". A cell type is shared when it is a population itself or, with ``ancestors``,
    when a population is one of its Cell Ontology ancestors (the nearest one, e.g. a CD4 T cell
    counts as "T cell" when only T cells were sorted): our extension, documented in
    ``docs/poppy.md``.

    Parameters
    ----------
    compositions
        ``(n_samples, n_types)`` proportions (rows sum to one), e.g. from
        :func:`cellpop.tl.cell_type_composition`.
    populations
        Labels of the sorted populations (e.g. CL IDs).
    ancestors
        Optional ``{cell type: its ancestors}`` (e.g. ``CellOntology.ancestors``); ``None``:
        exact matches only.
    min_coverage
        Samples whose shared proportion is ``<= min_coverage`` are dropped (default 0: any
        overlap keeps the sample, as in the paper).

    Returns
    -------
    proportions
        ``(n_kept, n_populations_used)`` renormalised proportions (rows sum to one).
    coverage
        ``(n_samples,)`` share of each sample's cells in shared types (before dropping).

    Raises
    ------
    ValueError
        If rows do not sum to one, or no sample shares a cell type with the populations.
    """
    _check_compositions(compositions, 1e-5, "compositions")
    pops = pd.Index(pd.unique(np.asarray(populations, dtype=str)))
    target = {}
    for t in compositions.columns.astype(str):
        if t in pops:
            target[t] = t
        elif ancestors is not None:
            up = [a for a in ancestors[t] if a in pops]
            if up:  # the nearest: the population with the most ancestors of its own
                target[t] = max(up, key=lambda a: (len(ancestors.get(a, ())), a))
    cols = compositions.columns.astype(str)
    mapped = pd.DataFrame(
        0.0, index=compositions.index, columns=pd.Index(sorted(set(target.values())))
    )
    for src, dst in target.items():
        mapped[dst] += compositions.iloc[:, list(cols).index(src)].to_numpy(dtype=np.float64)
    coverage = pd.Series(mapped.sum(1).to_numpy(), index=compositions.index, name="coverage")
    keep = coverage.to_numpy() > min_coverage
    if not keep.any():
        raise ValueError(
            f"no sample shares a cell type with the sorted populations {pops.tolist()[:10]} "
            f"(coverage > {min_coverage}); pass ancestors= to match through the Cell Ontology."
        )
    out = mapped.loc[keep]
    out = out.div(out.sum(1), axis=0)
    return out.loc[:, out.sum(0) > 0], coverage


def paired_bulk(
    adata: AnnData,
    sample_key: str,
    cell_type_key: str,
    layer: str | None = None,
    sorted_bulk: AnnData | None = None,
    sorted_cell_type_key: str = "cell_type_ontology_term_id",
    sorted_layer: str | None = None,
    ancestors: Mapping[str, frozenset] | None = None,
    seed: int = 0,
) -> AnnData:
    """POPPY's bulk training profiles of a single-cell dataset (§2.1, App. A.3).

    For every sample: its pseudobulk (counts of all its cells summed) with its composition, and,
    when ``sorted_bulk`` is given, an in-silico mixture of sorted populations with the sample's
    proportions of shared cell types (:func:`match_compositions`, :func:`simulate_bulk`).

    Parameters
    ----------
    adata
        Single-cell AnnData with counts. Not modified.
    sample_key, cell_type_key
        ``adata.obs`` columns of the sample and of the cell type (CL IDs for the ontology).
    layer
        Counts layer of ``adata`` (``None``: ``X``).
    sorted_bulk, sorted_cell_type_key, sorted_layer
        Sorted-population profiles, their population column and layer (optional).
    ancestors
        Passed to :func:`match_compositions`.
    seed
        Seed of :func:`simulate_bulk`.

    Returns
    -------
    AnnData ``(n_profiles, n_genes)``: pseudobulk rows first (named ``<sample>``), then
    in-silico rows (``<sample>_in_silico``), on the genes of ``adata`` (shared with
    ``sorted_bulk`` when given). ``obs[sample_key]`` = the paired single-cell sample,
    ``obs["source"]`` = ``"pseudobulk"`` or ``"in_silico"``, ``obsm["cell_type_fractions"]`` =
    the composition over the single-cell types (pseudobulk) or the populations (in silico).
    ``X`` is on the counts scale (pseudobulk: summed counts; in silico: 1e6 per profile).

    Raises
    ------
    KeyError, ValueError
        Missing keys, NaN labels, no gene or cell type shared with ``sorted_bulk``.
    """
    pb = pseudobulk(adata, sample_key, layer=layer, mode="sum")
    comp = cell_type_composition(adata, sample_key, cell_type_key)
    comp.columns = comp.columns.astype(str)
    genes = pd.Index(adata.var_names.astype(str))
    if sorted_bulk is not None:
        genes = genes.intersection(pd.Index(sorted_bulk.var_names.astype(str)), sort=False)
        if len(genes) == 0:
            raise ValueError("adata and sorted_bulk share no gene (var_names).")
    obs = pd.DataFrame({sample_key: pb.index.astype(str), "source": "pseudobulk"})
    obs.index = pb.index.astype(str)
    out = AnnData(pb[genes].to_numpy(dtype=np.float32), obs=obs, var=pd.DataFrame(index=genes))
    out.obsm[COMPOSITION_KEY] = comp.set_axis(obs.index, axis=0)
    if sorted_bulk is None:
        return out
    pops = sorted_bulk.obs[sorted_cell_type_key].astype(str)
    props, _ = match_compositions(comp, pops, ancestors=ancestors)
    props.index = props.index.astype(str) + "_in_silico"
    sim = simulate_bulk(
        sorted_bulk[:, genes], props, sorted_cell_type_key, layer=sorted_layer, seed=seed
    )
    sim.obs[sample_key] = [s[: -len("_in_silico")] for s in sim.obs_names]
    fr = pd.concat([out.obsm.pop(COMPOSITION_KEY), sim.obsm.pop(COMPOSITION_KEY)]).fillna(0.0)
    both = AnnData(
        np.concatenate([out.X, sim.X]),
        obs=pd.concat([out.obs, sim.obs[[sample_key, "source"]]]),
        var=pd.DataFrame(index=genes),
    )
    both.obsm[COMPOSITION_KEY] = fr.loc[both.obs_names]
    return both
