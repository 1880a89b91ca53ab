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
gene table. That table ships with the package
(``src/cellpop/datasets/_data/onek1k_gene_symbols.tsv``, provenance in its header).

Usage
    python scripts/build_onek1k_40donors.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out onek1k_40donors.h5ad [--compare $CELLPOP_DATA_DIR/onek1k_40donors.h5ad]
"""

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "onek1k")
