"""Converters of the small POPPY demo files embedded in the package (built by
``scripts/build_demo_data.py`` from the same public originals as the full curated files)."""

from __future__ import annotations

import re
from pathlib import Path

import anndata as ad

from ._convert_other import hoek2015_sorted_bulk
from ._convert_sc import onek1k, stratified_subset
from ._curation import package_data, read_table

#: Cells kept in the OneK1K demo subset (stratified like the Kang subset) and their seed.
ONEK1K_DEMO_N_CELLS = 1600
ONEK1K_DEMO_SEED = 0
#: Curation tables whose CL IDs (and all their is_a ancestors) the demo ontology keeps.
DEMO_ONTOLOGY_TABLES = (
    "cell_types_kang2018.tsv",
    "cell_types_onek1k.tsv",
    "cell_types_stephenson2021.tsv",
    "cell_types_hoek2015.tsv",
    "fractions_cibersortx.tsv",
)
_ROOT = "CL:0000000"


def _kang_demo_genes() -> list[str]:
    """Genes of the embedded Kang demo subset (the genes the POPPY demo can use)."""
    return list(ad.read_h5ad(package_data("kang2018_ctrl_demo.h5ad"), backed="r").var_names)


def onek1k_demo(path: str | Path) -> ad.AnnData:
    """``onek1k_demo.h5ad``: :func:`onek1k` restricted to the genes of the embedded Kang demo
    subset, then :func:`stratified_subset` (1,600 cells, donor x cell type, seed 0); ``X``
    only (the loader restores ``layers['counts']``)."""
    full = onek1k(path)
    genes = [g for g in full.var_names if g in set(_kang_demo_genes())]
    sub = stratified_subset(full[:, genes].copy(), ONEK1K_DEMO_N_CELLS, 3, ONEK1K_DEMO_SEED)
    del sub.layers["counts"]
    sub.uns["subset"] += (
        f" Genes: the {len(genes)} of the 1,000 that the embedded Kang 2018 demo subset also "
        "has (kang2018_ctrl_demo), in the original order."
    )
    sub.uns["units"] = (
        "X: raw UMI counts (integers stored as float32, CSR); the file stores X only, "
        "cellpop.datasets.onek1k_demo() adds layers['counts'] as a copy of X"
    )
    return sub


def hoek2015_sorted_bulk_demo(path: str | Path) -> ad.AnnData:
    """``hoek2015_sorted_bulk_demo.h5ad``: all 14 samples of :func:`hoek2015_sorted_bulk` on
    the genes of the embedded Kang demo subset that Hoek 2015 measures."""
    full = hoek2015_sorted_bulk(path)
    genes = [g for g in _kang_demo_genes() if g in set(full.var_names)]
    sub = full[:, genes].copy()
    sub.uns["title"] = f"{full.uns['title']}: demo gene subset"
    sub.uns["subset"] = (
        f"all {sub.n_obs} samples; the {len(genes)} genes of the embedded Kang 2018 demo subset "
        f"(kang2018_ctrl_demo) found among the {full.n_vars:,} of the original, in Kang's order. "
        "Built by cellpop from the public original."
    )
    return sub


def _obo_stanzas(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header lines and ``{term id: stanza lines}`` of the ``[Term]`` stanzas of an OBO text."""
    blocks = re.split(r"\n\s*\n", text)
    header, terms = blocks[0].splitlines(), {}
    for block in blocks[1:]:
        lines = block.strip().splitlines()
        if lines and lines[0] == "[Term]":
            ids = [ln[4:].strip() for ln in lines if ln.startswith("id: ")]
            if ids:
                terms[ids[0]] = lines
    return header, terms


def _parents(lines: list[str]) -> list[str]:
    return [ln[6:].split()[0] for ln in lines if ln.startswith("is_a: ")]


def cell_ontology_demo(path: str | Path) -> bytes:
    """``cl-basic_2022-12-15_demo.obo``: the terms of the cellpop curation tables and all their
    ``is_a`` ancestors, from the official ``cl-basic.obo`` of CL 2022-12-15.

    Each kept ``[Term]`` stanza keeps its ``id``, ``name``, ``def`` and ``is_a`` lines (every
    ``is_a`` target is kept, so pruning and hop distances equal those of the full file).
    """
    text = Path(path).read_text(encoding="utf-8")
    header, terms = _obo_stanzas(text)
    seeds = {_ROOT}
    for table in DEMO_ONTOLOGY_TABLES:
        seeds.update(read_table(table)["cell_type_ontology_term_id"])
    missing = sorted(seeds - set(terms))
    if missing:
        raise ValueError(f"{path}: CL IDs of the curation tables not in the ontology: {missing}")
    keep, stack = set(), list(seeds)
    while stack:
        term = stack.pop()
        if term not in keep:
            keep.add(term)
            stack.extend(_parents(terms[term]))
    keys = ("format-version:", "data-version:", "ontology:")
    out = [ln for ln in header if ln.startswith(keys)]
    out.append(
        f"remark: cellpop demo subset: {len(keep)} terms (the CL IDs of the cellpop curation "
        "tables and all their is_a ancestors) with id, name, def and is_a only. Source: Cell "
        "Ontology release 2022-12-15, cl-basic.obo (obophenotype/cell-ontology), CC BY 4.0."
    )
    for term in sorted(keep):
        lines = [ln for ln in terms[term] if ln.startswith(("[Term]", "id: ", "name: ", "def: "))]
        lines += [ln for ln in terms[term] if ln.startswith("is_a: ")]
        out += ["", *lines]
    return ("\n".join(out) + "\n").encode("utf-8")
