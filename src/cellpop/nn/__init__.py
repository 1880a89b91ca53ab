"""cellpop.nn."""
