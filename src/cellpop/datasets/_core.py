"""Locate, download, cache and hash-check the curated dataset files.

Lookup order for a registered file (see :func:`fetch`):

1. the ``data_dir`` argument,
2. the directory in ``$CELLPOP_DATA_DIR``,
3. the user cache (``$CELLPOP_CACHE_DIR`` or ``pooch.os_cache("cellpop")``),
4. a download with :mod:`pooch` from the data release (``$CELLPOP_DATA_URL`` or
   :data:`DATA_URL`) into the user cache.

Every file is checked against a pinned sha256, wherever it was found.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pooch

#: Base URL of the project's data release; overridable with ``$CELLPOP_DATA_URL``.
DATA_URL = "https://github.com/cellpop-dev/cellpop-data/releases/download/v1/"

ENV_DATA_DIR = "CELLPOP_DATA_DIR"
ENV_CACHE_DIR = "CELLPOP_CACHE_DIR"
ENV_DATA_URL = "CELLPOP_DATA_URL"


@dataclass(frozen=True)
class DatasetInfo:
    """One registered data file (a row of :func:`list_datasets`)."""

    name: str
    filename: str
    sha256: str
    loader: str
    kind: str
    shape: str
    units: str
    source: str
    licence: str


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
        ),
    ]
}


def list_datasets() -> pd.DataFrame:
    """Table of the registered data files.

    Returns
    -------
    pandas.DataFrame
        One row per dataset (index: the name accepted by :func:`fetch`), with columns
        ``filename``, ``loader`` (the :mod:`cellpop.datasets` function that loads it),
        ``kind``, ``shape``, ``units``, ``source``, ``licence`` and ``sha256``.
    """
    rows = [asdict(info) for info in REGISTRY.values()]
    cols = ["name", "filename", "loader", "kind", "shape", "units", "source", "licence", "sha256"]
    return pd.DataFrame(rows)[cols].set_index("name")


def cache_dir() -> Path:
    """Directory of the user cache: ``$CELLPOP_CACHE_DIR`` or ``pooch.os_cache("cellpop")``."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env) if env else Path(pooch.os_cache("cellpop"))


def data_url() -> str:
    """Base URL of the data release: ``$CELLPOP_DATA_URL`` or :data:`DATA_URL` (ends in ``/``)."""
    url = os.environ.get(ENV_DATA_URL) or DATA_URL
    return url if url.endswith("/") else url + "/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _get_info(name: str) -> DatasetInfo:
    if name not in REGISTRY:
        raise KeyError(f"Unknown dataset {name!r}. Known datasets: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def _check_local(info: DatasetInfo, path: Path) -> Path:
    actual = _sha256(path)
    if actual != info.sha256:
        raise ValueError(
            f"File {str(path)!r} for dataset {info.name!r} does not match the pinned sha256: "
            f"expected {info.sha256}, got {actual}. Replace it with the released file, or remove "
            f"it so that the next location (cache / download) is used."
        )
    return path


def fetch(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Return the local path of a registered data file, downloading it if needed.

    Parameters
    ----------
    name
        Registry name, one of the index of :func:`list_datasets` (e.g. ``"kang2018_ctrl"``,
        ``"cell_ontology_2022-12-15"``).
    data_dir
        Directory searched first for the file (under its registry ``filename``). If the file
        is not there, the search continues with ``$CELLPOP_DATA_DIR``, then the user cache
        (``$CELLPOP_CACHE_DIR``, default ``pooch.os_cache("cellpop")``), and finally the file
        is downloaded with :mod:`pooch` from ``$CELLPOP_DATA_URL`` (default :data:`DATA_URL`)
        into the user cache.

    Returns
    -------
    pathlib.Path
        Path of the hash-verified file.

    Raises
    ------
    KeyError
        If ``name`` is not a registered dataset.
    ValueError
        If a file found in ``data_dir`` or ``$CELLPOP_DATA_DIR`` does not match the pinned
        sha256, or a downloaded file does not (then nothing is written to the cache).
    OSError
        If the file is nowhere locally and the download fails (no network, HTTP error).
    """
    info = _get_info(name)
    for directory in (data_dir, os.environ.get(ENV_DATA_DIR)):
        if directory:
            candidate = Path(directory).expanduser() / info.filename
            if candidate.is_file():
                return _check_local(info, candidate)

    import requests  # pooch's own HTTP dependency

    url = data_url() + info.filename
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{info.sha256}",
            fname=info.filename,
            path=cache_dir(),
            progressbar=False,
        )
    except ValueError as err:
        raise ValueError(
            f"Download of dataset {name!r} from {url} failed the hash check (expected sha256 "
            f"{info.sha256}); nothing was written to the cache. Details: {err}"
        ) from err
    except requests.exceptions.RequestException as err:
        raise OSError(
            f"Could not download dataset {name!r} from {url} ({err}). Without network access, "
            f"put {info.filename!r} into a directory and pass it as data_dir= or set "
            f"${ENV_DATA_DIR}."
        ) from err
    return Path(path)
