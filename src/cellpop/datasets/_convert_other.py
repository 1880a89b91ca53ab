"""Converters of the bulk originals (R ``.rda``) and of the Cell Ontology originals.

Bulk converters return the curated AnnData; ontology converters return the OBO file's bytes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ._curation import (
    BLOOD,
    CL_VERSION,
    HUMAN,
    categorical_obs,
    map_cell_types,
    mapping_table,
    read_rda,
    read_table,
    require_integer,
)

HOEK_UNS = {
    "title": "Sorted immune-cell populations and PBMC, bulk RNA-seq, 2 donors x 7 populations, "
    "day 0 (GEO GSE64655 / SRA SRP051688; recount2)",
    "units": "X and layers['counts']: integer read counts (dense float32) from recount2, scaled "
    "to a common library size by recount2's standard count scaling and rounded; genes are "
    "symbols, counts of GENCODE genes sharing a symbol were summed",
    "donor_note": "the source labels samples only 'rep 1'/'rep 2'; sex-chromosome genes show "
    "that every rep 1 sample is male (RPS4Y1/DDX3Y/KDM5D high, XIST ~0) and every rep 2 sample "
    "female (XIST high), so rep 1 = donor1 and rep 2 = donor2 across populations; GEO donor "
    "codes are not in the source",
    "provenance": "Hoek KL et al. (2015) A cell-based systems biology assessment of human blood "
    "to monitor immune responses after influenza vaccination. PLoS One 10:e0118528. GEO GSE64655 "
    "(SRA SRP051688), day-0 samples; gene counts from recount2. Obtained as 'pbmc_bulk_matrix' "
    "(data/pbmc_bulk_matrix.rda) from the public GitHub repository rnabioco/clustifyr, commit "
    "6822cd61d05451dc89844f88daca165b1edc0ad2 (2018-06-21; file later removed), git blob "
    "02bcf09d523d856717eeb699002edabfe71e56eb (build script data-raw/pbmc_bulk_matrix.R in the "
    "same repository). Licence: GEO/recount2 data public; clustifyr MIT.",
}
# rep 1 = male donor1, rep 2 = female donor2 (assigned from sex-chromosome genes at curation)
HOEK_SEX = {1: ("male", "PATO:0000384"), 2: ("female", "PATO:0000383")}

CIBERSORTX_UNS = {
    "title": "CIBERSORTx whole-blood validation cohort: 12 healthy adults, bulk RNA-seq + "
    "measured leukocyte fractions",
    "provenance": "Newman AM et al. (2019) Determining cell type abundance and expression from "
    "bulk tissues with digital cytometry. Nat Biotechnol 37:773-782. GEO GSE127813 (whole blood, "
    "PAXgene; leukocyte composition by clinical flow cytometry (BD Multitest 6-color TBNK) and "
    "hematology analyzer differential). Obtained as 'GSE127813' (data/GSE127813.rda) from the "
    "public GitHub repository kalidouBA/DICEPRO (history), commit "
    "253e02262079850a359f40c33a8f21b7358223d0 (2023-11-06), git blob "
    "998f421efbe1d936842c0074ee91e67fa8590d8c. Licence: GEO data public; DICEPRO GPL (>= 3).",
    "units": "X: normalised expression as distributed (dense float32), every sample sums to "
    "exactly 1e6 (TPM/CPM scale; the distributing repository does not say which); NOT counts. "
    "58,581 gene symbols.",
    "cell_type_fractions_note": "hierarchical, not a partition: neutrophil + lymphocyte + "
    "monocyte = 1 (leukocyte differential); T_cell, B_cell, NK_cell are parts of lymphocyte and "
    "CD4/CD8 parts of T_cell, all expressed as fractions of leukocytes",
    "cell_type_note": "mixture sample; 'blood cell' (CL:0000081) used as the closest CL term for "
    "whole blood",
    "cell_type_ontology_version": CL_VERSION,
    **HUMAN,
}

CL_2026_HEADER = (
    "format-version: 1.2\n"
    "data-version: cl/releases/v2026-03-26\n"
    "remark: derived from cellxgene-ontology-guide 1.11.1 CL JSON; direct parents = ancestors "
    "at distance 1 (is_a and part_of not distinguished)\n"
    "ontology: cl\n"
)


def hoek2015_sorted_bulk(path: str | Path) -> ad.AnnData:
    """``hoek2015_sorted_pbmc_bulk.h5ad`` from clustifyr's ``pbmc_bulk_matrix.rda`` (one
    numeric matrix, 34,712 symbols x 14 columns "primary human <population> rep <1|2>")."""
    matrix = read_rda(path)["pbmc_bulk_matrix"]
    genes = [str(g) for g in matrix.coords[matrix.dims[0]].values]
    columns = pd.Index([str(c) for c in matrix.coords[matrix.dims[1]].values])
    X = np.asarray(matrix.values, dtype=np.float64).T
    require_integer(X, str(path))

    parts = columns.str.extract(r"^(?P<author>.+) rep (?P<rep>\d)$")
    author = pd.Series(parts["author"].to_numpy(), index=columns)
    mapping = read_table("cell_types_hoek2015.tsv")
    mapped = map_cell_types(author, mapping)
    stem = mapping.set_index("author_cell_type")["sample_stem"]
    replicate = parts["rep"].astype(np.int64).to_numpy()
    names = [f"{stem[a]}_rep{r}" for a, r in zip(author, replicate, strict=True)]
    obs = pd.DataFrame(
        {
            "donor_id": [f"donor{r}" for r in replicate],
            "sample_id": names,
            "replicate": replicate,
            "sex": [HOEK_SEX[r][0] for r in replicate],
            "sex_ontology_term_id": [HOEK_SEX[r][1] for r in replicate],
            "sample_type": np.where(
                author == "primary human PBMC", "PBMC", "sorted cell population"
            ),
            "cell_type": mapped["cell_type"].to_numpy(),
            "cell_type_ontology_term_id": mapped["cell_type_ontology_term_id"].to_numpy(),
            "cell_type_ontology_label": mapped["cell_type_ontology_label"].to_numpy(),
            "author_cell_type": author.to_numpy(),
            "time_point": "day 0 (before influenza vaccination)",
            "source_column": columns.to_numpy(),
            **BLOOD,
        },
        index=pd.Index(names),
    )
    X = X.astype(np.float32)
    adata = ad.AnnData(
        X=X,
        obs=categorical_obs(obs),
        var=pd.DataFrame({"gene_symbols": genes}, index=pd.Index(genes)),
        layers={"counts": X.copy()},
    )
    adata.uns.update(HOEK_UNS)
    adata.uns["cell_type_mapping"] = mapping_table(mapping, author)
    adata.uns["cell_type_ontology_version"] = CL_VERSION
    adata.uns.update(HUMAN)
    return adata


def cibersortx_wholeblood_bulk(path: str | Path) -> ad.AnnData:
    """``cibersortx_wholeblood_bulk.h5ad`` from DICEPRO's ``GSE127813.rda`` (a list of
    ``gene_expression``, values stored as strings, and ``ground_proportion``)."""
    source = read_rda(path)["GSE127813"]
    expr, props = source["gene_expression"], source["ground_proportion"]
    samples = pd.Index([str(s) for s in expr.columns])
    genes = pd.Index([str(g) for g in expr.index])
    X = expr.to_numpy(dtype=str).astype(np.float64).T  # values are stored as strings
    if not np.allclose(X.sum(axis=1), 1e6, rtol=1e-6):
        raise ValueError(f"{path}: samples do not sum to 1e6")

    info = read_table("fractions_cibersortx.tsv")
    props.index = [str(s) for s in props.index]
    fractions = props.loc[samples, list(info["source_column"])].astype(np.float64)
    fractions.columns = list(info["column"])
    obs = pd.DataFrame(
        {
            "donor_id": samples,
            "sample_id": samples,
            "sample_type": "whole blood",
            "cell_type": "whole blood",
            "cell_type_ontology_term_id": "CL:0000081",
            "cell_type_ontology_label": "blood cell",
            **BLOOD,
            "source_sample_name": samples,
        },
        index=samples,
    )
    for col in fractions.columns:
        obs[f"frac_{col}"] = fractions[col].to_numpy()
    adata = ad.AnnData(
        X=X.astype(np.float32),
        obs=categorical_obs(obs),
        var=pd.DataFrame({"gene_symbols": genes.to_numpy()}, index=genes),
    )
    adata.obsm["cell_type_fractions"] = fractions
    adata.uns.update(CIBERSORTX_UNS)
    adata.uns["cell_type_fractions_info"] = info
    return adata


def cell_ontology_2022(path: str | Path) -> bytes:
    """``cl-basic_2022-12-15.obo``: the official ``cl-basic.obo``, byte for byte."""
    return Path(path).read_bytes()


def _zstd_decompress(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        if shutil.which("zstd") is None:
            raise ImportError(
                "Decompressing the CL 2026-03-26 JSON (.json.zst) needs the 'zstandard' package "
                "(pip install zstandard) or the 'zstd' command."
            ) from None
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return zstandard.ZstdDecompressor().stream_reader(data).read()


def _obo_quote(text: str) -> str:
    """OBO quoted string: escape backslashes and quotes; newlines become spaces."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", " ")


