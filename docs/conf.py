"""Sphinx configuration for the cellpop documentation.

Build (warnings are errors)::

    pip install -e ".[doc]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

Environment variables
---------------------
CELLPOP_DOCS_INTERSPHINX
    ``1`` links type names to the Python, NumPy, pandas, AnnData, scanpy, scvi-tools and PyTorch
    docs through intersphinx (needs the internet to fetch their inventories). Off by default so an
    offline ``-W`` build works; on by default on Read the Docs (``READTHEDOCS=True``); ``0``
    switches it off everywhere.
CELLPOP_DOCS_NITPICKY
    ``1`` warns about every cross-reference that does not resolve (use with intersphinx on).

Tutorial notebooks live in ``tutorials/`` at the repository root. They are copied into
``docs/tutorials/`` (git-ignored) every time this file is loaded, and rendered as saved
(``nb_execution_mode = "off"``): no notebook is executed during a docs build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import warnings
from datetime import datetime
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Import cellpop from the source tree when it is not installed (e.g. a bare checkout).
if importlib.util.find_spec("cellpop") is None:
    sys.path.insert(0, str(ROOT / "src"))


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# -- Project information ------------------------------------------------------------------------

try:
    _info = metadata("cellpop")
    project = _info["Name"]
    release = _info["Version"]
except PackageNotFoundError:  # pragma: no cover - docs built without installing cellpop
    project = "cellpop"
    release = "0.0.0"
author = "cellpop developers"
copyright = f"{datetime.now():%Y}, {author}"
version = release

# -- Tutorials: copy ../tutorials into the source tree ------------------------------------------


def _sync_tutorials() -> list[Path]:
    """Mirror ``tutorials/`` (notebooks and any files they reference) into ``docs/tutorials/``.

    Returns the notebooks now present in ``docs/tutorials/``.
    """
    src = ROOT / "tutorials"
    dst = HERE / "tutorials"
    if dst.exists():
        shutil.rmtree(dst)
    if src.is_dir():
        shutil.copytree(
            src,
            dst,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.h5ad", "*.md"),
        )
    return sorted(dst.glob("*.ipynb")) if dst.is_dir() else []


_tutorial_notebooks = _sync_tutorials()

# autosummary stubs are regenerated on every build: a stub left over from a name that has since
# left a subpackage's ``__all__`` would otherwise be an orphan page (a warning, so -W fails).
shutil.rmtree(HERE / "generated", ignore_errors=True)

# -- General configuration ----------------------------------------------------------------------

needs_sphinx = "7.0"
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
# Optional: type hints in the parameter lists, when the package is installed (`doc` extra).
if importlib.util.find_spec("sphinx_autodoc_typehints") is not None:
    extensions.append("sphinx_autodoc_typehints")
    # sphinx-autodoc-typehints 3.6 calls an API that Sphinx 9 deprecates, once per docstring.
    warnings.filterwarnings("ignore", message=r".*set_application' is deprecated")

templates_path = ["_templates"]
html_static_path = ["_static"] if (HERE / "_static").is_dir() else []
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
]
# .rst first: autosummary writes its generated pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
default_role = "literal"


# -- autodoc / autosummary / napoleon -----------------------------------------------------------

autosummary_generate = True
# List exactly the names in each subpackage's ``__all__`` (imported ones included), so public
# names added to a subpackage show up in the API reference without editing api.md.
autosummary_ignore_module_all = False
autosummary_imported_members = False
autodoc_member_order = "groupwise"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True

typehints_defaults = "braces"
always_document_param_types = False

# -- MyST / myst-nb -----------------------------------------------------------------------------

nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = [
    "colon_fence",
    "deflist",
    "dollarmath",
    "amsmath",
    "html_image",
    "substitution",
]
myst_heading_anchors = 3

# -- Cross-references ---------------------------------------------------------------------------

_use_intersphinx = _env_flag(
    "CELLPOP_DOCS_INTERSPHINX", default=os.environ.get("READTHEDOCS", "").lower() == "true"
)
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if _use_intersphinx:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "pandas": ("https://pandas.pydata.org/pandas-docs/stable/", None),
        "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
        "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
        "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
    }
intersphinx_timeout = 10

nitpicky = _env_flag("CELLPOP_DOCS_NITPICKY", default=False)
# Only references that cannot resolve from these docs (external, no public inventory) go here.
nitpick_ignore: list[tuple[str, str]] = []

# -- HTML output --------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"cellpop {release}"
html_show_sourcelink = True


# -- Pages written in parallel: list them in the index toctree only once they exist -------------

# index.md names every page; a page in this set is dropped from the toctree while its file is
# missing, so the build does not fail on a page that has not been written yet.
OPTIONAL_PAGES = {"datasets", "metrics", "sampleclr", "scjepa", "scproto", "benchmarks"}


def _drop_missing_pages(app, docname: str, source: list[str]) -> None:
    if docname == "tutorials" and not _tutorial_notebooks:
        # tutorials.md globs tutorials/*; with no notebooks yet, show a note instead of an
        # empty toctree (Sphinx's empty-glob warning has no type, so it cannot be suppressed).
        source[0] = re.sub(
            r"```\{toctree\}.*?```",
            "No tutorial notebooks yet.",
            source[0],
            flags=re.DOTALL,
        )
        return
    if docname != "index":
        return
    missing = {
        page
        for page in OPTIONAL_PAGES
        if not any((HERE / f"{page}{ext}").is_file() for ext in (".md", ".rst", ".ipynb"))
    }
    if missing:
        lines = source[0].splitlines(keepends=True)
        source[0] = "".join(line for line in lines if line.strip() not in missing)


# -- Leave out members inherited from torch / Lightning base classes -----------------------------

# cellpop's torch modules subclass ``torch.nn.Module`` (via scvi-tools); listing the ~60 inherited
# ``nn.Module`` / ``LightningModule`` methods on every page buries cellpop's own API, and their
# docstrings belong to other projects. Members of scvi-tools base classes (``train``, ``save``,
# ``load``, ...) stay: they are part of every cellpop model's user API.


_EXTERNAL_PACKAGES = ("torch", "lightning", "pytorch_lightning")


def _external_base_members() -> dict[str, list[object]]:
    bases: list[type] = []
    try:
        import torch

        bases += [torch.nn.Module, torch.utils.data.Dataset, torch.utils.data.Sampler]
    except ImportError:  # pragma: no cover
        pass
    try:
        from lightning.pytorch import LightningDataModule, LightningModule

        bases += [LightningModule, LightningDataModule]
    except ImportError:  # pragma: no cover
        pass
    members: dict[str, list[object]] = {}
    for base in bases:
        for klass in base.__mro__:
            if klass is object:
                continue
            for name, value in vars(klass).items():
                members.setdefault(name, []).append(value)
            # annotated-only instance attributes, e.g. ``nn.Module.training: bool``
            for name in getattr(klass, "__annotations__", {}):
                members.setdefault(name, []).append(_ANNOTATION_ONLY)
    return members


_ANNOTATION_ONLY = object()


_EXTERNAL_MEMBERS: dict[str, list[object]] | None = None


def _defined_in_external_package(obj) -> bool:
    func = getattr(obj, "__func__", obj)
    func = getattr(func, "fget", func)  # properties
    module = getattr(func, "__module__", None) or ""
    return callable(func) and module.split(".")[0] in _EXTERNAL_PACKAGES


def _skip_external_members(app, what, name, obj, skip, options):
    global _EXTERNAL_MEMBERS
    if what not in {"method", "attribute", "property", "class"}:
        return None
    if _EXTERNAL_MEMBERS is None:
        _EXTERNAL_MEMBERS = _external_base_members()
    if name not in _EXTERNAL_MEMBERS:
        return None
    if _defined_in_external_package(obj):
        return True
    for base_value in _EXTERNAL_MEMBERS[name]:
        if getattr(obj, "__func__", obj) is getattr(base_value, "__func__", base_value):
            return True
        if base_value is _ANNOTATION_ONLY and not callable(obj):
            return True
        if isinstance(base_value, str | int | float | bool) and obj == base_value:
            return True
    return None


def _doc_comment_of_reexport(name: str, obj) -> list[str] | None:
    """The ``#:`` doc comment of ``obj`` in the private module that defines it, when ``name``
    (``package.ATTR``) is a re-export of that module's ``ATTR``."""
    from sphinx.pycode import ModuleAnalyzer, PycodeError

    package, _, attr = name.rpartition(".")
    for modname, module in list(sys.modules.items()):
        if not modname.startswith(package + ".") or getattr(module, attr, None) is not obj:
            continue
        try:
            attr_docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in attr_docs:
            return list(attr_docs[("", attr)])
    return None


def _fix_data_docstring(app, what, name, obj, options, lines):
    """Data re-exported from a private module has no doc comment where it is documented, so
    autodoc falls back to the docstring of its type (``dict``, ``str``): replace that by the doc
    comment in the defining module, or drop it."""
    if what not in {"data", "attribute"}:
        return
    type_doc = getattr(type(obj), "__doc__", None) or ""
    type_lines = [line.strip() for line in type_doc.strip().splitlines()]
    if lines and (not type_lines or lines[0].strip() != type_lines[0]):
        return  # a real docstring / doc comment
    lines.clear()
    if what == "data":
        lines.extend(_doc_comment_of_reexport(name, obj) or [])


def setup(app):
    app.connect("source-read", _drop_missing_pages)
    app.connect("autodoc-process-docstring", _fix_data_docstring)
    app.connect("autodoc-skip-member", _skip_external_members)
