"""Shared command line of the rebuild scripts (not part of the cellpop package).

Each ``scripts/build_*.py`` rebuilds one curated file from its public original with the
converter in :mod:`cellpop.datasets` (``cellpop.datasets.convert``, the code the package runs
when it downloads an original): it checks the original's pinned sha256, converts it, writes the
curated file (gzip-compressed ``.h5ad`` or OBO) and, with ``--compare``, reports whether the
result equals the released curated file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def rebuild(doc: str, name: str, compression_opts: int | None = None):
    """Run the command line ``--raw-dir DIR --out FILE [--compare CURATED]`` for ``name``.

    Returns the converted object (AnnData or OBO bytes); exits with status 1 when
    ``--compare`` finds a difference.
    """
    import anndata as ad

    from cellpop.datasets import REGISTRY, convert
    from cellpop.datasets._curation import compare
    from cellpop.datasets._fetch import write_curated

    original = REGISTRY[name].original
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--raw-dir", type=Path, required=True, help=f"directory holding {original.local_name}"
    )
    parser.add_argument("--out", type=Path, required=True, help="output file")
    parser.add_argument(
        "--compare", type=Path, default=None, help="released curated file to compare with"
    )
    args = parser.parse_args()
    try:
        result = convert(name, args.raw_dir / original.local_name)
    except (OSError, ValueError) as err:
        raise SystemExit(str(err)) from err
    write_curated(result, args.out, compression_opts=compression_opts)
    print(f"wrote {args.out}")
    if args.compare is None:
        return result
    if isinstance(result, bytes):
        same = result == args.compare.read_bytes()
        verdict = "REPRODUCED (byte-identical)" if same else "NOT reproduced"
        print(f"compare with {args.compare}: {verdict}")
    else:
        checks = compare(result, ad.read_h5ad(args.compare))
        for part, ok in checks.items():
            print(f"  {part:40s} {'identical' if ok else 'DIFFERENT'}")
        same = all(checks.values())
        print(f"compare with {args.compare}: {'REPRODUCED' if same else 'NOT reproduced'}")
    if not same:
        sys.exit(1)
    return result
