"""Sample-level tools: baselines (pseudobulk, composition, pooled PCA / scVI, GloScope) and the
sample AnnData."""

from ._baselines import cell_type_composition, pooled_pca, pooled_scvi, pseudobulk
from ._gloscope import gloscope
from ._sample_adata import sample_adata, sample_metadata

__all__ = [
    "cell_type_composition",
    "gloscope",
    "pooled_pca",
    "pooled_scvi",
    "pseudobulk",
    "sample_adata",
    "sample_metadata",
]
