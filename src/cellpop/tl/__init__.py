"""Sample-level tools: baselines (pseudobulk, composition, pooled PCA / scVI, GloScope) and the
sample AnnData."""

from ._baselines import cell_type_composition, pooled_pca, pooled_scvi, pseudobulk
from ._gloscope import gloscope
from ._sample_adata import sample_adata, sample_metadata
from ._simulate_bulk import match_compositions, paired_bulk, simulate_bulk

__all__ = [
    "cell_type_composition",
    "gloscope",
    "match_compositions",
    "paired_bulk",
    "pooled_pca",
    "pooled_scvi",
    "pseudobulk",
    "sample_adata",
    "sample_metadata",
    "simulate_bulk",
]
