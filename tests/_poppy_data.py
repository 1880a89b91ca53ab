"""Tiny MuData for POPPY tests: test_contract's cells + pseudobulk and in-silico bulk."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from test_contract import make_adata
from test_ontology import TOY_OBO

from cellpop.ontology import CellOntology
from cellpop.tl import paired_bulk

T_CELL, B_CELL, MONO = "CL:0000003", "CL:0000004", "CL:0000006"


@functools.cache
def toy_ontology() -> CellOntology:
    """test_ontology's toy OBO (T cell CL:0000003, B cell CL:0000004, ... under CL:0000000)."""
    path = Path(tempfile.mkdtemp()) / "toy.obo"
    path.write_text(TOY_OBO)
    return CellOntology(path)


def make_mudata(n_donors: int = 6, seed: int = 0, in_silico: bool = True) -> md.MuData:
    """``rna``: make_adata cells (types A/B -> T cell/B cell CL IDs, cohorts = batches);
    ``bulk``: pseudobulk of every donor, plus in-silico mixtures of two sorted profiles."""
    rna = make_adata(n_donors=n_donors, seed=seed)
    rna.obs["ct"] = pd.Categorical(np.where(rna.obs["ct"] == "A", T_CELL, B_CELL))
    rna.obs["cohort"] = rna.obs["batch"]
    sorted_bulk = None
    if in_silico:
        rng = np.random.default_rng(seed + 1)
        X = rng.poisson(np.vstack([np.linspace(0.3, 4, 30), np.linspace(4, 0.3, 30)]) * 20)
        sorted_bulk = ad.AnnData(X.astype(np.float32), var=pd.DataFrame(index=rna.var_names))
        sorted_bulk.obs["cell_type_ontology_term_id"] = [T_CELL, B_CELL]
    bulk = paired_bulk(rna, "donor", "ct", layer="counts", sorted_bulk=sorted_bulk)
    bulk.obs["donor"] = pd.Categorical(bulk.obs["donor"])
    return md.MuData({"rna": rna, "bulk": bulk})
