"""Data layer: input validation, sample-set sampling, device-resident loading, pseudobulk."""

from ._cell_loader import CellDataModule, split_cells
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
    "split_cells",
    "check_counts",
    "check_finite",
    "check_min_samples",
    "check_obs_key",
    "check_var_names_match",
    "get_input_matrix",
]
