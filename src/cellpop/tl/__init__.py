"""Sample-level tools: baselines (pseudobulk, composition, GloScope) and the sample AnnData."""

from ._baselines import cell_type_composition, pseudobulk
from ._gloscope import gloscope
from ._sample_adata import sample_adata, sample_metadata
from ._simulate_bulk import match_compositions, paired_bulk, simulate_bulk

__all__ = [
    "cell_type_composition",
    "gloscope",
    "match_compositions",
    "paired_bulk",
    "pseudobulk",
    "sample_adata",
    "sample_metadata",
    "simulate_bulk",
]
