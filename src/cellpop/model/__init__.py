"""scvi-tools model classes, one per method."""

from ._sampleclr import SampleCLR

__all__ = ["SampleCLR"]
from ._scproto import ScProto  # noqa: E402,F401
from ._scjepa import ScJEPA  # noqa: E402,F401
