"""Real public datasets: curated small subsets for examples, tests and benchmarks.

Each loader finds its file in ``data_dir``, ``$CELLPOP_DATA_DIR``, the copy embedded in the
package (the Stephenson 2021 donors and small demo subsets of Kang 2018, OneK1K, Hoek 2015
and the Cell Ontology) or the user cache
(``$CELLPOP_CACHE_DIR``, default ``pooch.os_cache("cellpop")``); otherwise it downloads the
public original from its pinned repository commit (``$CELLPOP_ORIGINALS_URL`` replaces
``https://raw.githubusercontent.com/``), checks its sha256, converts it in the package and
caches the result. See :func:`list_datasets` for the table and ``docs/datasets.md`` for
provenance. :func:`resample` makes larger (or smaller) thinned copies of a dataset with a
chosen number of donors for scale benchmarks.
"""

from ._core import ORIGINALS, ORIGINALS_URL, REGISTRY, list_datasets
from ._fetch import cache_dir, convert, embedded_path, fetch
from ._loaders import (
    CELL_ONTOLOGY_VERSIONS,
    cell_ontology,
    cibersortx_wholeblood_bulk,
    hoek2015_sorted_bulk,
    hoek2015_sorted_bulk_demo,
    kang2018_ctrl,
    kang2018_ctrl_demo,
    onek1k,
    onek1k_demo,
    stephenson2021_covid,
)
from ._resample import resample

__all__ = [
    "CELL_ONTOLOGY_VERSIONS",
    "ORIGINALS",
    "ORIGINALS_URL",
    "REGISTRY",
    "cache_dir",
    "cell_ontology",
    "cibersortx_wholeblood_bulk",
    "convert",
    "embedded_path",
    "fetch",
    "hoek2015_sorted_bulk",
    "hoek2015_sorted_bulk_demo",
    "kang2018_ctrl",
    "kang2018_ctrl_demo",
    "list_datasets",
    "onek1k",
    "onek1k_demo",
    "resample",
    "stephenson2021_covid",
]
