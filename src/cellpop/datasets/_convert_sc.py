"""Converters of the single-cell originals (R ``.rda`` objects) into the curated AnnData files.

Each function takes the path of a hash-checked original and returns the curated AnnData; the
cell-type mappings and the OneK1K gene symbols come from the tables in ``_data/``. They were
moved here from the rebuild scripts in ``scripts/``, which now call them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._curation import (
    BLOOD,
    CL_VERSION,
    HUMAN,
    categorical_obs,
    map_cell_types,
    mapping_table,
    read_rda,
    read_table,
    require_integer,
)

KANG_UNS = {
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

ONEK1K_UNS = {
    "title": "OneK1K PBMC (Yazar et al. 2022), 40-donor subset, 4 cell types, 1,000 genes",
    "units": "X and layers['counts']: raw UMI counts (integers stored as float32, CSR)",
    "barcode_batch_note": "suffix of the cell barcode; constant within a donor and shared by "
    "several donors, most likely the original OneK1K pool/capture index (not documented by the "
    "distributor)",
    "sex_coding": "source column 'sex' coded 1/2; 1 = male, 2 = female (OneK1K authors' "
    "convention: PLINK sex codes; factor(SEX, labels=c('Male','Female')) in "
    "powellgenomicslab/onek1k_phase1). Not verifiable from expression: no sex-chromosome genes "
    "in this gene subset.",
    "provenance": "Yazar S et al. (2022) Single-cell eQTL mapping identifies cell type-specific "
    "genetic control of autoimmune disease. Science 376:eabf3041. GEO GSE196830 (OneK1K cohort; "
    "also on CELLxGENE/HCA, CC BY 4.0). Obtained as 'example_sce' (data/example_sce.rda) from "
    "the public GitHub repository chrisycd/scDesignPop (HEAD commit "
    "e05f1f9c873d413d70efd12d065e6cc53eded081, 2026-03-08; file introduced in 2622d1d6, "
    "2025-12-10), git blob 54d36dabaa76fc01039d5fd095215ddaaf2c4a1e. Subset chosen by the "
    "scDesignPop authors (40 anonymised donors SAMP1-40, 4 of the 14 OneK1K cell types, 1,000 "
    "genes). Gene symbols added from the OneK1K gene annotation shipped in the same repository "
    "(example_sce_Bcell) or the 10x Genomics GRCh38-3.0.0 gene table. Licence: OneK1K data CC "
    "BY 4.0; scDesignPop MIT.",
    "cell_type_ontology_version": CL_VERSION,
    **HUMAN,
}
# 1 = male, 2 = female: PLINK convention used by the OneK1K authors (see uns['sex_coding'])
ONEK1K_SEX = {1: ("male", "PATO:0000384"), 2: ("female", "PATO:0000383")}

STEPHENSON_UNS = {
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
STEPHENSON_DISEASE = {"Covid": ("COVID-19", "MONDO:0100096"), "Healthy": ("normal", "PATO:0000461")}

#: Size of the embedded Kang demo subset and the seed of its stratified draw.
KANG_DEMO_N_CELLS = 2500
KANG_DEMO_MIN_PER_STRATUM = 3
KANG_DEMO_SEED = 0


def _read_kang_se(path: str | Path):
    """Parse kang_se.rda, skipping R promises/closures/bytecode and flattening environments.

    The 2018 SummarizedExperiment keeps its assays in a reference-class object (an R
    environment) whose class definition drags in closures and lazy-loading promises of the
    SummarizedExperiment namespace, on which ``rdata.read_rda`` stops. None of them hold data.
    """
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
        return Converter().convert(rdata.parser.parse_file(str(path)))["kang_se"]


def kang2018_ctrl(path: str | Path) -> ad.AnnData:
    """``kang2018_ctrl_8donors.h5ad`` from muscat's ``kang_se.rda`` (counts at
    ``assays@.xData$.->data$counts``, dense genes x cells; labels and t-SNE in colData)."""
    se = _read_kang_se(path)
    counts = vars(se.assays)[".xData"][".->data"].listData["counts"]  # genes x cells
    cells = pd.Index(np.asarray(se.colData.rownames, dtype=str))
    ids = np.asarray(se.NAMES, dtype=str)
    symbols = np.asarray(se.elementMetadata.listData["feature"], dtype=str)
    if list(np.asarray(counts.coords[counts.dims[1]].values, dtype=str)) != list(cells):
        raise ValueError(f"{path}: assay columns are not in colData order")
    dense = np.asarray(counts.values).T
    require_integer(dense, str(path))
    X = sp.csr_matrix(dense.astype(np.float32))

    cols = se.colData.listData
    donor = np.asarray(cols["sample_id"]).astype(str)
    author = pd.Series(np.asarray(cols["cluster_id"], dtype=str), index=cells)
    mapping = read_table("cell_types_kang2018.tsv")
    cell_types = map_cell_types(author, mapping)
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
    adata.obsm["X_tsne"] = np.column_stack([cols["tsne1"], cols["tsne2"]]).astype(np.float32)
    adata.uns.update(KANG_UNS)
    adata.uns["cell_type_mapping"] = mapping_table(mapping, author)
    return adata


def kang2018_ctrl_demo(path: str | Path) -> ad.AnnData:
    """The embedded demo subset as stored: :func:`kang2018_ctrl`, :func:`stratified_subset`,
    and ``layers['counts']`` dropped (an identical copy of ``X``; the loader restores it)."""
    sub = stratified_subset(kang2018_ctrl(path))
    del sub.layers["counts"]
    sub.uns["units"] = (
        "X: raw UMI counts (integers stored as float32, CSR); the file stores X only, "
        "cellpop.datasets.kang2018_ctrl_demo() adds layers['counts'] as a copy of X"
    )
    return sub


def stratified_subset(
    adata: ad.AnnData,
    n_cells: int = KANG_DEMO_N_CELLS,
    min_per_stratum: int = KANG_DEMO_MIN_PER_STRATUM,
    seed: int = KANG_DEMO_SEED,
) -> ad.AnnData:
    """Cells drawn without replacement per donor x cell type, in proportion to stratum size.

    Each ``(donor_id, cell_type)`` stratum of size ``n`` keeps
    ``min(n, max(round(n * n_cells / n_obs), min_per_stratum))`` cells, drawn with
    ``numpy.random.default_rng(seed)`` strata in sorted order; the kept cells stay in their
    original order. ``uns['subset']`` records the rule; ``uns['title']`` says it is a subset.
    """
    rng = np.random.default_rng(seed)
    frac = n_cells / adata.n_obs
    keep = []
    groups = adata.obs.groupby(["donor_id", "cell_type"], observed=True, sort=True).indices
    for _, idx in groups.items():
        k = min(len(idx), max(round(len(idx) * frac), min_per_stratum))
        keep.append(rng.choice(idx, size=k, replace=False))
    sub = adata[np.sort(np.concatenate(keep))].copy()
    for col in sub.obs.columns:
        if isinstance(sub.obs[col].dtype, pd.CategoricalDtype):
            sub.obs[col] = sub.obs[col].cat.remove_unused_categories()
    sub.uns["title"] = f"{adata.uns['title']}: demo subset of {sub.n_obs:,} cells"
    sub.uns["subset"] = (
        f"{sub.n_obs:,} of the {adata.n_obs:,} cells, stratified by donor_id x cell_type: each "
        f"stratum of n cells keeps min(n, max(round(n * {n_cells} / {adata.n_obs}), "
        f"{min_per_stratum})) cells drawn without replacement (numpy default_rng({seed}), "
        "strata in sorted order); all genes kept. Built by cellpop from the public original."
    )
    mapping = sub.uns["cell_type_mapping"].copy()
    counts = sub.obs["author_cell_type"].astype(str).value_counts()
    mapping["n_obs"] = mapping["author_cell_type"].map(counts).fillna(0).astype(np.int64)
    sub.uns["cell_type_mapping"] = mapping
    return sub


def onek1k(path: str | Path) -> ad.AnnData:
    """``onek1k_40donors.h5ad`` from scDesignPop's ``example_sce.rda`` (dgCMatrix counts,
    Ensembl IDs; symbols from the shipped ``onek1k_gene_symbols.tsv``)."""
    sce = read_rda(path)["example_sce"]
    counts = sce.assays.data.listData["counts"]  # dgCMatrix: genes x cells, CSC
    genes, cells = (np.asarray(d, dtype=str) for d in counts.Dimnames)
    X = sp.csc_matrix((counts.x, counts.i, counts.p), shape=tuple(counts.Dim)).T.tocsr()
    require_integer(X.data, str(path))
    X = X.astype(np.float32)

    cols = sce.colData.listData
    names = pd.Index(cells)
    donor = np.asarray(cols["indiv"], dtype=str)
    sex = np.asarray(cols["sex"]).astype(int)
    unknown = set(sex) - set(ONEK1K_SEX)
    if unknown:
        raise ValueError(f"{path}: sex codes without a decoding: {sorted(unknown)}")
    author = pd.Series(np.asarray(cols["cell_type"], dtype=str), index=names)
    mapping = read_table("cell_types_onek1k.tsv")
    cell_types = map_cell_types(author, mapping)
    obs = pd.DataFrame(
        {
            "donor_id": donor,
            "sample_id": donor,
            **{c: cell_types[c].to_numpy() for c in cell_types.columns},
            "sex": [ONEK1K_SEX[s][0] for s in sex],
            "sex_ontology_term_id": [ONEK1K_SEX[s][1] for s in sex],
            "age": np.asarray(cols["age"]).astype(np.int64),
            "barcode_batch": names.str.rsplit("-", n=1).str[1].to_numpy(),
            "disease": "normal",
            "disease_ontology_term_id": "PATO:0000461",
            **BLOOD,
        },
        index=names,
    )
    table = read_table("onek1k_gene_symbols.tsv")
    if list(table["gene_ids"]) != list(genes):
        raise ValueError(
            f"{path}: gene IDs differ from those of the shipped onek1k_gene_symbols.tsv"
        )
    var = table.set_index(pd.Index(table["gene_symbols"].to_numpy()))
    var["gene_symbol_source"] = var["gene_symbol_source"].astype("category")
    adata = ad.AnnData(X=X, obs=categorical_obs(obs), var=var, layers={"counts": X.copy()})
    adata.uns.update(ONEK1K_UNS)
    adata.uns["cell_type_mapping"] = mapping_table(mapping, author)
    return adata


def stephenson2021_covid(path: str | Path) -> ad.AnnData:
    """``stephenson2021_covid_20donors_pca.h5ad`` from GloScope's ``example_SCE.rda``
    (a SingleCellExperiment without assays: colData and ``reducedDims$PCA``)."""
    sce = read_rda(path)["example_SCE"]
    names = pd.Index([str(n) for n in sce.colData.rownames])
    cols = sce.colData.listData
    pca = sce.int_colData.listData["reducedDims"].listData["PCA"]
    if [str(n) for n in pca.coords[pca.dims[0]].values] != list(names):
        raise ValueError(f"{path}: PCA rows are not in colData order")

    donor = np.asarray(cols["sample_id"], dtype=str)
    phenotype = np.asarray(cols["phenotype"], dtype=str)
    unknown = set(phenotype) - set(STEPHENSON_DISEASE)
    if unknown:
        raise ValueError(f"{path}: phenotypes without a disease mapping: {sorted(unknown)}")
    author = pd.Series(np.asarray(cols["cluster_id"], dtype=str), index=names)
    mapping = read_table("cell_types_stephenson2021.tsv")
    cell_types = map_cell_types(author, mapping)
    obs = pd.DataFrame(
        {
            "donor_id": donor,
            "sample_id": donor,
            **{c: cell_types[c].to_numpy() for c in cell_types.columns},
            "disease": [STEPHENSON_DISEASE[p][0] for p in phenotype],
            "disease_ontology_term_id": [STEPHENSON_DISEASE[p][1] for p in phenotype],
            "author_phenotype": phenotype,
            "barcode_batch": names.str.split("_").str[0].to_numpy(),
            **BLOOD,
        },
        index=names,
    )
    adata = ad.AnnData(obs=categorical_obs(obs))
    adata.obsm["X_pca"] = np.asarray(pca.values, dtype=np.float32)
    adata.uns.update(STEPHENSON_UNS)
    adata.uns["cell_type_mapping"] = mapping_table(mapping, author)
    return adata
