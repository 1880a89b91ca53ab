"""cellpop.pl."""
