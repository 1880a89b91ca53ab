"""cellpop.datasets."""
