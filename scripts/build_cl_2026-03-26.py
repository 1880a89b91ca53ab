"""Rebuild cl_2026-03-26.obo (derived OBO) from the CL JSON of cellxgene-ontology-guide.

Provenance of the original
    repository  chanzuckerberg/cellxgene-ontology-guide
    commit      c497943397ee4e0959d5fe391f42e44be1439fb7 (2026-05-22)
    path        ontology-assets/CL-ontology-v2026-03-26.json.zst
    git blob    c7cb91ce02105bab33354bb3637d81df5e3c4acb
    sha256      ee9b84956ca31195a65f63b6e67e993d58fd3f5fb577a61536dfd122fba06dde
    same bytes  cellxgene_ontology_guide/data/CL-ontology-v2026-03-26.json.zst in the PyPI wheel
                cellxgene_ontology_guide-1.11.1-py3-none-any.whl (the file was first taken
                from there; sha256 checked equal)
    data        Cell Ontology release v2026-03-26 (CC BY 4.0)

The .json.zst is not in the project's raw/ folder: download it from the raw URL
https://raw.githubusercontent.com/chanzuckerberg/cellxgene-ontology-guide/<commit>/<path>
(what the package does), or ``pip download --no-deps cellxgene-ontology-guide==1.11.1`` and
unzip it from the wheel, into ``--raw-dir``. It is decompressed with the ``zstandard`` module
if installed, else the ``zstd`` command.

Conversion: per term (JSON order) id, name (label), def (description), exact synonyms,
``is_obsolete`` and ``replaced_by``; ``is_a`` = the ancestors at distance 1, so is_a and
part_of parents are NOT distinguished and no other relationship is kept.

Usage
    python scripts/build_cl_2026-03-26.py --raw-dir DIR --out cl_2026-03-26.obo \
        [--compare $CELLPOP_DATA_DIR/cl_2026-03-26.obo]
"""

from _common import rebuild

if __name__ == "__main__":
    rebuild(__doc__, "cell_ontology_2026-03-26")
