"""Rebuild cl-basic_2022-12-15.obo: a checked copy of the official cl-basic.obo.

Provenance of the original
    repository  obophenotype/cell-ontology
    commit      a80b777466ddd784c567ed91b42c07f14ee4c732 (merge of the release-2022-12-15 PR)
    path        cl-basic.obo
    git blob    a1a1b09ef6c60dd6eda54238604f4dde32265868
    sha256      4427812138ebe9c7772bf1688f813a2e0097a4323e1b34604840800ab5e19e97
    data        Cell Ontology release 2022-12-15, basic edition (OBO 1.2), CC BY 4.0

The curated file is the original, byte for byte; this script checks the sha256 and copies it.

Usage
    python scripts/build_cl-basic_2022-12-15.py --raw-dir $CELLPOP_DATA_DIR/raw \
        --out cl-basic_2022-12-15.obo [--compare $CELLPOP_DATA_DIR/cl-basic_2022-12-15.obo]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

RAW = "cl-basic.obo"
SHA256 = "4427812138ebe9c7772bf1688f813a2e0097a4323e1b34604840800ab5e19e97"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None)
    args = parser.parse_args()
    source = args.raw_dir / RAW
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{source}: sha256 {digest} differs from the pinned {SHA256}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, args.out)
    print(f"wrote {args.out}")
    if args.compare is not None:
        same = args.out.read_bytes() == args.compare.read_bytes()
        print(
            f"compare with {args.compare}: {'REPRODUCED (byte-identical)' if same else 'NOT reproduced'}"
        )


if __name__ == "__main__":
    main()
