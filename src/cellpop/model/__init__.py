"""scvi-tools model classes, one per method."""

from ._sampleclr import SampleCLR

__all__ = ["SampleCLR"]
