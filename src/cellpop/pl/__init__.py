"""Plots of sample representations and cell importance (matplotlib; functions return the Axes)."""

from ._sample import cell_importance_heatmap, metric_bars, sample_embedding

__all__ = ["cell_importance_heatmap", "metric_bars", "sample_embedding"]