def cl_json_to_obo(terms: dict) -> str:
    """OBO 1.2 text from cellxgene-ontology-guide's term dictionary.

    Per term, in dictionary order: ``id``, ``name`` (``label``), ``def`` (``description``),
    exact ``synonym`` lines, ``is_obsolete`` (``deprecated``), ``replaced_by`` and one ``is_a``
    line per ancestor at distance 1 (so is_a and part_of parents are not distinguished).
    """
    lines = [CL_2026_HEADER]
    for term_id, term in terms.items():
        lines.append("[Term]")
        lines.append(f"id: {term_id}")
        if term.get("label"):
            lines.append(f"name: {term['label']}")
        if term.get("description"):
            lines.append(f'def: "{_obo_quote(term["description"])}" []')
        for synonym in term.get("synonyms", []):
            lines.append(f'synonym: "{_obo_quote(synonym)}" EXACT []')
        if term.get("deprecated"):
            lines.append("is_obsolete: true")
        if term.get("replaced_by"):
            lines.append(f"replaced_by: {term['replaced_by']}")
        for parent, distance in term.get("ancestors", {}).items():
            if distance == 1:
                lines.append(f"is_a: {parent}")
        lines.append("")
    return "\n".join(lines)


def cell_ontology_2026(path: str | Path) -> bytes:
    """``cl_2026-03-26.obo`` from ``CL-ontology-v2026-03-26.json.zst`` (cellxgene-ontology-guide).

    A ``.json`` path (already decompressed) is read as is.
    """
    data = Path(path).read_bytes()
    if str(path).endswith(".zst"):
        data = _zstd_decompress(data)
    return cl_json_to_obo(json.loads(data)).encode("utf-8")
