"""Guards for dependency pins in pyproject.toml."""

import anndata as ad
import numpy as np
import scanpy as sc


def test_scanpy_neighbors_above_4096_cells():
    """scanpy switches to pynndescent above 4,096 cells; pynndescent 0.7 broke it (pinned < 0.6)."""
    a = ad.AnnData(np.random.default_rng(0).normal(size=(4200, 8)).astype(np.float32))
    sc.pp.neighbors(a, use_rep="X", n_neighbors=10, random_state=0)
    assert a.obsp["distances"].shape == (4200, 4200)
    assert (np.diff(a.obsp["distances"].tocsr().indptr) == 9).all()
