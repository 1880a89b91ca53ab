"""scvi-tools model classes, one per method."""

from ._sampleclr import SampleCLR
from ._scjepa import ScJEPA
from ._scproto import ScProto

__all__ = ["SampleCLR", "ScJEPA", "ScProto"]
