"""Torch modules (scvi-tools ``BaseModuleClass``), one per model."""

from ._sampleclr import SampleCLRModule
from ._scjepa import ScJEPAModule
from ._scjepa_classifier import ScJEPAClassifierModule
from ._scproto import ScProtoModule

__all__ = ["SampleCLRModule", "ScJEPAClassifierModule", "ScJEPAModule", "ScProtoModule"]
