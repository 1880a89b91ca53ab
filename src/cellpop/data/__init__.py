"""Data layer: input validation, sample-set sampling, device-resident loading, pseudobulk."""

from ._validation import (
    check_counts,
    check_finite,
    check_min_samples,
    check_obs_key,
    check_var_names_match,
    get_input_matrix,
)

__all__ = [
    "check_counts",
    "check_finite",
    "check_min_samples",
    "check_obs_key",
    "check_var_names_match",
    "get_input_matrix",
]
