"""cellpop: self-supervised sample- and cell-level representation learning for single-cell data.

Five scvi-tools model classes (:mod:`cellpop.model`) with one API, the sample-set data layer
(:mod:`cellpop.data`), baselines (:mod:`cellpop.tl`), metrics (:mod:`cellpop.metrics`), plots
(:mod:`cellpop.pl`), Cell Ontology distances (:mod:`cellpop.ontology`) and real public datasets
(:mod:`cellpop.datasets`).
"""

from importlib.metadata import PackageNotFoundError, version

from . import data, datasets, metrics, model, module, nn, ontology, pl, tl

try:
    __version__ = version("cellpop")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "data",
    "datasets",
    "metrics",
    "model",
    "module",
    "nn",
    "ontology",
    "pl",
    "tl",
    "__version__",
]
