"""Locate, download, convert, cache and hash-check the dataset files.

Lookup order for a registered file (see :func:`fetch`):

1. the ``data_dir`` argument,
2. the directory in ``$CELLPOP_DATA_DIR``,
3. the copy embedded in the package (only ``stephenson2021_covid`` and ``kang2018_ctrl_demo``),
4. the user cache (``$CELLPOP_CACHE_DIR`` or ``pooch.os_cache("cellpop")``),
5. the public original, downloaded with :mod:`pooch` from its pinned repository commit
   (``$CELLPOP_ORIGINALS_URL`` or :data:`ORIGINALS_URL`), checked against its pinned sha256,
   converted in the package and cached.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import pooch

from . import _convert_demo, _convert_other, _convert_sc
from ._core import (
    ENV_CACHE_DIR,
    ENV_DATA_DIR,
    ENV_ORIGINALS_URL,
    ORIGINALS_URL,
    REGISTRY,
    DatasetInfo,
)
from ._curation import package_data

#: Registry name -> converter of its public original (returns an AnnData or the OBO's bytes).
CONVERTERS = {
    "stephenson2021_covid": _convert_sc.stephenson2021_covid,
    "kang2018_ctrl": _convert_sc.kang2018_ctrl,
    "kang2018_ctrl_demo": _convert_sc.kang2018_ctrl_demo,
    "onek1k": _convert_sc.onek1k,
    "hoek2015_sorted_bulk": _convert_other.hoek2015_sorted_bulk,
    "cibersortx_wholeblood_bulk": _convert_other.cibersortx_wholeblood_bulk,
    "cell_ontology_2022-12-15": _convert_other.cell_ontology_2022,
    "cell_ontology_2026-03-26": _convert_other.cell_ontology_2026,
    "onek1k_demo": _convert_demo.onek1k_demo,
    "hoek2015_sorted_bulk_demo": _convert_demo.hoek2015_sorted_bulk_demo,
    "cell_ontology_2022-12-15_demo": _convert_demo.cell_ontology_demo,
}
ORIGINALS_SUBDIR = "originals"


def cache_dir() -> Path:
    """Directory of the user cache: ``$CELLPOP_CACHE_DIR`` or ``pooch.os_cache("cellpop")``."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env) if env else Path(pooch.os_cache("cellpop"))


