"""Rebuild hoek2015_sorted_pbmc_bulk.h5ad from clustifyr's pbmc_bulk_matrix.rda.

Provenance of the original
    repository  rnabioco/clustifyr (file later removed from the repository)
    commit      6822cd61d05451dc89844f88daca165b1edc0ad2 (2018-06-21)
    path        data/pbmc_bulk_matrix.rda
    git blob    02bcf09d523d856717eeb699002edabfe71e56eb
    sha256      2e7c4e6fddfdc0624534bd7ce6347cafeb133672bf77aa63effa274477ef972a
    data        Hoek KL et al. (2015) PLoS One 10:e0118528; GEO GSE64655 (SRA SRP051688),
                day-0 samples, gene counts from recount2 (clustifyr data-raw/pbmc_bulk_matrix.R)

The .rda holds one numeric matrix (34,712 gene symbols x 14 columns named
"primary human <population> rep <1|2>"); it is read with the pure-Python ``rdata`` package.

Usage
    python scripts/build_hoek2015_sorted_pbmc_bulk.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out hoek2015_sorted_pbmc_bulk.h5ad [--compare $CELLPOP_DATA_DIR/hoek2015_sorted_pbmc_bulk.h5ad]
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
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

RAW = "pbmc_bulk_matrix.rda"
SHA256 = "2e7c4e6fddfdc0624534bd7ce6347cafeb133672bf77aa63effa274477ef972a"
OUT = "hoek2015_sorted_pbmc_bulk.h5ad"

# GEO source name -> (cell_type, CL ID, CL 2022-12-15 name, match, sample-name stem)
MAPPING = [
    ("primary human B cells", "B cell", "CL:0000236", "B cell", "exact"),
    ("primary human myeloid DC", "myeloid dendritic cell", "CL:0000782",
     "myeloid dendritic cell", "exact"),
    ("primary human monocytes", "monocyte", "CL:0000576", "monocyte", "exact"),
    ("primary human neutrophils", "neutrophil", "CL:0000775", "neutrophil", "exact"),
    ("primary human NK cells", "NK cell", "CL:0000623", "natural killer cell", "exact"),
    ("primary human T cells", "T cell", "CL:0000084", "T cell", "exact"),
    ("primary human PBMC", "PBMC", "CL:2000001", "peripheral blood mononuclear cell",
     "exact (unsorted PBMC)"),
]  # fmt: skip
STEM = {
    "B cell": "B_cell", "myeloid dendritic cell": "myeloid_dendritic_cell",
    "monocyte": "monocyte", "neutrophil": "neutrophil", "NK cell": "NK_cell",
    "T cell": "T_cell", "PBMC": "PBMC",
}  # fmt: skip

PROVENANCE = (
    "Hoek KL et al. (2015) A cell-based systems biology assessment of human blood to monitor "
    "immune responses after influenza vaccination. PLoS One 10:e0118528. GEO GSE64655 (SRA "
    "SRP051688), day-0 samples; gene counts from recount2. Obtained as 'pbmc_bulk_matrix' "
    "(data/pbmc_bulk_matrix.rda) from the public GitHub repository rnabioco/clustifyr, commit "
    "6822cd61d05451dc89844f88daca165b1edc0ad2 (2018-06-21; file later removed), git blob "
    "02bcf09d523d856717eeb699002edabfe71e56eb (build script data-raw/pbmc_bulk_matrix.R in the "
    "same repository). Licence: GEO/recount2 data public; clustifyr MIT."
)
UNS = {
    "title": "Sorted immune-cell populations and PBMC, bulk RNA-seq, 2 donors x 7 populations, "
    "day 0 (GEO GSE64655 / SRA SRP051688; recount2)",
    "units": "X and layers['counts']: integer read counts (dense float32) from recount2, scaled "
    "to a common library size by recount2's standard count scaling and rounded; genes are "
    "symbols, counts of GENCODE genes sharing a symbol were summed",
    "donor_note": "the source labels samples only 'rep 1'/'rep 2'; sex-chromosome genes show "
    "that every rep 1 sample is male (RPS4Y1/DDX3Y/KDM5D high, XIST ~0) and every rep 2 sample "
    "female (XIST high), so rep 1 = donor1 and rep 2 = donor2 across populations; GEO donor "
    "codes are not in the source",
}
SEX = {1: ("male", "PATO:0000384"), 2: ("female", "PATO:0000383")}


def main() -> None:
    args = parse_args(__doc__, RAW, OUT)
    matrix = read_rda(checked_input(args.raw_dir, RAW, SHA256))["pbmc_bulk_matrix"]
    genes = [str(g) for g in matrix.coords[matrix.dims[0]].values]
    columns = pd.Index([str(c) for c in matrix.coords[matrix.dims[1]].values])
    X = np.asarray(matrix.values, dtype=np.float64).T
    if not np.array_equal(X, np.round(X)):
        raise SystemExit("source matrix is not integer")

    parts = columns.str.extract(r"^(?P<author>.+) rep (?P<rep>\d)$")
    author = pd.Series(parts["author"].to_numpy(), index=columns)
    obs = map_cell_types(author, pd.DataFrame(MAPPING, columns=[
        "author_cell_type", "cell_type", "cell_type_ontology_term_id",
        "cell_type_ontology_label", "match"]))  # fmt: skip
    replicate = parts["rep"].astype(np.int64).to_numpy()
    names = [f"{STEM[ct]}_rep{r}" for ct, r in zip(obs["cell_type"], replicate, strict=True)]
    obs = pd.DataFrame(
        {
            "donor_id": [f"donor{r}" for r in replicate],
            "sample_id": names,
            "replicate": replicate,
            "sex": [SEX[r][0] for r in replicate],
            "sex_ontology_term_id": [SEX[r][1] for r in replicate],
            "sample_type": np.where(author == "primary human PBMC", "PBMC",
                                    "sorted cell population"),
            "cell_type": obs["cell_type"].to_numpy(),
            "cell_type_ontology_term_id": obs["cell_type_ontology_term_id"].to_numpy(),
            "cell_type_ontology_label": obs["cell_type_ontology_label"].to_numpy(),
            "author_cell_type": author.to_numpy(),
            "time_point": "day 0 (before influenza vaccination)",
            "source_column": columns.to_numpy(),
            **BLOOD,
        },
        index=pd.Index(names),
    )  # fmt: skip
    X = X.astype(np.float32)
    adata = ad.AnnData(
        X=X,
        obs=categorical_obs(obs),
        var=pd.DataFrame({"gene_symbols": genes}, index=pd.Index(genes)),
        layers={"counts": X.copy()},
    )
    adata.uns.update(UNS)
    adata.uns["provenance"] = PROVENANCE
    adata.uns["cell_type_mapping"] = mapping_table(MAPPING, author)
    adata.uns["cell_type_ontology_version"] = CL_VERSION
    adata.uns.update(HUMAN)
    write(adata, args.out)
    compare(adata, args.compare)


if __name__ == "__main__":
    main()
