"""Pieces every benchmark suite's ``run()`` shares: settings with overrides, the output folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def suite_settings(
    name: str, defaults: Mapping, overrides: Mapping, seeds: Sequence[int] | None
) -> dict:
    """A suite's settings: ``defaults`` updated with ``overrides`` and, when given, ``seeds``.

    Raises
    ------
    KeyError
        On an override that is not a key of ``defaults`` (the message names it and the known
        keys).
    """
    settings = dict(defaults)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise KeyError(
            f"Unknown {name} benchmark setting(s) {sorted(unknown)}; known: {sorted(settings)}"
        )
    settings.update(overrides)
    if seeds is not None:
        settings["seeds"] = tuple(seeds)
    return settings


def output_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a created :class:`~pathlib.Path`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out
