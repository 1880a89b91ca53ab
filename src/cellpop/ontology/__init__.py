"""cellpop.ontology."""