def originals_url() -> str:
    """Base URL of the public originals: ``$CELLPOP_ORIGINALS_URL`` or :data:`ORIGINALS_URL`.

    Always ends in ``/``; the original's ``<owner>/<repo>/<commit>/<path>`` is appended.
    """
    url = os.environ.get(ENV_ORIGINALS_URL) or ORIGINALS_URL
    return url if url.endswith("/") else url + "/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _get_info(name: str) -> DatasetInfo:
    if name not in REGISTRY:
        raise KeyError(f"Unknown dataset {name!r}. Known datasets: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def _accepted(info: DatasetInfo) -> set[str]:
    return {info.sha256} | ({info.embedded_sha256} if info.embedded_sha256 else set())


def _recorded(path: Path) -> str | None:
    """The sha256 cellpop recorded next to a file it built (``<file>.sha256``), if any."""
    sidecar = _sidecar(path)
    return sidecar.read_text().strip() if sidecar.is_file() else None


def _check_local(info: DatasetInfo, path: Path) -> Path:
    actual = _sha256(path)
    if actual not in _accepted(info) and actual != _recorded(path):
        raise ValueError(
            f"File {str(path)!r} for dataset {info.name!r} does not match the pinned sha256: "
            f"expected {info.sha256}, got {actual}. Replace it with the released file, or remove "
            f"it so that the next location (embedded copy / cache / download) is used."
        )
    return path


def _directory(value, what: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist or is not a directory.")
    return path


def embedded_path(name: str) -> Path | None:
    """Path of the copy of dataset ``name`` shipped inside the package, or None.

    Embedded: ``stephenson2021_covid``, the demo subsets ``kang2018_ctrl_demo``,
    ``onek1k_demo``, ``hoek2015_sorted_bulk_demo`` and ``cell_ontology_2022-12-15_demo`` (see
    ``list_datasets()["embedded"]``).

    Raises
    ------
    KeyError
        If ``name`` is not a registered dataset.
    """
    info = _get_info(name)
    if info.embedded_sha256 is None:
        return None
    return package_data(info.filename)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _cached(info: DatasetInfo, path: Path) -> Path | None:
    """The cached file if intact (pinned hash, or the hash recorded when it was written)."""
    if not path.is_file():
        return None
    actual = _sha256(path)
    if actual in _accepted(info) or actual == _recorded(path):
        return path
    warnings.warn(
        f"Cached file {str(path)!r} of dataset {info.name!r} is corrupt (sha256 {actual} is "
        f"neither the pinned one nor the one recorded when it was written); removing it and "
        f"building it again.",
        stacklevel=3,
    )
    path.unlink()
    _sidecar(path).unlink(missing_ok=True)
    return None


def _download_original(info: DatasetInfo, cache: Path, progressbar: bool) -> Path:
    import requests  # pooch's own HTTP dependency

    original = info.original
    url = originals_url() + original.url_path
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{original.sha256}",
            fname=original.local_name,
            path=cache / ORIGINALS_SUBDIR,
            progressbar=progressbar,
        )
    except ValueError as err:
        raise ValueError(
            f"The public original {original.local_name!r} of dataset {info.name!r}, downloaded "
            f"from {url}, failed the hash check (expected sha256 {original.sha256}); nothing "
            f"was written to the cache. Details: {err}"
        ) from err
    except requests.exceptions.RequestException as err:
        raise OSError(
            f"Could not download the public original of dataset {info.name!r} from {url} "
            f"({err}). Without network access, put {info.filename!r} into a directory and pass "
            f"it as data_dir= or set ${ENV_DATA_DIR}, or serve a mirror of the originals and "
            f"set ${ENV_ORIGINALS_URL}."
        ) from err
    return Path(path)


def convert(name: str, original_path: str | os.PathLike):
    """Convert the public original of dataset ``name`` into its curated form.

    Parameters
    ----------
    name
        Registry name (index of :func:`cellpop.datasets.list_datasets`).
    original_path
        Local copy of the original (``list_datasets()["original_url"]``).

    Returns
    -------
    anndata.AnnData or bytes
        The curated AnnData (``.h5ad`` datasets) or the OBO file's bytes (Cell Ontology).

    Raises
    ------
    KeyError
        If ``name`` is not a registered dataset.
    ValueError
        If the file's sha256 differs from the original's pinned one, or its content does not
        have the expected structure.
    """
    info = _get_info(name)
    path = Path(original_path)
    actual = _sha256(path)
    if actual != info.original.sha256:
        raise ValueError(
            f"{str(path)!r} is not the public original of dataset {name!r}: sha256 {actual}, "
            f"expected {info.original.sha256} ({info.original.repo}@{info.original.commit}:"
            f"{info.original.path})."
        )
    return CONVERTERS[name](path)


def write_curated(result, path: Path, compression_opts: int | None = None) -> None:
    """Write a converter's result (AnnData as gzip ``.h5ad``, or OBO bytes) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(result, bytes):
        path.write_bytes(result)
    else:
        result.write_h5ad(path, compression="gzip", compression_opts=compression_opts)


def _build_into_cache(info: DatasetInfo, target: Path, progressbar: bool) -> Path:
    from tqdm import tqdm

    original = _download_original(info, target.parent, progressbar)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    desc = f"cellpop: {info.original.local_name} -> {info.filename}"
    with tqdm(total=2, desc=desc, unit="step", disable=not progressbar) as bar:
        bar.set_postfix_str("converting")
        result = convert(info.name, original)
        bar.update()
        bar.set_postfix_str("writing")
        try:
            write_curated(result, tmp)
            digest = _sha256(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _sidecar(target).write_text(digest + "\n")
        bar.set_postfix_str("done")
        bar.update()
    return target


def fetch(name: str, data_dir: str | os.PathLike | None = None, progressbar: bool = True) -> Path:
    """Return the local path of a registered data file, building it from its original if needed.

    Parameters
    ----------
    name
        Registry name, one of the index of :func:`list_datasets` (e.g. ``"kang2018_ctrl"``,
        ``"cell_ontology_2022-12-15"``).
    data_dir
        Directory searched first for the released file (under its registry ``filename``). If
        it is not there, the search continues with ``$CELLPOP_DATA_DIR``, the copy embedded in
        the package (``stephenson2021_covid``, ``kang2018_ctrl_demo``), the user cache
        (``$CELLPOP_CACHE_DIR``, default ``pooch.os_cache("cellpop")``); finally the public
        original is downloaded with :mod:`pooch` from its pinned commit
        (``$CELLPOP_ORIGINALS_URL`` or ``https://raw.githubusercontent.com/``, then
        ``<owner>/<repo>/<commit>/<path>``) into ``<cache>/originals/``, checked against its
        pinned sha256, converted (:func:`convert`) and written to the cache together with a
        ``<filename>.sha256`` record of the written file.
    progressbar
        Show tqdm progress bars for the download and the conversion (default True).

    Returns
    -------
    pathlib.Path
        Path of the hash-verified file.

    Raises
    ------
    KeyError
        If ``name`` is not a registered dataset.
    FileNotFoundError
        If ``data_dir`` or ``$CELLPOP_DATA_DIR`` is given but is not an existing directory.
    ValueError
        If a file found in ``data_dir``, ``$CELLPOP_DATA_DIR`` or the package does not match
        its pinned sha256 (in a data directory, a file built by cellpop may instead match its
        ``<filename>.sha256`` record: a copy of the cache is a valid data directory), or the
        downloaded original does not (then nothing is cached). A corrupt file in the cache is
        not an error: it is removed (with a warning) and rebuilt.
    OSError
        If the file is nowhere locally and the download fails (no network, HTTP error).
    """
    info = _get_info(name)
    for directory, what in ((data_dir, "data_dir"), (os.environ.get(ENV_DATA_DIR), ENV_DATA_DIR)):
        if directory:
            candidate = _directory(directory, what) / info.filename
            if candidate.is_file():
                return _check_local(info, candidate)
    embedded = embedded_path(name)
    if embedded is not None:
        if embedded.is_file() and _sha256(embedded) == info.embedded_sha256:
            return embedded
        raise ValueError(
            f"The copy of dataset {name!r} embedded in the package ({str(embedded)!r}) is "
            f"missing or does not match its pinned sha256 {info.embedded_sha256}; reinstall "
            f"cellpop."
        )
    cache = cache_dir()
    target = cache / info.filename
    found = _cached(info, target)
    if found is not None:
        return found
    return _build_into_cache(info, target, progressbar)
