"""Mixins shared by cellpop's sample-level models."""

from ._sample_mixin import SampleMixin, per_sample_mean, sample_codes

__all__ = ["SampleMixin", "per_sample_mean", "sample_codes"]
