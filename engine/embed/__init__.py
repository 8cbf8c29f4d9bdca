"""Embedding: the decode -> prepare -> model -> store pipeline that fills the catalog's vectors."""
