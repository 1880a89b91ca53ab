"""Rebuild cl_2026-03-26.obo (derived OBO) from the CL JSON in cellxgene-ontology-guide 1.11.1.

Provenance of the original
    package     cellxgene-ontology-guide 1.11.1 (PyPI wheel
                cellxgene_ontology_guide-1.11.1-py3-none-any.whl), maintained by
                chanzuckerberg/cellxgene-ontology-guide
    path        cellxgene_ontology_guide/data/CL-ontology-v2026-03-26.json.zst
    sha256      ee9b84956ca31195a65f63b6e67e993d58fd3f5fb577a61536dfd122fba06dde (.json.zst)
                0d1af555a00fcfb1652df6274ecb964c9a934d82344de34a91fa2664461abdcb (.json)
    data        Cell Ontology release v2026-03-26 (CC BY 4.0)

The JSON is not in raw/: get it with ``pip download --no-deps cellxgene-ontology-guide==1.11.1``
and unzip that file from the wheel into ``--raw-dir`` (the .json.zst is decompressed with the
``zstandard`` module if installed, else the ``zstd`` command; a decompressed ``.json`` works too).

Conversion: per term (JSON order) id, name (label), def (description), exact synonyms,
``is_obsolete`` and ``replaced_by``; ``is_a`` = the ancestors at distance 1, so is_a and
part_of parents are NOT distinguished and no other relationship is kept.

Usage
    python scripts/build_cl_2026-03-26.py --raw-dir DIR --out cl_2026-03-26.obo \
        [--compare $CELLPOP_DATA_DIR/cl_2026-03-26.obo]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

NAME = "CL-ontology-v2026-03-26.json"
SHA256 = {
    NAME + ".zst": "ee9b84956ca31195a65f63b6e67e993d58fd3f5fb577a61536dfd122fba06dde",
    NAME: "0d1af555a00fcfb1652df6274ecb964c9a934d82344de34a91fa2664461abdcb",
}
HEADER = (
    "format-version: 1.2\n"
    "data-version: cl/releases/v2026-03-26\n"
    "remark: derived from cellxgene-ontology-guide 1.11.1 CL JSON; direct parents = ancestors "
    "at distance 1 (is_a and part_of not distinguished)\n"
    "ontology: cl\n"
)


def load_json(raw_dir: Path) -> dict:
    for name, sha in SHA256.items():
        path = raw_dir / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"{path}: sha256 differs from the pinned {sha}")
        if name.endswith(".zst"):
            try:
                import zstandard

                data = zstandard.ZstdDecompressor().stream_reader(data).read()
            except ImportError:
                if shutil.which("zstd") is None:
                    raise SystemExit("need the zstandard module or the zstd command") from None
                data = subprocess.run(
                    ["zstd", "-dc"], input=data, capture_output=True, check=True
                ).stdout
        return json.loads(data)
    raise SystemExit(f"neither {NAME}.zst nor {NAME} in {raw_dir}")


def quote(text: str) -> str:
    """OBO quoted string: escape backslashes and quotes; newlines become spaces."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", " ")


def to_obo(terms: dict) -> str:
    lines = [HEADER]
    for term_id, term in terms.items():
        lines.append("[Term]")
        lines.append(f"id: {term_id}")
        if term.get("label"):
            lines.append(f"name: {term['label']}")
        if term.get("description"):
            lines.append(f'def: "{quote(term["description"])}" []')
        for synonym in term.get("synonyms", []):
            lines.append(f'synonym: "{quote(synonym)}" EXACT []')
        if term.get("deprecated"):
            lines.append("is_obsolete: true")
        if term.get("replaced_by"):
            lines.append(f"replaced_by: {term['replaced_by']}")
        for parent, distance in term.get("ancestors", {}).items():
            if distance == 1:
                lines.append(f"is_a: {parent}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None)
    args = parser.parse_args()
    text = to_obo(load_json(args.raw_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    if args.compare is not None:
        same = args.out.read_bytes() == args.compare.read_bytes()
        print(
            f"compare with {args.compare}: {'REPRODUCED (byte-identical)' if same else 'NOT reproduced'}"
        )


if __name__ == "__main__":
    main()
