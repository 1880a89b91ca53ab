"""Data layer: input validation, gene policy, sample bookkeeping and splits, device-resident
loading of cells and of sample sets (in memory or read by row blocks from disk), inference cell
sets."""

from ._cell_loader import (
    PARTNER_BATCH_KEY,
    PARTNER_X_KEY,
    CellDataModule,
    iter_row_batches,
    split_cells,
)
from ._cross_cohort import CrossCohortSampler, check_cohorts
from ._genes import MAX_MISSING_GENE_FRACTION, align_columns, gene_positions
from ._inference_cells import component_quotas, eigenvector_centrality, inference_cells
from ._lazy import LazyRows, collection_anndata, is_on_disk, prefetch, read_backed, to_memory
from ._sample_sets import SampleSetDataModule, SampleSets, split_samples, split_target
from ._samples import per_sample_mean, sample_codes
from ._validation import (
    check_categorical_obs,
    check_constant_within_samples,
    check_counts,
    check_finite,
    check_min_samples,
    check_obs_key,
    check_var_names_match,
    get_input_matrix,
)

__all__ = [
    "CellDataModule",
    "CrossCohortSampler",
    "LazyRows",
    "MAX_MISSING_GENE_FRACTION",
    "PARTNER_BATCH_KEY",
    "PARTNER_X_KEY",
    "SampleSetDataModule",
    "SampleSets",
    "align_columns",
    "check_categorical_obs",
    "check_cohorts",
    "check_constant_within_samples",
    "check_counts",
    "check_finite",
    "check_min_samples",
    "check_obs_key",
    "check_var_names_match",
    "collection_anndata",
    "component_quotas",
    "eigenvector_centrality",
    "gene_positions",
    "get_input_matrix",
    "inference_cells",
    "is_on_disk",
    "to_memory",
    "iter_row_batches",
    "per_sample_mean",
    "prefetch",
    "read_backed",
    "sample_codes",
    "split_cells",
    "split_samples",
    "split_target",
]
