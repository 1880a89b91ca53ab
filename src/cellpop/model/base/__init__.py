"""Mixins shared by cellpop's sample-level models."""

from ._sample_mixin import SampleMixin

__all__ = ["SampleMixin"]
