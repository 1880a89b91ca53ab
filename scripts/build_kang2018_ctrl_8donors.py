"""Rebuild kang2018_ctrl_8donors.h5ad from muscat's kang_se.rda.

Provenance of the original
    repository  HelenaLC/muscat (file later removed from the repository)
    commit      d5acab66a2468bb51368f527b6cd617de8253a67 (2018-11-02)
    path        data/kang_se.rda
    git blob    5e985f6c5ba1262ea5ffa63c4d73fa072b369f2d
    sha256      f2d6728424b2d40a88ee6c6c2a1f543e9dc798e98990c4f11b5a625470ffe285
    data        Kang HM et al. (2018) Nat Biotechnol 36:89; GEO GSE96583

The .rda holds a 2018 SummarizedExperiment whose assays live in a reference-class object
(ShallowSimpleListAssays: an R environment with the field ``data`` as an active binding).
``rdata.read_rda`` stops on the R promises and closures in that object's class environment,
so this script parses the file with ``rdata.parser.parse_file`` and converts it with a
converter that drops promises, closures and bytecode (none hold data) and turns environments
into dicts of their variables (not their enclosures). The counts are then found in
``assays@.xData$.->data$counts`` (dense 1,287 x 12,261), labels and t-SNE in colData, gene
symbols in rowData ``feature`` and Ensembl IDs in ``NAMES``.

Usage
    python scripts/build_kang2018_ctrl_8donors.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out kang2018_ctrl_8donors.h5ad [--compare $CELLPOP_DATA_DIR/kang2018_ctrl_8donors.h5ad]
"""

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "kang2018_ctrl")
