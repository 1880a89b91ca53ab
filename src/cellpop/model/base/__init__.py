"""Bases shared by every cellpop model (:class:`CellpopModel`) and by sample-level models
(:class:`SampleModel`)."""

from ._base import INFERENCE_BATCH_SIZE, CellpopModel, concat_history, seed
from ._sample import SampleModel

__all__ = ["INFERENCE_BATCH_SIZE", "CellpopModel", "SampleModel", "concat_history", "seed"]
