"""Shared helpers of the rebuild scripts (not part of the cellpop package).

Each ``scripts/build_*.py`` rebuilds one curated file of the data release from its public
original (see ``scripts/README.md``): it checks the original's sha256, converts it, writes a
gzip-compressed ``.h5ad`` and, with ``--compare``, reports whether the result equals the
released curated file.
"""

from __future__ import annotations

import argparse
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

CL_VERSION = "Cell Ontology release 2022-12-15 (cl-basic)"
HUMAN = {"organism": "Homo sapiens", "organism_ontology_term_id": "NCBITaxon:9606"}
BLOOD = {"tissue": "blood", "tissue_ontology_term_id": "UBERON:0000178"}


def parse_args(doc: str, raw_name: str, out_name: str, extra=None) -> argparse.Namespace:
    """Command line shared by all scripts: ``--raw-dir``, ``--out``, ``--compare``.

    ``extra(parser)`` may add script-specific options.
    """
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-dir", type=Path, required=True, help=f"directory with {raw_name}")
    parser.add_argument("--out", type=Path, required=True, help=f"output file, e.g. {out_name}")
    parser.add_argument(
        "--compare", type=Path, default=None, help="released curated file to compare with"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def checked_input(raw_dir: Path, name: str, sha256: str) -> Path:
    """Path of the original in ``raw_dir`` after checking its pinned sha256."""
    path = raw_dir / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{path}: sha256 {digest} differs from the pinned {sha256}")
    return path


def read_rda(path: Path) -> dict:
    """Read an ``.rda`` file with the pure-Python ``rdata`` package."""
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
    """obs columns from an author-label -> CL mapping table (``uns['cell_type_mapping']``)."""
    table = mapping.set_index("author_cell_type")
    unknown = set(author.unique()) - set(table.index)
    if unknown:
        raise SystemExit(f"author labels without a CL mapping: {sorted(unknown)}")
    cols = ["cell_type", "cell_type_ontology_term_id", "cell_type_ontology_label"]
    out = table.loc[author.to_numpy(), cols].set_index(author.index)
    out["author_cell_type"] = author.to_numpy()
    return out


def mapping_table(rows: list[tuple], author: pd.Series) -> pd.DataFrame:
    """``uns['cell_type_mapping']`` from (author, cell_type, CL ID, CL name, match) rows."""
    cols = [
        "author_cell_type",
        "cell_type",
        "cell_type_ontology_term_id",
        "cell_type_ontology_label",
        "match",
    ]
    table = pd.DataFrame(rows, columns=cols)
    counts = author.value_counts()
    table["n_obs"] = table["author_cell_type"].map(counts).fillna(0).astype(np.int64)
    return table


def write(adata, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(out, compression="gzip")
    print(f"wrote {out}: {adata.n_obs} x {adata.n_vars}")


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


def compare(adata, curated_path: Path | None) -> bool:
    """Print which parts of ``adata`` equal the released curated file; True if all do."""
    if curated_path is None:
        return True
    import anndata as ad

    ref = ad.read_h5ad(curated_path)
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
    for frame, name in ((adata.obs, "obs"), (adata.var, "var")):
        ref_frame = ref.obs if name == "obs" else ref.var
        missing = [c for c in ref_frame.columns if c not in frame.columns]
        differ = [
            c
            for c in ref_frame.columns
            if c in frame.columns
            and not np.array_equal(
                frame[c].astype(str).to_numpy(), ref_frame[c].astype(str).to_numpy()
            )
        ]
        checks[f"{name} columns"] = not missing and not differ
        if missing or differ:
            print(f"  {name}: missing {missing}, differing {differ}")
    missing_uns = [k for k in ref.uns if k not in adata.uns]
    differ_uns = [k for k in ref.uns if k in adata.uns and not _same(adata.uns[k], ref.uns[k])]
    checks["uns"] = not missing_uns and not differ_uns
    if missing_uns or differ_uns:
        print(f"  uns: missing {missing_uns}, differing {differ_uns}")
    for name, ok in checks.items():
        print(f"  {name:24s} {'identical' if ok else 'DIFFERENT'}")
    same = all(checks.values())
    print(f"compare with {curated_path}: {'REPRODUCED' if same else 'NOT reproduced'}")
    return same
