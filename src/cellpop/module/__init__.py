"""Torch modules (scvi-tools ``BaseModuleClass``), one per model."""

from ._sampleclr import SampleCLRModule
from ._scjepa import ScJEPAModule
from ._scproto import ScProtoModule

__all__ = ["SampleCLRModule", "ScJEPAModule", "ScProtoModule"]
