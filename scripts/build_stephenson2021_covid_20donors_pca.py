"""Rebuild stephenson2021_covid_20donors_pca.h5ad from GloScope's example_SCE.rda.

Provenance of the original
    repository  epurdom/GloScope
    commit      458539a814210fafed1c5b0b800a06af9b3edcaf (2025-11-17)
    path        data/example_SCE.rda (stored in raw/ as GloScope_example_SCE.rda)
    git blob    c2fe3fcc69a7ce5b38977976f24595a917c45a8b
    sha256      aa05395fba9c6bde302ff6a77961f0042e5615d2cf24f7215bf2c51b6d95adf9
    data        Stephenson E et al. (2021) Nat Med 27:904; ArrayExpress E-MTAB-10026

The .rda holds a SingleCellExperiment without assays: colData (sample_id, phenotype,
cluster_id) and reducedDims$PCA (10,000 x 50). The pure-Python ``rdata`` package converts the
S4 object into nested namespaces, which is enough to reach both.

Usage
    python scripts/build_stephenson2021_covid_20donors_pca.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out stephenson2021_covid_20donors_pca.h5ad \
        [--compare $CELLPOP_DATA_DIR/stephenson2021_covid_20donors_pca.h5ad]
"""

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "stephenson2021_covid")
