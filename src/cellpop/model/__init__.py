"""cellpop.model."""
