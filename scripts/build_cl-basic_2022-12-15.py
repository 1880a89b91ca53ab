"""Rebuild cl-basic_2022-12-15.obo: a checked copy of the official cl-basic.obo.

Provenance of the original
    repository  obophenotype/cell-ontology
    commit      a80b777466ddd784c567ed91b42c07f14ee4c732 (merge of the release-2022-12-15 PR)
    path        cl-basic.obo
    git blob    a1a1b09ef6c60dd6eda54238604f4dde32265868
    sha256      4427812138ebe9c7772bf1688f813a2e0097a4323e1b34604840800ab5e19e97
    data        Cell Ontology release 2022-12-15, basic edition (OBO 1.2), CC BY 4.0

The curated file is the original, byte for byte; this script checks the sha256 and copies it.

Usage
    python scripts/build_cl-basic_2022-12-15.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out cl-basic_2022-12-15.obo [--compare $CELLPOP_DATA_DIR/cl-basic_2022-12-15.obo]
"""

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "cell_ontology_2022-12-15")
