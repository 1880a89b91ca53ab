"""Data layer: input validation, sample-set sampling, device-resident loading, pseudobulk."""

from ._cell_loader import CellDataModule, iter_row_batches, split_cells
from ._inference_cells import component_quotas, eigenvector_centrality, inference_cells
from ._sample_sets import SampleSetDataModule, SampleSets, split_samples
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
    "SampleSetDataModule",
    "SampleSets",
    "check_counts",
    "check_finite",
    "check_min_samples",
    "check_obs_key",
    "check_var_names_match",
    "component_quotas",
    "eigenvector_centrality",
    "get_input_matrix",
    "inference_cells",
    "iter_row_batches",
    "split_cells",
    "split_samples",
]
