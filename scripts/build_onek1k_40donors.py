"""Rebuild onek1k_40donors.h5ad from scDesignPop's example_sce.rda.

Provenance of the original
    repository  chrisycd/scDesignPop
    commit      e05f1f9c873d413d70efd12d065e6cc53eded081 (2026-03-08)
    path        data/example_sce.rda (stored in raw/ as scDesignPop_example_sce.rda)
    git blob    54d36dabaa76fc01039d5fd095215ddaaf2c4a1e
    sha256      36f0d47be65fda1b79c0faa6f6120bd8ae54f9261ae6807dd80f958edefe9101
    data        Yazar S et al. (2022) Science 376:eabf3041; GEO GSE196830 (OneK1K)

The .rda holds a SingleCellExperiment: assay ``counts`` (dgCMatrix, 1,000 Ensembl IDs x 7,811
cells) and colData (indiv, cell_type, sex coded 1/2, age). The pure-Python ``rdata`` package
converts the S4 object into nested namespaces; the dgCMatrix slots (i, p, x, Dim, Dimnames)
give the sparse matrix directly.

Gene symbols are NOT in this .rda: the curated file took them from the OneK1K annotation in
another scDesignPop object (``example_sce_Bcell`` rowData) and the 10x Genomics GRCh38-3.0.0
gene table, neither of which is in raw/. Pass them with ``--gene-table`` (a CSV with columns
gene_ids, gene_symbols, gene_symbol_source, or an .h5ad whose ``var`` has them); without it,
``var_names`` are the Ensembl IDs.

Usage
    python scripts/build_onek1k_40donors.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out onek1k_40donors.h5ad [--gene-table genes.csv] \
        [--compare $CELLPOP_DATA_DIR/onek1k_40donors.h5ad]
"""

from __future__ import annotations

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import (
    BLOOD,
    CL_VERSION,
    HUMAN,
    categorical_obs,
    checked_input,
    compare,
    map_cell_types,
    mapping_table,
    parse_args,
    read_rda,
    write,
)

RAW = "scDesignPop_example_sce.rda"
SHA256 = "36f0d47be65fda1b79c0faa6f6120bd8ae54f9261ae6807dd80f958edefe9101"
OUT = "onek1k_40donors.h5ad"

MAPPING = [
    ("cd4nc", "CD4+ naive/central memory T cell (CD4 NC)", "CL:0000624",
     "CD4-positive, alpha-beta T cell", "closest ancestor (naive + central memory)"),
    ("bmem", "memory B cell (B Mem)", "CL:0000787", "memory B cell", "exact"),
    ("monoc", "classical monocyte (Mono C)", "CL:0000860", "classical monocyte", "exact"),
    ("mononc", "non-classical monocyte (Mono NC)", "CL:0000875", "non-classical monocyte",
     "exact"),
]  # fmt: skip
MAPPING_COLS = ["author_cell_type", "cell_type", "cell_type_ontology_term_id",
                "cell_type_ontology_label", "match"]  # fmt: skip
# 1 = male, 2 = female: PLINK convention used by the OneK1K authors (see uns['sex_coding'])
SEX = {1: ("male", "PATO:0000384"), 2: ("female", "PATO:0000383")}
UNMAPPED = "unmapped (Ensembl ID kept)"

