"""Registry of the curated dataset files and the public originals they are built from.

Each entry pins the sha256 of the released curated file (accepted in ``data_dir`` /
``$CELLPOP_DATA_DIR``), the public original it is converted from (repository, commit, path,
git blob, sha256; downloaded from ``https://raw.githubusercontent.com/`` or
``$CELLPOP_ORIGINALS_URL``) and, for the two files shipped inside the package, the sha256 of
the embedded copy. :func:`cellpop.datasets.fetch` implements the lookup.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

#: Base URL of the public originals; ``$CELLPOP_ORIGINALS_URL`` replaces it (a mirror holding
#: the same ``<owner>/<repo>/<commit>/<path>`` tree).
ORIGINALS_URL = "https://raw.githubusercontent.com/"

ENV_DATA_DIR = "CELLPOP_DATA_DIR"
ENV_CACHE_DIR = "CELLPOP_CACHE_DIR"
ENV_ORIGINALS_URL = "CELLPOP_ORIGINALS_URL"


@dataclass(frozen=True)
class Original:
    """A public original file at a pinned repository commit."""

    repo: str  #: ``owner/name`` on GitHub
    commit: str
    path: str  #: path inside the repository
    sha256: str
    git_blob: str
    local_name: str  #: file name in the project's originals folder and in the cache

    @property
    def url_path(self) -> str:
        """``<owner>/<repo>/<commit>/<path>``, appended to the originals base URL."""
        return f"{self.repo}/{self.commit}/{self.path}"


KANG_SE = Original(
    "HelenaLC/muscat",
    "d5acab66a2468bb51368f527b6cd617de8253a67",
    "data/kang_se.rda",
    "f2d6728424b2d40a88ee6c6c2a1f543e9dc798e98990c4f11b5a625470ffe285",
    "5e985f6c5ba1262ea5ffa63c4d73fa072b369f2d",
    "kang_se.rda",
)
ORIGINALS = {
    "kang": KANG_SE,
    "onek1k": Original(
        "chrisycd/scDesignPop",
        "e05f1f9c873d413d70efd12d065e6cc53eded081",
        "data/example_sce.rda",
        "36f0d47be65fda1b79c0faa6f6120bd8ae54f9261ae6807dd80f958edefe9101",
        "54d36dabaa76fc01039d5fd095215ddaaf2c4a1e",
        "scDesignPop_example_sce.rda",
    ),
    "stephenson": Original(
        "epurdom/GloScope",
        "458539a814210fafed1c5b0b800a06af9b3edcaf",
        "data/example_SCE.rda",
        "aa05395fba9c6bde302ff6a77961f0042e5615d2cf24f7215bf2c51b6d95adf9",
        "c2fe3fcc69a7ce5b38977976f24595a917c45a8b",
        "GloScope_example_SCE.rda",
    ),
    "hoek": Original(
        "rnabioco/clustifyr",
        "6822cd61d05451dc89844f88daca165b1edc0ad2",
        "data/pbmc_bulk_matrix.rda",
        "2e7c4e6fddfdc0624534bd7ce6347cafeb133672bf77aa63effa274477ef972a",
        "02bcf09d523d856717eeb699002edabfe71e56eb",
        "pbmc_bulk_matrix.rda",
    ),
    "cibersortx": Original(
        "kalidouBA/DICEPRO",
        "253e02262079850a359f40c33a8f21b7358223d0",
        "data/GSE127813.rda",
        "d071a07f8bb40756ce596776ee3e2bfd3938808bc0a657a962ef00edba477193",
        "998f421efbe1d936842c0074ee91e67fa8590d8c",
        "GSE127813.rda",
    ),
    "cl2022": Original(
        "obophenotype/cell-ontology",
        "a80b777466ddd784c567ed91b42c07f14ee4c732",
        "cl-basic.obo",
        "4427812138ebe9c7772bf1688f813a2e0097a4323e1b34604840800ab5e19e97",
        "a1a1b09ef6c60dd6eda54238604f4dde32265868",
        "cl-basic.obo",
    ),
    # the same bytes as cellxgene_ontology_guide/data/CL-ontology-v2026-03-26.json.zst in the
    # PyPI wheel cellxgene-ontology-guide 1.11.1 (sha256 checked equal)
    "cl2026": Original(
        "chanzuckerberg/cellxgene-ontology-guide",
        "c497943397ee4e0959d5fe391f42e44be1439fb7",
        "ontology-assets/CL-ontology-v2026-03-26.json.zst",
        "ee9b84956ca31195a65f63b6e67e993d58fd3f5fb577a61536dfd122fba06dde",
        "c7cb91ce02105bab33354bb3637d81df5e3c4acb",
        "CL-ontology-v2026-03-26.json.zst",
    ),
}


@dataclass(frozen=True)
class DatasetInfo:
    """One registered data file (a row of :func:`list_datasets`)."""

    name: str
    filename: str
    sha256: str  #: of the released curated file (or of the embedded copy, if only that exists)
    loader: str
    kind: str
    shape: str
    units: str
    source: str
    licence: str
    original: Original
    embedded_sha256: str | None = None  #: of the copy shipped in ``cellpop/datasets/_data``


REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            name="stephenson2021_covid",
            filename="stephenson2021_covid_20donors_pca.h5ad",
            sha256="9b08939e7dbdc66261d43cd3374de881b0acd452e758ac163d7735b71b3e46d8",
            loader="stephenson2021_covid",
            kind="scRNA-seq PBMC, embedding only",
            shape="10,000 cells x 0 genes; obsm['X_pca'] 50 PCs; 20 donors (16 COVID-19, 4 healthy)",
            units="no expression; authors' 50 principal components (float32)",
            source="Stephenson et al. 2021, Nat Med 27:904; ArrayExpress E-MTAB-10026",
            licence="data CC BY 4.0; distributor (GloScope) Artistic-2.0",
            original=ORIGINALS["stephenson"],
            embedded_sha256="99ff6d874c338f38f13f77e7b90f0b2e0d706ea393ff017a432228928d3c861b",
        ),
        DatasetInfo(
            name="kang2018_ctrl",
            filename="kang2018_ctrl_8donors.h5ad",
            sha256="a65f4cecf2068645723b4b7ea42e4c05e29216c07772879007ca7a1689275697",
            loader="kang2018_ctrl",
            kind="scRNA-seq PBMC, unstimulated",
            shape="12,261 cells x 1,287 genes; 8 donors; 8 cell types",
            units="raw UMI counts (float32 CSR) in X and layers['counts']",
            source="Kang et al. 2018, Nat Biotechnol 36:89; GEO GSE96583",
            licence="GEO public; distributor (muscat) GPL-3",
            original=ORIGINALS["kang"],
        ),
        DatasetInfo(
            name="kang2018_ctrl_demo",
            filename="kang2018_ctrl_demo.h5ad",
            sha256="4a6d4e9047ff10c9ecb76d918483289b8e35adcf2016d7f982d2c17022b2ff32",
            loader="kang2018_ctrl_demo",
            kind="scRNA-seq PBMC, unstimulated; embedded demo subset of kang2018_ctrl",
            shape="2,508 cells x 1,287 genes; 8 donors; 8 cell types (stratified subset)",
            units="raw UMI counts (float32 CSR) in X; layers['counts'] added on load",
            source="Kang et al. 2018, Nat Biotechnol 36:89; GEO GSE96583",
            licence="GEO public; distributor (muscat) GPL-3",
            original=ORIGINALS["kang"],
            embedded_sha256="4a6d4e9047ff10c9ecb76d918483289b8e35adcf2016d7f982d2c17022b2ff32",
        ),
        DatasetInfo(
            name="onek1k",
            filename="onek1k_40donors.h5ad",
            sha256="9bd9ff86656c4320bc5b768724c2b2ca4207768ee37616096400fcf0bc51d733",
            loader="onek1k",
            kind="scRNA-seq PBMC (OneK1K cohort)",
            shape="7,811 cells x 1,000 genes; 40 donors; 4 cell types",
            units="raw UMI counts (float32 CSR) in X and layers['counts']",
            source="Yazar et al. 2022, Science 376:eabf3041; GEO GSE196830",
            licence="data CC BY 4.0; distributor (scDesignPop) MIT",
            original=ORIGINALS["onek1k"],
        ),
        DatasetInfo(
            name="onek1k_demo",
            filename="onek1k_demo.h5ad",
            sha256="146c2c71ee31c5a336dc96f5eac4d8744af2138a866ccf958cd4d7cc7d674427",
            loader="onek1k_demo",
            kind="scRNA-seq PBMC (OneK1K); embedded demo subset of onek1k",
            shape="1,644 cells x 190 genes (those Kang's demo subset has); 40 donors; 4 cell types",
            units="raw UMI counts (float32 CSR) in X; layers['counts'] added on load",
            source="Yazar et al. 2022, Science 376:eabf3041; GEO GSE196830",
            licence="data CC BY 4.0; distributor (scDesignPop) MIT",
            original=ORIGINALS["onek1k"],
            embedded_sha256="146c2c71ee31c5a336dc96f5eac4d8744af2138a866ccf958cd4d7cc7d674427",
        ),
        DatasetInfo(
            name="hoek2015_sorted_bulk_demo",
            filename="hoek2015_sorted_bulk_demo.h5ad",
            sha256="3afe032035cba420e2ffbf1f96b29c96767c6e3bb06f0474eccf14580f690c0e",
            loader="hoek2015_sorted_bulk_demo",
            kind="bulk RNA-seq, sorted blood populations + PBMC; embedded demo gene subset",
            shape="14 samples x 1,099 genes (those of Kang's demo subset); 2 donors x 7 populations",
            units="integer read counts (recount2-scaled), dense float32; also layers['counts']",
            source="Hoek et al. 2015, PLoS One 10:e0118528; GEO GSE64655",
            licence="GEO/recount2 public; distributor (clustifyr) MIT",
            original=ORIGINALS["hoek"],
            embedded_sha256="3afe032035cba420e2ffbf1f96b29c96767c6e3bb06f0474eccf14580f690c0e",
        ),
        DatasetInfo(
            name="hoek2015_sorted_bulk",
            filename="hoek2015_sorted_pbmc_bulk.h5ad",
            sha256="fb3eb40392d0e1d5701e171147e1eeed6dad5247ad64c96514b1b1bf44f075e5",
            loader="hoek2015_sorted_bulk",
            kind="bulk RNA-seq, sorted blood populations + PBMC",
            shape="14 samples x 34,712 genes; 2 donors x 7 populations",
            units="integer read counts (recount2-scaled), dense float32; also layers['counts']",
            source="Hoek et al. 2015, PLoS One 10:e0118528; GEO GSE64655",
            licence="GEO/recount2 public; distributor (clustifyr) MIT",
            original=ORIGINALS["hoek"],
        ),
        DatasetInfo(
            name="cibersortx_wholeblood_bulk",
            filename="cibersortx_wholeblood_bulk.h5ad",
            sha256="5e1bd7aab5f8f8af7321d33ebdc033feec085414db4ba17a708fd2ffa7bfc218",
            loader="cibersortx_wholeblood_bulk",
            kind="bulk RNA-seq, whole blood + measured leukocyte fractions",
            shape="12 samples x 58,581 genes; 8 fraction columns",
            units="normalised expression, each sample sums to 1e6 (not counts), dense float32",
            source="Newman et al. 2019, Nat Biotechnol 37:773; GEO GSE127813",
            licence="GEO public; distributor (DICEPRO) GPL >= 3",
            original=ORIGINALS["cibersortx"],
        ),
        DatasetInfo(
            name="cell_ontology_2022-12-15",
            filename="cl-basic_2022-12-15.obo",
            sha256="4427812138ebe9c7772bf1688f813a2e0097a4323e1b34604840800ab5e19e97",
            loader="cell_ontology",
            kind="Cell Ontology, official cl-basic edition (OBO 1.2)",
            shape="2,804 terms (151 obsolete)",
            units="-",
            source="Cell Ontology release 2022-12-15 (obophenotype/cell-ontology)",
            licence="CC BY 4.0",
            original=ORIGINALS["cl2022"],
        ),
        DatasetInfo(
            name="cell_ontology_2022-12-15_demo",
            filename="cl-basic_2022-12-15_demo.obo",
            sha256="f76fdbb09c218447b53c724d9b194fdb15c3adf8094b938d3089f3fee43817c9",
            loader="cell_ontology",
            kind="Cell Ontology 2022-12-15 cl-basic, embedded subset: curated CL IDs + ancestors",
            shape="71 terms (id, name, def, is_a)",
            units="-",
            source="Cell Ontology release 2022-12-15 (obophenotype/cell-ontology)",
            licence="CC BY 4.0",
            original=ORIGINALS["cl2022"],
            embedded_sha256="f76fdbb09c218447b53c724d9b194fdb15c3adf8094b938d3089f3fee43817c9",
        ),
        DatasetInfo(
            name="cell_ontology_2026-03-26",
            filename="cl_2026-03-26.obo",
            sha256="6ad8993492ef7891b1967cdec1f7c6942a037fb2223e9d0d3b217640ec12bc21",
            loader="cell_ontology",
            kind="Cell Ontology v2026-03-26, derived OBO (is_a and part_of merged as is_a)",
            shape="3,596 terms (272 obsolete)",
            units="-",
            source="Cell Ontology v2026-03-26 via cellxgene-ontology-guide 1.11.1",
            licence="CC BY 4.0",
            original=ORIGINALS["cl2026"],
        ),
    ]
}


def list_datasets() -> pd.DataFrame:
    """Table of the registered data files.

    Returns
    -------
    pandas.DataFrame
        One row per dataset (index: the name accepted by :func:`cellpop.datasets.fetch`), with
        columns ``filename``, ``loader`` (the :mod:`cellpop.datasets` function that loads it),
        ``kind``, ``shape``, ``units``, ``source``, ``licence``, ``sha256`` (released file),
        ``original_url`` (the public original at its pinned commit, default base URL),
        ``original_sha256`` and ``embedded`` (True if a copy ships inside the package).
    """
    rows = []
    for info in REGISTRY.values():
        row = asdict(info)
        row.pop("original")
        row["original_url"] = ORIGINALS_URL + info.original.url_path
        row["original_sha256"] = info.original.sha256
        row["embedded"] = info.embedded_sha256 is not None
        rows.append(row)
    cols = ["name", "filename", "loader", "kind", "shape", "units", "source", "licence"]
    cols += ["sha256", "original_url", "original_sha256", "embedded"]
    return pd.DataFrame(rows)[cols].set_index("name")
