"""cellpop.module."""
