"""End-to-end tests of the download path of cellpop.datasets: public originals served by a
loopback HTTP mirror (a temporary ``<owner>/<repo>/<commit>/<path>`` tree built from
``$CELLPOP_DATA_DIR/raw``) -> pooch download -> sha256 -> conversion in the package -> cache,
compared with the curated files in ``$CELLPOP_DATA_DIR``."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import anndata as ad
import pytest

from cellpop import datasets
from cellpop.datasets import _fetch
from cellpop.datasets._curation import compare

REFUSED = "http://127.0.0.1:9/"  # discard port: connection refused

# every dataset that is built from a downloaded original (the demo subset only ships embedded)
BUILT = [name for name in datasets.REGISTRY if name != "kang2018_ctrl_demo"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def raw_dir(data_dir) -> Path:
    raw = data_dir / "raw"
    if not raw.is_dir():
        pytest.skip("public originals not available ($CELLPOP_DATA_DIR/raw)")
    return raw


def _serve(directory: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args, **kwargs: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _mirror_tree(root: Path, raw: Path, replace: dict[str, bytes] | None = None) -> Path:
    """``root/<owner>/<repo>/<commit>/<path>`` links to the originals found in ``raw``."""
    for original in datasets.ORIGINALS.values():
        source = raw / original.local_name
        target = root / original.url_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if replace and original.local_name in replace:
            target.write_bytes(replace[original.local_name])
        elif source.is_file():
            target.symlink_to(source)
    return root


@pytest.fixture(scope="module")
def mirror(raw_dir, tmp_path_factory):
    """URL of a loopback server over a tree of the originals in ``$CELLPOP_DATA_DIR/raw``."""
    server, url = _serve(_mirror_tree(tmp_path_factory.mktemp("mirror"), raw_dir))
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No data dir, an empty temporary cache; returns the cache path."""
    monkeypatch.delenv("CELLPOP_DATA_DIR", raising=False)
    monkeypatch.setenv("CELLPOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", REFUSED)
    return tmp_path / "cache"


def _not_embedded(monkeypatch, name):
    info = datasets.REGISTRY[name]
    if info.embedded_sha256 is not None:  # force the download path for the embedded dataset
        monkeypatch.setitem(
            datasets.REGISTRY, name, dataclasses.replace(info, embedded_sha256=None)
        )


@pytest.mark.realdata
@pytest.mark.parametrize("name", BUILT)
def test_download_convert_cache_equals_curated(name, fresh, mirror, raw_dir, data_dir, monkeypatch):
    info = datasets.REGISTRY[name]
    if not (raw_dir / info.original.local_name).is_file():
        pytest.skip(f"{info.original.local_name} not in $CELLPOP_DATA_DIR/raw")
    embedded = _fetch.embedded_path(name)  # the reference of the demo subsets
    _not_embedded(monkeypatch, name)
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", mirror)
    path = datasets.fetch(name, progressbar=False)
    assert path == fresh / info.filename
    original = fresh / "originals" / info.original.local_name
    assert _sha256(original) == info.original.sha256
    assert (fresh / (info.filename + ".sha256")).read_text().strip() == _sha256(path)
    curated = data_dir / info.filename
    if not curated.is_file() and embedded is not None:
        curated = embedded
    if info.filename.endswith(".obo"):
        assert path.read_bytes() == curated.read_bytes()
    else:
        checks = compare(ad.read_h5ad(path), ad.read_h5ad(curated))
        assert all(checks.values()), [part for part, ok in checks.items() if not ok]
    # second call: a cache hit, the mirror unreachable and nothing rewritten
    mtime = path.stat().st_mtime_ns
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", REFUSED)
    assert datasets.fetch(name) == path
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.realdata
def test_corrupt_original_is_rejected_and_nothing_cached(fresh, raw_dir, tmp_path, monkeypatch):
    name = "hoek2015_sorted_bulk"
    local = datasets.REGISTRY[name].original.local_name
    tampered = (raw_dir / local).read_bytes()[:-100] + b"x" * 100
    server, url = _serve(_mirror_tree(tmp_path / "bad", raw_dir, {local: tampered}))
    try:
        monkeypatch.setenv("CELLPOP_ORIGINALS_URL", url)
        with pytest.raises(ValueError, match=rf"'{local}'.*'{name}'.*hash check.*2e7c4e6f"):
            datasets.fetch(name, progressbar=False)
    finally:
        server.shutdown()
        server.server_close()
    cached = [p for p in fresh.rglob("*") if p.is_file()] if fresh.exists() else []
    assert cached == []


