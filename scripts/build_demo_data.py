"""Build the demo files embedded in the package from their public originals.

Writes, into ``src/cellpop/datasets/_data/`` (or ``--out-dir``):

``stephenson2021_covid_20donors_pca.h5ad``
    the full curated Stephenson 2021 file (20 donors x 500 cells, the authors' 50 PCs), built
    from GloScope's ``example_SCE.rda`` exactly as ``build_stephenson2021_covid_20donors_pca.py``
    does (provenance in ``uns['provenance']``);
``kang2018_ctrl_demo.h5ad``
    a stratified subset of the curated Kang 2018 file (about 2,500 of 12,261 cells, all 8
    donors and cell types, all 1,287 genes), built from muscat's ``kang_se.rda``; the rule is in
    ``uns['subset']``, ``X`` only (the loader restores ``layers['counts']``).

``onek1k_demo.h5ad``, ``hoek2015_sorted_bulk_demo.h5ad``, ``cl-basic_2022-12-15_demo.obo``
    the POPPY demo's small files: 1,644 OneK1K cells on the 190 genes Kang's subset has, the
    14 Hoek 2015 bulk samples on 1,099 of Kang's genes, and the 71 CL 2022-12-15 terms of the
    curation tables plus ancestors (``cellpop.datasets._convert_demo``). The first two need
    ``kang2018_ctrl_demo.h5ad`` built first (their gene lists come from it).

The ``.h5ad`` files are gzip level 9. The script prints their sizes and sha256; paste the sha256 into
``embedded_sha256`` (and ``sha256`` for the demo subset) in ``src/cellpop/datasets/_core.py``.

Usage
    python scripts/build_demo_data.py --raw-dir $CELLPOP_DATA_DIR/raw
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from cellpop.datasets import REGISTRY, convert
from cellpop.datasets._fetch import write_curated

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "cellpop" / "datasets" / "_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    total = 0
    names = (
        "stephenson2021_covid",
        "kang2018_ctrl_demo",
        "onek1k_demo",
        "hoek2015_sorted_bulk_demo",
        "cell_ontology_2022-12-15_demo",
    )
    for name in names:
        info = REGISTRY[name]
        out = args.out_dir / info.filename
        write_curated(convert(name, args.raw_dir / info.original.local_name), out, 9)
        size = out.stat().st_size
        total += size
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        print(f"{name}: {out} {size / 1e6:.2f} MB sha256 {digest}")
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
