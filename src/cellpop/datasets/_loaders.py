"""One loader per dataset; each returns the curated file's AnnData (or ontology) as stored."""

from __future__ import annotations

import os
import warnings

import anndata as ad

from ._fetch import fetch

_PathLike = str | os.PathLike | None

_CONVENTION_OBS = """
    Common ``obs`` columns: ``donor_id`` and ``sample_id`` (string categories, equal here),
    ``cell_type`` (the authors' label written out), ``cell_type_ontology_term_id`` (best
    matching CL ID, exists in CL 2022-12-15 and 2026-03-26), ``cell_type_ontology_label``,
    ``author_cell_type`` (label as in the source), ``tissue`` / ``tissue_ontology_term_id``."""


def _read(name: str, data_dir: _PathLike) -> ad.AnnData:
    return ad.read_h5ad(fetch(name, data_dir=data_dir))


def stephenson2021_covid(data_dir: _PathLike = None) -> ad.AnnData:
    """COVID-19 PBMC, 20 donors x 500 cells, the original authors' PCA embedding only.

    Parameters
    ----------
    data_dir
        Directory searched first for ``stephenson2021_covid_20donors_pca.h5ad``; then
        ``$CELLPOP_DATA_DIR``, then the copy embedded in the package (same content, no network
        needed; see :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        10,000 cells x 0 genes. ``X`` is empty (no expression);
        ``obsm['X_pca']`` (10,000 x 50, float32) holds the authors' first 50 principal
        components. 20 donors (16 COVID-19, 4 healthy), 18 cell types.
        ``obs``: the common columns (below) plus ``disease`` / ``disease_ontology_term_id``
        (MONDO:0100096 COVID-19 or PATO:0000461 normal), ``author_phenotype``
        (Covid/Healthy), ``barcode_batch`` (10x library BGCV01-BGCV15, 1-4 donors each).
        ``uns``: ``title``, ``provenance``, ``units``, ``cell_type_mapping``.

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        See :func:`fetch` (missing ``data_dir``; hash mismatch; download failure).

    Notes
    -----
    Source: Stephenson et al. (2021) *Nat Med* 27:904, ArrayExpress E-MTAB-10026; subset
    ``example_SCE`` of the GloScope R package (epurdom/GloScope). Licence: data CC BY 4.0,
    GloScope Artistic-2.0. Caveats: no gene expression, so count models cannot be trained on
    it; no sex or age; 500 random cells per donor.
    """
    return _read("stephenson2021_covid", data_dir)


def kang2018_ctrl(data_dir: _PathLike = None) -> ad.AnnData:
    """Lupus PBMC, unstimulated (control) cells of 8 donors, 1,287 genes.

    Parameters
    ----------
    data_dir
        Directory searched first for ``kang2018_ctrl_8donors.h5ad``; then
        ``$CELLPOP_DATA_DIR``, the user cache, and a build from the public original (see
        :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        12,261 cells x 1,287 genes. ``X``: raw UMI counts (integers stored as float32 CSR);
        ``layers['counts']`` is an identical copy. 8 donors (408-2,738 cells), 8 cell types.
        ``obs``: the common columns (below) plus ``condition`` ("control (unstimulated)"),
        ``disease`` / ``disease_ontology_term_id`` (systemic lupus erythematosus,
        MONDO:0007915). ``var``: ``gene_ids`` (Ensembl), ``gene_symbols`` (= ``var_names``).
        ``obsm['X_tsne']``: the muscat authors' t-SNE.

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        See :func:`fetch` (missing ``data_dir``; hash mismatch; download failure).

    Notes
    -----
    Source: Kang et al. (2018) *Nat Biotechnol* 36:89, GEO GSE96583; subset ``kang_se`` of
    the muscat R package (HelenaLC/muscat). Licence: GEO data public, muscat GPL-3.
    Caveats: only the unstimulated half (no condition contrast); genes pre-filtered by the
    muscat authors (median 993 UMI per cell); donors were pooled and demultiplexed
    genetically, so there is no lane/batch label.
    """
    return _read("kang2018_ctrl", data_dir)


