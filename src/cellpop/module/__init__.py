"""Torch modules (scvi-tools ``BaseModuleClass``), one per model."""

from ._poppy import POPPYModule, POPPYPhenotypeModule
from ._population_jepa import PopulationJEPAModule
from ._sampleclr import SampleCLRModule
from ._scjepa import ScJEPAModule
from ._scjepa_classifier import ScJEPAClassifierModule
from ._scproto import ScProtoModule

__all__ = [
    "POPPYModule",
    "POPPYPhenotypeModule",
    "PopulationJEPAModule",
    "SampleCLRModule",
    "ScJEPAClassifierModule",
    "ScJEPAModule",
    "ScProtoModule",
]
