"""Paper-style evaluation suites behind ``cellpop demo`` and ``cellpop benchmark``.

Each suite is a function ``run(out_dir, data_dir=None, seeds=..., quick=False) -> pandas.DataFrame``
registered below by dotted path (imported lazily, so the CLI starts fast).
"""

SUITES: dict[str, str] = {
    "population_jepa": "cellpop.benchmark._population_jepa:run",
    "poppy": "cellpop.benchmark._poppy:run",
    "sampleclr": "cellpop.benchmark._sampleclr:run",
    "scjepa": "cellpop.benchmark._scjepa:run",
    "scproto": "cellpop.benchmark._scproto:run",
}


def get_suite(name: str):
    """Return the ``run`` function of benchmark suite ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not a registered suite.
    """
    import importlib

    if name not in SUITES:
        raise KeyError(f"Unknown benchmark suite {name!r}; available: {sorted(SUITES)}")
    mod, fn = SUITES[name].split(":")
    return getattr(importlib.import_module(mod), fn)