def kang2018_ctrl_demo(data_dir: _PathLike = None) -> ad.AnnData:
    """Small stratified subset of :func:`kang2018_ctrl`, embedded in the package (offline demo).

    Parameters
    ----------
    data_dir
        Directory searched first for ``kang2018_ctrl_demo.h5ad``; then ``$CELLPOP_DATA_DIR``,
        then the copy embedded in the package (see :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        2,508 cells x 1,287 genes, laid out as :func:`kang2018_ctrl` (same ``obs``, ``var``,
        ``obsm['X_tsne']``; ``X`` raw UMI counts, float32 CSR; ``layers['counts']`` is added
        here as a copy of ``X``, the file stores ``X`` only). All 8 donors (86-557 cells) and 8
        cell types: every donor x cell-type stratum of ``n`` cells keeps
        ``min(n, max(round(n * 2500 / 12261), 3))`` cells drawn without replacement
        (``numpy.random.default_rng(0)``). ``uns['subset']`` states the rule,
        ``uns['cell_type_mapping']['n_obs']`` counts the kept cells.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`fetch` (missing ``data_dir``; hash mismatch).

    Notes
    -----
    Built by ``scripts/build_demo_data.py`` from the public original (muscat's ``kang_se.rda``,
    see :func:`kang2018_ctrl`); same source and licence. Small strata (megakaryocytes, 4-20
    cells per donor in the full file) are over-represented by the minimum of 3 cells.
    """
    adata = _read("kang2018_ctrl_demo", data_dir)
    adata.layers["counts"] = adata.X.copy()
    return adata


def onek1k(data_dir: _PathLike = None) -> ad.AnnData:
    """OneK1K PBMC, 40 healthy donors, 4 cell types, 1,000 genes.

    Parameters
    ----------
    data_dir
        Directory searched first for ``onek1k_40donors.h5ad``; then ``$CELLPOP_DATA_DIR``,
        the user cache, and a build from the public original (see :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        7,811 cells x 1,000 genes. ``X``: raw UMI counts (integers stored as float32 CSR);
        ``layers['counts']`` is an identical copy. 40 donors SAMP1-SAMP40 (85-318 cells),
        21 female / 19 male, age 30-88. ``obs``: the common columns (below) plus ``sex`` /
        ``sex_ontology_term_id``, ``age`` (years), ``barcode_batch`` (barcode suffix, likely
        the capture pool), ``disease`` (normal). ``var``: ``gene_ids`` (Ensembl),
        ``gene_symbols``, ``gene_symbol_source``.

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        See :func:`fetch` (missing ``data_dir``; hash mismatch; download failure).

    Notes
    -----
    Source: Yazar et al. (2022) *Science* 376:eabf3041, GEO GSE196830; subset ``example_sce``
    of the scDesignPop R package (chrisycd/scDesignPop). Licence: data CC BY 4.0, scDesignPop
    MIT. Caveats: 4 of the 14 OneK1K cell types, ~200 cells per donor; genes chosen by the
    distributors (median 612 UMI per cell); sex decoded 1 = male, 2 = female following the
    OneK1K authors' code (not checkable from these genes).
    """
    return _read("onek1k", data_dir)


def onek1k_demo(data_dir: _PathLike = None) -> ad.AnnData:
    """Small subset of :func:`onek1k`, embedded in the package (offline POPPY demo).

    Parameters
    ----------
    data_dir
        Directory searched first for ``onek1k_demo.h5ad``; then ``$CELLPOP_DATA_DIR``, then
        the copy embedded in the package (see :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        1,644 cells x 190 genes, laid out as :func:`onek1k` (``layers['counts']`` is added here
        as a copy of ``X``). Genes: the 190 of OneK1K's 1,000 that :func:`kang2018_ctrl_demo`
        also has. All 40 donors and 4 cell types: every donor x cell-type stratum of ``n``
        cells keeps ``min(n, max(round(n * 1600 / 7811), 3))`` cells
        (``numpy.random.default_rng(0)``); ``uns['subset']`` states the rule.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`fetch`.
    """
    adata = _read("onek1k_demo", data_dir)
    adata.layers["counts"] = adata.X.copy()
    return adata


