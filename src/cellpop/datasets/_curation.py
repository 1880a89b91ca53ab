"""Shared helpers of the converters that turn public originals into the curated files.

The curation tables that the originals lack (cell-type -> Cell Ontology mappings, the OneK1K
gene-symbol table) ship with the package in ``_data/`` as tab-separated text files whose
``#`` header lines state their provenance; :func:`read_table` reads them.
"""

from __future__ import annotations

import io
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

CL_VERSION = "Cell Ontology release 2022-12-15 (cl-basic)"
HUMAN = {"organism": "Homo sapiens", "organism_ontology_term_id": "NCBITaxon:9606"}
BLOOD = {"tissue": "blood", "tissue_ontology_term_id": "UBERON:0000178"}
MAPPING_COLS = [
    "author_cell_type",
    "cell_type",
    "cell_type_ontology_term_id",
    "cell_type_ontology_label",
    "match",
]


def package_data(name: str) -> Path:
    """Path of a file shipped in ``cellpop/datasets/_data``."""
    return Path(str(resources.files("cellpop.datasets").joinpath("_data", name)))


def read_table(name: str) -> pd.DataFrame:
    """Read a shipped tab-separated table, skipping its ``#`` provenance header (all str)."""
    lines = package_data(name).read_text(encoding="utf-8").splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("#"))
    return pd.read_csv(io.StringIO(body), sep="\t", dtype=str, keep_default_na=False)


def read_rda(path: str | Path) -> dict:
    """Read an ``.rda`` file with the pure-Python ``rdata`` package (S4 warnings silenced)."""
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns about every S4 class it does not know
        return rdata.read_rda(str(path))


def categorical_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """String columns as categories (AnnData convention of the curated files)."""
    for col in obs.columns:
        if obs[col].dtype == object:
            obs[col] = obs[col].astype("category")
    return obs


def map_cell_types(author: pd.Series, mapping: pd.DataFrame) -> pd.DataFrame:
    """obs columns (cell_type, CL ID, CL label, author_cell_type) from a mapping table.

    Raises
    ------
    ValueError
        If an author label of ``author`` has no row in ``mapping``.
    """
    table = mapping.set_index("author_cell_type")
    unknown = set(author.unique()) - set(table.index)
    if unknown:
        raise ValueError(f"author cell-type labels without a CL mapping: {sorted(unknown)}")
    cols = ["cell_type", "cell_type_ontology_term_id", "cell_type_ontology_label"]
    out = table.loc[author.to_numpy(), cols].set_index(author.index)
    out["author_cell_type"] = author.to_numpy()
    return out


def mapping_table(mapping: pd.DataFrame, author: pd.Series) -> pd.DataFrame:
    """``uns['cell_type_mapping']``: the mapping rows plus ``n_obs`` (cells per author label)."""
    table = mapping[MAPPING_COLS].reset_index(drop=True).copy()
    counts = author.value_counts()
    table["n_obs"] = table["author_cell_type"].map(counts).fillna(0).astype(np.int64)
    return table


def require_integer(x: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` unless every value of ``x`` is integral (counts)."""
    if not np.array_equal(x, np.round(x)):
        raise ValueError(f"{what}: values are not integer counts")


# ---------------------------------------------------------------- comparison with a curated file


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _same(a, b) -> bool:
    if isinstance(b, pd.DataFrame):
        return (
            isinstance(a, pd.DataFrame)
            and list(a.columns) == list(b.columns)
            and a.astype(str).reset_index(drop=True).equals(b.astype(str).reset_index(drop=True))
        )
    return str(a) == str(b)


def compare(adata, ref) -> dict[str, bool]:
    """Part-by-part equality of ``adata`` with a reference AnnData (e.g. the released file).

    Parameters
    ----------
    adata, ref
        The AnnData to check and the reference.

    Returns
    -------
    dict
        ``{part: equal}`` for obs/var names, ``X`` (values; dtype and sparse/dense format),
        every layer and ``obsm`` entry of ``ref``, the ``obs``/``var`` columns (compared as
        strings, every column of ``ref`` must be present) and the ``uns`` entries of ``ref``.
    """
    checks = {
        "obs_names": adata.obs_names.equals(ref.obs_names),
        "var_names": adata.var_names.equals(ref.var_names),
    }
    if ref.X is None or ref.n_vars == 0:
        checks["X"] = adata.n_vars == 0
    else:
        checks["X"] = adata.shape == ref.shape and np.array_equal(_dense(adata.X), _dense(ref.X))
        checks["X dtype/format"] = adata.X.dtype == ref.X.dtype and sp.issparse(
            adata.X
        ) == sp.issparse(ref.X)
    for key in ref.layers:
        checks[f"layers[{key!r}]"] = key in adata.layers and np.array_equal(
            _dense(adata.layers[key]), _dense(ref.layers[key])
        )
    for key in ref.obsm:
        other = adata.obsm.get(key)
        checks[f"obsm[{key!r}]"] = other is not None and np.array_equal(
            np.asarray(other), np.asarray(ref.obsm[key])
        )
    for name in ("obs", "var"):
        frame, ref_frame = getattr(adata, name), getattr(ref, name)
        for col in ref_frame.columns:
            checks[f"{name}[{col!r}]"] = col in frame.columns and np.array_equal(
                frame[col].astype(str).to_numpy(), ref_frame[col].astype(str).to_numpy()
            )
    for key in ref.uns:
        checks[f"uns[{key!r}]"] = key in adata.uns and _same(adata.uns[key], ref.uns[key])
    return checks
