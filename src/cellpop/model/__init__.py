"""scvi-tools model classes, one per method."""

from ._poppy import POPPY
from ._population_jepa import PopulationJEPA
from ._sampleclr import SampleCLR
from ._scjepa import ScJEPA
from ._scproto import ScProto

__all__ = ["POPPY", "PopulationJEPA", "SampleCLR", "ScJEPA", "ScProto"]