@pytest.mark.realdata
def test_corrupt_cache_file_is_removed_and_rebuilt(fresh, mirror, monkeypatch):
    name = "cell_ontology_2022-12-15"
    info = datasets.REGISTRY[name]
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", mirror)
    path = datasets.fetch(name, progressbar=False)
    path.write_bytes(path.read_bytes()[:5000])  # truncated: neither pinned nor recorded hash
    with pytest.warns(UserWarning, match=r"cl-basic_2022-12-15\.obo.*corrupt.*removing"):
        again = datasets.fetch(name, progressbar=False)
    assert again == path and _sha256(path) == info.sha256
    # a corrupt original in the cache is downloaded again by pooch (hash known)
    original = fresh / "originals" / info.original.local_name
    original.write_bytes(b"garbage")
    path.unlink()
    datasets.fetch(name, progressbar=False)
    assert _sha256(original) == info.original.sha256


def test_offline_without_data_is_clear(fresh):
    with pytest.raises(
        OSError, match=r"Could not download the public original of dataset 'onek1k'"
    ):
        datasets.fetch("onek1k", progressbar=False)
    assert not (fresh / "onek1k_40donors.h5ad").exists()


def test_missing_data_dir_is_an_error(fresh, tmp_path, monkeypatch):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match=r"data_dir '.*no_such_dir' does not exist"):
        datasets.onek1k(data_dir=missing)
    monkeypatch.setenv("CELLPOP_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match=r"CELLPOP_DATA_DIR '.*no_such_dir' does not"):
        datasets.fetch("onek1k")


def test_originals_url_override(monkeypatch):
    monkeypatch.delenv("CELLPOP_ORIGINALS_URL", raising=False)
    assert _fetch.originals_url() == "https://raw.githubusercontent.com/"
    monkeypatch.setenv("CELLPOP_ORIGINALS_URL", "http://mirror.example/raw")
    assert _fetch.originals_url() == "http://mirror.example/raw/"
    table = datasets.list_datasets()
    assert table.loc["kang2018_ctrl", "original_url"] == (
        "https://raw.githubusercontent.com/HelenaLC/muscat/"
        "d5acab66a2468bb51368f527b6cd617de8253a67/data/kang_se.rda"
    )


def test_convert_checks_the_original_hash(tmp_path):
    fake = tmp_path / "kang_se.rda"
    fake.write_bytes(b"not the original")
    expected = hashlib.sha256(b"not the original").hexdigest()
    with pytest.raises(ValueError, match=rf"not the public original.*{expected}.*HelenaLC/muscat"):
        datasets.convert("kang2018_ctrl", fake)


def test_data_dir_accepts_a_copy_of_the_cache(fresh, tmp_path):
    """A file cellpop built (recorded sha256 in ``<file>.sha256``) is valid in a data_dir;
    one whose bytes no longer match the record is not."""
    folder = tmp_path / "copy_of_cache"
    folder.mkdir()
    built = folder / "onek1k_40donors.h5ad"
    built.write_bytes(b"pretend this is a rebuilt h5ad")
    record = folder / "onek1k_40donors.h5ad.sha256"
    record.write_text(hashlib.sha256(b"pretend this is a rebuilt h5ad").hexdigest() + "\n")
    assert datasets.fetch("onek1k", data_dir=folder) == built
    built.write_bytes(b"changed afterwards")
    with pytest.raises(ValueError, match=r"onek1k_40donors\.h5ad.*expected 9bd9ff86.*got"):
        datasets.fetch("onek1k", data_dir=folder)
