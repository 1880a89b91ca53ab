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

from __future__ import annotations

import warnings

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
    write,
)

RAW = "kang_se.rda"
SHA256 = "f2d6728424b2d40a88ee6c6c2a1f543e9dc798e98990c4f11b5a625470ffe285"
OUT = "kang2018_ctrl_8donors.h5ad"

MAPPING = [
    ("CD4 T cells", "CD4+ T cell", "CL:0000624", "CD4-positive, alpha-beta T cell", "exact"),
    ("CD14+ Monocytes", "CD14+ monocyte", "CL:0000860", "classical monocyte",
     "exact (CD14+ blood monocytes = classical monocytes)"),
    ("B cells", "B cell", "CL:0000236", "B cell", "exact"),
    ("CD8 T cells", "CD8+ T cell", "CL:0000625", "CD8-positive, alpha-beta T cell", "exact"),
    ("NK cells", "NK cell", "CL:0000623", "natural killer cell", "exact"),
    ("FCGR3A+ Monocytes", "FCGR3A+ (CD16+) monocyte", "CL:0000875", "non-classical monocyte",
     "exact (non-classical monocyte)"),
    ("Dendritic cells", "dendritic cell", "CL:0000451", "dendritic cell", "exact"),
    ("Megakaryocytes", "megakaryocyte", "CL:0000556", "megakaryocyte",
     "exact label match; in peripheral blood, clusters labelled megakaryocytes are usually "
     "platelets (CL:0000233)"),
]  # fmt: skip
MAPPING_COLS = ["author_cell_type", "cell_type", "cell_type_ontology_term_id",
                "cell_type_ontology_label", "match"]  # fmt: skip

UNS = {
    "title": "Kang et al. 2018 lupus PBMC, unstimulated (control) condition, 8 donors "
    "(gene-filtered subset)",
    "units": "X and layers['counts']: raw UMI counts (integers stored as float32, CSR)",
    "provenance": "Kang HM et al. (2018) Multiplexed droplet single-cell RNA-sequencing using "
    "natural genetic variation. Nat Biotechnol 36:89-94. GEO GSE96583. Obtained as the "
    "SummarizedExperiment 'kang_se' (data/kang_se.rda) from the public GitHub repository "
    "HelenaLC/muscat, commit d5acab66a2468bb51368f527b6cd617de8253a67 (2018-11-02; file later "
    "removed), git blob 5e985f6c5ba1262ea5ffa63c4d73fa072b369f2d. Control (unstimulated) cells "
    "of all 8 donors, 1,287 genes as subset by the muscat authors; cell-type labels "
    "(cluster_id) and t-SNE coordinates are the muscat authors'. Licence: GEO data public; "
    "muscat package GPL-3.",
    "cell_type_ontology_version": CL_VERSION,
    **HUMAN,
}


def read_se(path):
    """Convert kang_se.rda, skipping promises/closures and flattening environments."""
    import rdata
    from rdata.parser import RObjectType

    skip = (RObjectType.PROM, RObjectType.CLO, RObjectType.BCODE)

    class Converter(rdata.conversion.SimpleConverter):
        def _convert_next(self, data):
            obj = getattr(data, "object", data)
            kind = getattr(getattr(obj, "info", None), "type", None)
            if kind in skip:
                return None
            if kind == RObjectType.ENV:  # variables only; enclosures hold namespaces
                variables = {}
                for part in (obj.value.frame, obj.value.hash_table):
                    converted = super()._convert_next(part)
                    for item in converted if isinstance(converted, list) else [converted]:
                        if isinstance(item, dict):
                            variables.update(item)
                return variables
            return super()._convert_next(data)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown S4 classes
        return Converter().convert(rdata.parser.parse_file(path))["kang_se"]


def main() -> None:
    args = parse_args(__doc__, RAW, OUT)
    se = read_se(checked_input(args.raw_dir, RAW, SHA256))
    counts = vars(se.assays)[".xData"][".->data"].listData["counts"]  # genes x cells
    cells = pd.Index(np.asarray(se.colData.rownames, dtype=str))
    ids = np.asarray(se.NAMES, dtype=str)
    symbols = np.asarray(se.elementMetadata.listData["feature"], dtype=str)
    if list(np.asarray(counts.coords[counts.dims[1]].values, dtype=str)) != list(cells):
        raise SystemExit("assay columns are not in colData order")
    dense = np.asarray(counts.values).T
    if not np.array_equal(dense, np.round(dense)):
        raise SystemExit("counts are not integer")
    X = sp.csr_matrix(dense.astype(np.float32))

    cols = se.colData.listData
    donor = np.asarray(cols["sample_id"]).astype(str)
    author = pd.Series(np.asarray(cols["cluster_id"], dtype=str), index=cells)
    cell_types = map_cell_types(author, pd.DataFrame(MAPPING, columns=MAPPING_COLS))
    obs = pd.DataFrame(
        {
            "donor_id": donor,
            "sample_id": donor,
            **{c: cell_types[c].to_numpy() for c in cell_types.columns},
            "condition": "control (unstimulated)",
            "disease": "systemic lupus erythematosus",
            "disease_ontology_term_id": "MONDO:0007915",
            **BLOOD,
        },
        index=cells,
    )
    adata = ad.AnnData(
        X=X,
        obs=categorical_obs(obs),
        var=pd.DataFrame({"gene_ids": ids, "gene_symbols": symbols}, index=pd.Index(symbols)),
        layers={"counts": X.copy()},
    )
    tsne = np.column_stack([cols["tsne1"], cols["tsne2"]]).astype(np.float32)
    adata.obsm["X_tsne"] = tsne
    adata.uns.update(UNS)
    adata.uns["cell_type_mapping"] = mapping_table(MAPPING, author)
    write(adata, args.out)
    compare(adata, args.compare)


if __name__ == "__main__":
    main()
