"""Rebuild cibersortx_wholeblood_bulk.h5ad from DICEPRO's GSE127813.rda.

Provenance of the original
    repository  kalidouBA/DICEPRO
    commit      253e02262079850a359f40c33a8f21b7358223d0 (2023-11-06)
    path        data/GSE127813.rda
    git blob    998f421efbe1d936842c0074ee91e67fa8590d8c
    sha256      d071a07f8bb40756ce596776ee3e2bfd3938808bc0a657a962ef00edba477193
    data        Newman AM et al. (2019) Nat Biotechnol 37:773 (CIBERSORTx), GEO GSE127813

The .rda holds a list with ``gene_expression`` (data.frame, 58,581 gene symbols x 12 samples;
values stored as character strings) and ``ground_proportion`` (data.frame, 12 samples x 8
measured leukocyte fractions). Read with the pure-Python ``rdata`` package (~15 s).

Usage
    python scripts/build_cibersortx_wholeblood_bulk.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out cibersortx_wholeblood_bulk.h5ad [--compare $CELLPOP_DATA_DIR/cibersortx_wholeblood_bulk.h5ad]
"""

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "cibersortx_wholeblood_bulk")
