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
    parse_args,
    read_rda,
    write,
)

RAW = "GSE127813.rda"
SHA256 = "d071a07f8bb40756ce596776ee3e2bfd3938808bc0a657a962ef00edba477193"
OUT = "cibersortx_wholeblood_bulk.h5ad"

_DIFF = "fraction of leukocytes (hematology differential)"
# column, source column, CL ID, CL 2022-12-15 name, note
FRACTIONS = [
    ("neutrophil", "Neutrophils", "CL:0000775", "neutrophil",
     _DIFF + "; neutrophil+lymphocyte+monocyte = 1"),
    ("lymphocyte", "Lymphocytes", "CL:0000542", "lymphocyte", _DIFF),
    ("monocyte", "Monocytes", "CL:0000576", "monocyte", _DIFF),
    ("T_cell", "T.cells", "CL:0000084", "T cell",
     "fraction of leukocytes (flow cytometry TBNK panel); subset of lymphocyte"),
    ("CD8_T_cell", "T.cells.CD8", "CL:0000625", "CD8-positive, alpha-beta T cell",
     "fraction of leukocytes; subset of T_cell"),
    ("CD4_T_cell", "T.cells.CD4", "CL:0000624", "CD4-positive, alpha-beta T cell",
     "fraction of leukocytes; subset of T_cell"),
    ("B_cell", "B.cells", "CL:0000236", "B cell", "fraction of leukocytes; subset of lymphocyte"),
    ("NK_cell", "NK.cells", "CL:0000623", "natural killer cell",
     "fraction of leukocytes; subset of lymphocyte"),
]  # fmt: skip

UNS = {
    "title": "CIBERSORTx whole-blood validation cohort: 12 healthy adults, bulk RNA-seq + "
    "measured leukocyte fractions",
    "provenance": "Newman AM et al. (2019) Determining cell type abundance and expression from "
    "bulk tissues with digital cytometry. Nat Biotechnol 37:773-782. GEO GSE127813 (whole blood, "
    "PAXgene; leukocyte composition by clinical flow cytometry (BD Multitest 6-color TBNK) and "
    "hematology analyzer differential). Obtained as 'GSE127813' (data/GSE127813.rda) from the "
    "public GitHub repository kalidouBA/DICEPRO (history), commit "
    "253e02262079850a359f40c33a8f21b7358223d0 (2023-11-06), git blob "
    "998f421efbe1d936842c0074ee91e67fa8590d8c. Licence: GEO data public; DICEPRO GPL (>= 3).",
    "units": "X: normalised expression as distributed (dense float32), every sample sums to "
    "exactly 1e6 (TPM/CPM scale; the distributing repository does not say which); NOT counts. "
    "58,581 gene symbols.",
    "cell_type_fractions_note": "hierarchical, not a partition: neutrophil + lymphocyte + "
    "monocyte = 1 (leukocyte differential); T_cell, B_cell, NK_cell are parts of lymphocyte and "
    "CD4/CD8 parts of T_cell, all expressed as fractions of leukocytes",
    "cell_type_note": "mixture sample; 'blood cell' (CL:0000081) used as the closest CL term for "
    "whole blood",
    "cell_type_ontology_version": CL_VERSION,
    **HUMAN,
}


def main() -> None:
    args = parse_args(__doc__, RAW, OUT)
    source = read_rda(checked_input(args.raw_dir, RAW, SHA256))["GSE127813"]
    expr, props = source["gene_expression"], source["ground_proportion"]
    samples = pd.Index([str(s) for s in expr.columns])
    genes = pd.Index([str(g) for g in expr.index])
    X = expr.to_numpy(dtype=str).astype(np.float64).T  # values are stored as strings
    if not np.allclose(X.sum(axis=1), 1e6, rtol=1e-6):
        raise SystemExit("samples do not sum to 1e6")

    info = pd.DataFrame(FRACTIONS, columns=["column", "source_column",
                        "cell_type_ontology_term_id", "cell_type_ontology_label", "note"])  # fmt: skip
    props.index = [str(s) for s in props.index]
    fractions = props.loc[samples, list(info["source_column"])].astype(np.float64)
    fractions.columns = list(info["column"])
    obs = pd.DataFrame(
        {
            "donor_id": samples,
            "sample_id": samples,
            "sample_type": "whole blood",
            "cell_type": "whole blood",
            "cell_type_ontology_term_id": "CL:0000081",
            "cell_type_ontology_label": "blood cell",
            **BLOOD,
            "source_sample_name": samples,
        },
        index=samples,
    )
    for col in fractions.columns:
        obs[f"frac_{col}"] = fractions[col].to_numpy()
    adata = ad.AnnData(
        X=X.astype(np.float32),
        obs=categorical_obs(obs),
        var=pd.DataFrame({"gene_symbols": genes.to_numpy()}, index=genes),
    )
    adata.obsm["cell_type_fractions"] = fractions
    adata.uns.update(UNS)
    adata.uns["cell_type_fractions_info"] = info
    write(adata, args.out)
    compare(adata, args.compare)


if __name__ == "__main__":
    main()
