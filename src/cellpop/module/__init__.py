"""Torch modules (scvi-tools ``BaseModuleClass``), one per model."""

from ._sampleclr import SampleCLRModule

__all__ = ["SampleCLRModule"]
from ._scproto import ScProtoModule  # noqa: E402,F401
from ._scjepa import ScJEPAModule  # noqa: E402,F401
