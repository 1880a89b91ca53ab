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

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "hoek2015_sorted_bulk")
