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

RAW = "GloScope_example_SCE.rda"
SHA256 = "aa05395fba9c6bde302ff6a77961f0042e5615d2cf24f7215bf2c51b6d95adf9"
OUT = "stephenson2021_covid_20donors_pca.h5ad"

# author label (initial_clustering) -> cell_type, CL ID, CL 2022-12-15 name, match
MAPPING = [
    ("CD4", "CD4+ T cell", "CL:0000624", "CD4-positive, alpha-beta T cell", "exact"),
    ("CD8", "CD8+ T cell", "CL:0000625", "CD8-positive, alpha-beta T cell", "exact"),
    ("B_cell", "B cell", "CL:0000236", "B cell", "exact"),
    ("NK_16hi", "CD16-high NK cell", "CL:0000939",
     "CD16-positive, CD56-dim natural killer cell, human", "exact (CD16+ CD56dim NK)"),
    ("Platelets", "platelet", "CL:0000233", "platelet", "exact"),
    ("CD14", "CD14+ monocyte", "CL:0000860", "classical monocyte", "exact (classical monocyte)"),
    ("Treg", "regulatory T cell", "CL:0000815", "regulatory T cell", "exact"),
    ("RBC", "erythrocyte", "CL:0000232", "erythrocyte", "exact"),
    ("MAIT", "MAIT cell", "CL:0000940", "mucosal invariant T cell", "exact"),
    ("NK_56hi", "CD56-high NK cell", "CL:0000938",
     "CD16-negative, CD56-bright natural killer cell, human", "exact (CD16- CD56bright NK)"),
    ("gdT", "gamma-delta T cell", "CL:0000798", "gamma-delta T cell", "exact"),
    ("DCs", "dendritic cell", "CL:0000451", "dendritic cell",
     "exact (non-plasmacytoid DCs; pDC separate)"),
    ("Plasmablast", "plasmablast", "CL:0000980", "plasmablast", "exact"),
    ("Lymph_prolif", "proliferating lymphocyte", "CL:0000542", "lymphocyte",
     "closest ancestor (no 'proliferating' term)"),
    ("CD16", "CD16+ monocyte", "CL:0000875", "non-classical monocyte",
     "exact (non-classical monocyte)"),
    ("pDC", "plasmacytoid dendritic cell", "CL:0000784", "plasmacytoid dendritic cell", "exact"),
    ("HSC", "hematopoietic stem cell (HSC)", "CL:0000037", "hematopoietic stem cell",
     "exact label match (circulating HSPC)"),
    ("Mono_prolif", "proliferating monocyte", "CL:0000576", "monocyte",
     "closest ancestor (no 'proliferating' term)"),
]  # fmt: skip
MAPPING_COLS = ["author_cell_type", "cell_type", "cell_type_ontology_term_id",
                "cell_type_ontology_label", "match"]  # fmt: skip
DISEASE = {"Covid": ("COVID-19", "MONDO:0100096"), "Healthy": ("normal", "PATO:0000461")}

UNS = {
    "title": "Stephenson et al. 2021 COVID-19 PBMC, 20 donors x 500 cells, authors' 50 principal "
    "components only",
    "units": "no expression matrix (X has 0 genes); obsm['X_pca'] holds the first 50 principal "
    "components provided by the original authors",
    "barcode_batch_note": "prefix of the cell name (BGCV01...BGCV15): 10x library/pool "
    "identifier; donors were multiplexed, so one library holds 1-4 donors and some donors span "
    "2 libraries",
    "provenance": "Stephenson E et al. (2021) Single-cell multi-omics analysis of the immune "
    "response in COVID-19. Nat Med 27:904-916. ArrayExpress E-MTAB-10026 (also on CELLxGENE, CC "
    "BY 4.0). Obtained as 'example_SCE' (data/example_SCE.rda) from the public GitHub repository "
    "epurdom/GloScope, HEAD commit 458539a814210fafed1c5b0b800a06af9b3edcaf (2025-11-17), git "
    "blob c2fe3fcc69a7ce5b38977976f24595a917c45a8b: 20 donors (16 COVID-19, 4 healthy), 500 "
    "randomly sampled cells each, PCA embedding and 'initial_clustering' labels from the "
    "original authors. Licence: data CC BY 4.0; GloScope Artistic-2.0.",
    "cell_type_ontology_version": CL_VERSION,
    **HUMAN,
}


def main() -> None:
    args = parse_args(__doc__, RAW, OUT)
    sce = read_rda(checked_input(args.raw_dir, RAW, SHA256))["example_SCE"]
    names = pd.Index([str(n) for n in sce.colData.rownames])
    cols = sce.colData.listData
    pca = sce.int_colData.listData["reducedDims"].listData["PCA"]
    if [str(n) for n in pca.coords[pca.dims[0]].values] != list(names):
        raise SystemExit("PCA rows are not in colData order")

    donor = np.asarray(cols["sample_id"], dtype=str)
    phenotype = np.asarray(cols["phenotype"], dtype=str)
    unknown = set(phenotype) - set(DISEASE)
    if unknown:
        raise SystemExit(f"phenotypes without a disease mapping: {sorted(unknown)}")
    author = pd.Series(np.asarray(cols["cluster_id"], dtype=str), index=names)
    cell_types = map_cell_types(author, pd.DataFrame(MAPPING, columns=MAPPING_COLS))
    obs = pd.DataFrame(
        {
            "donor_id": donor,
            "sample_id": donor,
            **{c: cell_types[c].to_numpy() for c in cell_types.columns},
            "disease": [DISEASE[p][0] for p in phenotype],
            "disease_ontology_term_id": [DISEASE[p][1] for p in phenotype],
            "author_phenotype": phenotype,
            "barcode_batch": names.str.split("_").str[0].to_numpy(),
            **BLOOD,
        },
        index=names,
    )
    adata = ad.AnnData(obs=categorical_obs(obs))
    adata.obsm["X_pca"] = np.asarray(pca.values, dtype=np.float32)
    adata.uns.update(UNS)
    adata.uns["cell_type_mapping"] = mapping_table(MAPPING, author)
    write(adata, args.out)
    compare(adata, args.compare)


if __name__ == "__main__":
    main()
