"""Real public datasets: curated small subsets for examples, tests and benchmarks.

Each loader finds its file in ``data_dir``, ``$CELLPOP_DATA_DIR`` or the user cache
(``$CELLPOP_CACHE_DIR``, default ``pooch.os_cache("cellpop")``), or downloads it with pooch from
the data release (``$CELLPOP_DATA_URL``), always checking a pinned sha256. See
:func:`list_datasets` for the table and ``docs/datasets.md`` for provenance.
"""

from ._core import DATA_URL, REGISTRY, cache_dir, fetch, list_datasets
from ._loaders import (
    CELL_ONTOLOGY_VERSIONS,
    cell_ontology,
    cibersortx_wholeblood_bulk,
    hoek2015_sorted_bulk,
    kang2018_ctrl,
    onek1k,
    stephenson2021_covid,
)

__all__ = [
    "CELL_ONTOLOGY_VERSIONS",
    "DATA_URL",
    "REGISTRY",
    "cache_dir",
    "cell_ontology",
    "cibersortx_wholeblood_bulk",
    "fetch",
    "hoek2015_sorted_bulk",
    "kang2018_ctrl",
    "list_datasets",
    "onek1k",
    "stephenson2021_covid",
]