def hoek2015_sorted_bulk_demo(data_dir: _PathLike = None) -> ad.AnnData:
    """:func:`hoek2015_sorted_bulk` on 1,099 genes, embedded in the package (offline demo).

    Parameters
    ----------
    data_dir
        Directory searched first for ``hoek2015_sorted_bulk_demo.h5ad``; then
        ``$CELLPOP_DATA_DIR``, then the copy embedded in the package (see :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        All 14 samples (2 donors x 6 sorted populations + PBMC), same ``obs``, ``X`` and
        ``layers['counts']`` as :func:`hoek2015_sorted_bulk`, on the 1,099 genes of
        :func:`kang2018_ctrl_demo` that Hoek 2015 measures (``uns['subset']``).

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`fetch`.
    """
    return _read("hoek2015_sorted_bulk_demo", data_dir)


def hoek2015_sorted_bulk(data_dir: _PathLike = None) -> ad.AnnData:
    """Bulk RNA-seq of 6 sorted blood populations and PBMC from 2 donors (day 0).

    Parameters
    ----------
    data_dir
        Directory searched first for ``hoek2015_sorted_pbmc_bulk.h5ad``; then
        ``$CELLPOP_DATA_DIR``, the user cache, and a build from the public original (see
        :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        14 samples x 34,712 genes (symbols). ``X``: integer read counts from recount2
        (scaled to a common library size and rounded), dense float32; ``layers['counts']``
        is an identical copy. ``obs``: ``donor_id`` (donor1 male, donor2 female),
        ``sample_id``, ``replicate``, ``sex``, ``sample_type``, ``cell_type``,
        ``cell_type_ontology_term_id`` (B cell, myeloid DC, monocyte, neutrophil, NK, T cell,
        PBMC = CL:2000001), ``author_cell_type``, ``time_point``, ``tissue``.

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        See :func:`fetch` (missing ``data_dir``; hash mismatch; download failure).

    Notes
    -----
    Source: Hoek et al. (2015) *PLoS One* 10:e0118528, GEO GSE64655 (SRA SRP051688); matrix
    ``pbmc_bulk_matrix`` of the clustifyr R package (rnabioco/clustifyr). Licence: public
    data, clustifyr MIT. Caveats: units are counts, unlike :func:`cibersortx_wholeblood_bulk`;
    donors were assigned from sex-chromosome genes (see ``uns['donor_note']``).
    """
    return _read("hoek2015_sorted_bulk", data_dir)


def cibersortx_wholeblood_bulk(data_dir: _PathLike = None) -> ad.AnnData:
    """Whole-blood bulk RNA-seq of 12 healthy adults with measured leukocyte fractions.

    Parameters
    ----------
    data_dir
        Directory searched first for ``cibersortx_wholeblood_bulk.h5ad``; then
        ``$CELLPOP_DATA_DIR``, the user cache, and a build from the public original (see
        :func:`fetch`).

    Returns
    -------
    anndata.AnnData
        12 samples x 58,581 genes (symbols). ``X``: normalised expression, every sample sums
        to 1e6 (TPM/CPM scale, **not counts**), dense float32; no ``layers['counts']``.
        ``obsm['cell_type_fractions']`` (DataFrame, 12 x 8: neutrophil, lymphocyte, monocyte,
        T_cell, CD4_T_cell, CD8_T_cell, B_cell, NK_cell as fractions of leukocytes), copied
        to ``obs['frac_<column>']``; ``uns['cell_type_fractions_info']`` maps them to CL.
        ``obs``: ``donor_id``, ``sample_id``, ``sample_type``, ``cell_type`` (whole blood,
        CL:0000081 blood cell), ``tissue``.

    Raises
    ------
    FileNotFoundError, ValueError, OSError
        See :func:`fetch` (missing ``data_dir``; hash mismatch; download failure).

    Notes
    -----
    Source: Newman et al. (2019) *Nat Biotechnol* 37:773 (CIBERSORTx), GEO GSE127813; object
    ``GSE127813`` of the DICEPRO R package (kalidouBA/DICEPRO). Licence: public data, DICEPRO
    GPL >= 3. Caveats: fractions are hierarchical, not a partition (neutrophil + lymphocyte
    + monocyte = 1; T/B/NK are parts of lymphocytes, CD4/CD8 parts of T cells).
    """
    return _read("cibersortx_wholeblood_bulk", data_dir)