UNS = {
    "title": "OneK1K PBMC (Yazar et al. 2022), 40-donor subset, 4 cell types, 1,000 genes",
    "units": "X and layers['counts']: raw UMI counts (integers stored as float32, CSR)",
    "barcode_batch_note": "suffix of the cell barcode; constant within a donor and shared by "
    "several donors, most likely the original OneK1K pool/capture index (not documented by the "
    "distributor)",
    "sex_coding": "source column 'sex' coded 1/2; 1 = male, 2 = female (OneK1K authors' "
    "convention: PLINK sex codes; factor(SEX, labels=c('Male','Female')) in "
    "powellgenomicslab/onek1k_phase1). Not verifiable from expression: no sex-chromosome genes "
    "in this gene subset.",
    "provenance": "Yazar S et al. (2022) Single-cell eQTL mapping identifies cell type-specific "
    "genetic control of autoimmune disease. Science 376:eabf3041. GEO GSE196830 (OneK1K cohort; "
    "also on CELLxGENE/HCA, CC BY 4.0). Obtained as 'example_sce' (data/example_sce.rda) from "
    "the public GitHub repository chrisycd/scDesignPop (HEAD commit "
    "e05f1f9c873d413d70efd12d065e6cc53eded081, 2026-03-08; file introduced in 2622d1d6, "
    "2025-12-10), git blob 54d36dabaa76fc01039d5fd095215ddaaf2c4a1e. Subset chosen by the "
    "scDesignPop authors (40 anonymised donors SAMP1-40, 4 of the 14 OneK1K cell types, 1,000 "
    "genes). Gene symbols added from the OneK1K gene annotation shipped in the same repository "
    "(example_sce_Bcell) or the 10x Genomics GRCh38-3.0.0 gene table. Licence: OneK1K data CC "
    "BY 4.0; scDesignPop MIT.",
    "cell_type_ontology_version": CL_VERSION,
    **HUMAN,
}


def gene_table(ids: np.ndarray, path: Path | None) -> pd.DataFrame:
    """var with gene_ids, gene_symbols, gene_symbol_source (symbols = IDs without a table)."""
    var = pd.DataFrame({"gene_ids": ids, "gene_symbols": ids, "gene_symbol_source": UNMAPPED})
    if path is not None:
        table = ad.read_h5ad(path).var if path.suffix == ".h5ad" else pd.read_csv(path)
        table = table.set_index("gene_ids")[["gene_symbols", "gene_symbol_source"]]
        known = np.isin(ids, table.index)
        var.loc[known, ["gene_symbols", "gene_symbol_source"]] = table.loc[ids[known]].to_numpy()
        print(f"gene symbols from {path}: {known.sum()} of {len(ids)} IDs", file=sys.stderr)
    if var["gene_symbols"].duplicated().any():
        raise SystemExit("gene symbols are not unique")
    return var.set_index(pd.Index(var["gene_symbols"].to_numpy()))


def _add_gene_table(parser) -> None:
    parser.add_argument(
        "--gene-table",
        type=Path,
        default=None,
        help="CSV (gene_ids, gene_symbols, gene_symbol_source) or .h5ad with those var columns",
    )


def main() -> None:
    args = parse_args(__doc__, RAW, OUT, extra=_add_gene_table)
    sce = read_rda(checked_input(args.raw_dir, RAW, SHA256))["example_sce"]
    counts = sce.assays.data.listData["counts"]  # dgCMatrix: genes x cells, CSC
    genes, cells = (np.asarray(d, dtype=str) for d in counts.Dimnames)
    X = sp.csc_matrix((counts.x, counts.i, counts.p), shape=tuple(counts.Dim)).T.tocsr()
    if not np.array_equal(X.data, np.round(X.data)):
        raise SystemExit("counts are not integer")
    X = X.astype(np.float32)

    cols = sce.colData.listData
    names = pd.Index(cells)
    donor = np.asarray(cols["indiv"], dtype=str)
    sex = np.asarray(cols["sex"]).astype(int)
    author = pd.Series(np.asarray(cols["cell_type"], dtype=str), index=names)
    cell_types = map_cell_types(author, pd.DataFrame(MAPPING, columns=MAPPING_COLS))
    obs = pd.DataFrame(
        {
            "donor_id": donor,
            "sample_id": donor,
            **{c: cell_types[c].to_numpy() for c in cell_types.columns},
            "sex": [SEX[s][0] for s in sex],
            "sex_ontology_term_id": [SEX[s][1] for s in sex],
            "age": np.asarray(cols["age"]).astype(np.int64),
            "barcode_batch": names.str.rsplit("-", n=1).str[1].to_numpy(),
            "disease": "normal",
            "disease_ontology_term_id": "PATO:0000461",
            **BLOOD,
        },
        index=names,
    )
    adata = ad.AnnData(
        X=X,
        obs=categorical_obs(obs),
        var=gene_table(genes, args.gene_table),
        layers={"counts": X.copy()},
    )
    adata.uns.update(UNS)
    adata.uns["cell_type_mapping"] = mapping_table(MAPPING, author)
    write(adata, args.out)
    compare(adata, args.compare)


if __name__ == "__main__":
    main()
