"""cellpop.metrics."""