for _loader in (stephenson2021_covid, kang2018_ctrl, kang2018_ctrl_demo, onek1k, onek1k_demo):
    if _loader.__doc__:  # None under python -OO
        _loader.__doc__ += _CONVENTION_OBS


#: Known Cell Ontology versions -> registry names.
CELL_ONTOLOGY_VERSIONS = {
    "2022-12-15": "cell_ontology_2022-12-15",
    "2026-03-26": "cell_ontology_2026-03-26",
    "2022-12-15-demo": "cell_ontology_2022-12-15_demo",
}


def cell_ontology(version: str = "2022-12-15", data_dir: _PathLike = None):
    """Load a Cell Ontology (CL) release as a :class:`pronto.Ontology`.

    Parameters
    ----------
    version
        ``"2022-12-15"`` (default; the official ``cl-basic`` OBO of that release, the version
        all ``cell_type_ontology_term_id`` values in the datasets were chosen for) or
        ``"2026-03-26"`` (an OBO derived from the CL JSON shipped in
        ``cellxgene-ontology-guide`` 1.11.1: id, name, definition, exact synonyms, obsolete
        flag, replaced_by; ``is_a`` = direct parents, where is_a and part_of are **not**
        distinguished; no other relationships), or ``"2022-12-15-demo"`` (embedded in the
        package, offline: the 71 terms of 2022-12-15 that the curated datasets use plus all
        their ``is_a`` ancestors; pruning and hop distances equal the full file's for them).
    data_dir
        Directory searched first for the OBO file (``cl-basic_2022-12-15.obo`` or
        ``cl_2026-03-26.obo``); then ``$CELLPOP_DATA_DIR``, the user cache, and a build from
        the public original (see :func:`fetch`).

    Returns
    -------
    pronto.Ontology
        2,804 terms (151 obsolete) for 2022-12-15; 3,596 terms (272 obsolete) for 2026-03-26.
        Parents: ``ont[term_id].superclasses(distance=1)``.

    Raises
    ------
    ValueError
        If ``version`` is not a known version (the message lists them), or on a hash mismatch.
    FileNotFoundError, OSError
        See :func:`fetch` (missing ``data_dir``; download failure).

    Notes
    -----
    Source: Cell Ontology (obophenotype/cell-ontology), licence CC BY 4.0. 2022-12-15 is
    ``cl-basic.obo`` of obophenotype/cell-ontology at the release merge commit; 2026-03-26 is
    built from ``ontology-assets/CL-ontology-v2026-03-26.json.zst`` of
    chanzuckerberg/cellxgene-ontology-guide at a pinned commit (the same bytes as in the PyPI
    wheel cellxgene-ontology-guide 1.11.1).
    """
    import pronto

    if version not in CELL_ONTOLOGY_VERSIONS:
        raise ValueError(
            f"Unknown Cell Ontology version {version!r}; known versions: "
            f"{', '.join(CELL_ONTOLOGY_VERSIONS)}."
        )
    path = fetch(CELL_ONTOLOGY_VERSIONS[version], data_dir=data_dir)
    with warnings.catch_warnings():
        # pronto warns about OBO header features it does not model; irrelevant here
        warnings.simplefilter("ignore", category=pronto.warnings.ProntoWarning)
        return pronto.Ontology(str(path))
