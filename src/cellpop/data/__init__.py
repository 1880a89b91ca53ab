"""Data layer: input validation, sample-set sampling, device-resident loading, pseudobulk."""

from ._cell_loader import CellDataModule, iter_row_batches, split_cells
from ._validation import (
    check_counts,
    check_finite,
    check_min_samples,
    check_obs_key,
    check_var_names_match,
    get_input_matrix,
)

__all__ = [
    "CellDataModule",
    "iter_row_batches",
    "split_cells",
    "check_counts",
    "check_finite",
    "check_min_samples",
    "check_obs_key",
    "check_var_names_match",
    "get_input_matrix",
]

from ._sample_sets import SampleSetDataModule, SampleSets, split_samples

__all__ += ["SampleSetDataModule", "SampleSets", "split_samples"]

from ._inference_cells import eigenvector_centrality, inference_cells

__all__ += ["eigenvector_centrality", "inference_cells"]
