"""cellpop.tl."""
