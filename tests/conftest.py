"""Shared fixtures: tiny synthetic sample-structured data and the real-data directory."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scvi


def _data_dir() -> Path | None:
    d = os.environ.get("CELLPOP_DATA_DIR")
    return Path(d).resolve() if d and Path(d).is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The curated real datasets (``$CELLPOP_DATA_DIR``); skips when absent."""
    d = _data_dir()
    if d is None:
        pytest.skip("CELLPOP_DATA_DIR is not set to the curated data directory")
    return d


@pytest.fixture(autouse=True)
def _seed():
    scvi.settings.seed = 0
    yield


def make_sample_adata(
    n_samples: int = 6, n_cells: int = 60, n_features: int = 8, seed: int = 0
) -> ad.AnnData:
    """Cells from ``n_samples`` donors whose embedding is shifted by a donor-specific offset.

    obs: ``donor_id``, ``disease`` (two classes, half the donors each), ``severity`` (ordinal
    strings), ``age`` (float), ``cell_type`` (3 types); obsm ``X_pca`` (n_features dims).
    """
    rng = np.random.default_rng(seed)
    donors = np.repeat([f"D{i}" for i in range(n_samples)], n_cells)
    disease = np.repeat(["healthy" if i % 2 else "covid" for i in range(n_samples)], n_cells)
    severity = np.repeat([["mild", "moderate", "severe"][i % 3] for i in range(n_samples)], n_cells)
    age = np.repeat(np.linspace(30, 80, n_samples), n_cells)
    offsets = rng.normal(0, 2.0, size=(n_samples, n_features))
    X = offsets.repeat(n_cells, axis=0) + rng.normal(size=(n_samples * n_cells, n_features))
    X[disease == "covid", 0] += 3.0
    obs = pd.DataFrame(
        {
            "donor_id": pd.Categorical(donors),
            "disease": pd.Categorical(disease),
            "severity": severity,
            "age": age,
            "cell_type": pd.Categorical(rng.choice(["T", "B", "Mono"], size=len(donors))),
        },
        index=[f"c{i}" for i in range(len(donors))],
    )
    a = ad.AnnData(X=np.zeros((len(donors), 0), np.float32), obs=obs)
    a.obsm["X_pca"] = X.astype(np.float32)
    return a


@pytest.fixture
def sample_adata() -> ad.AnnData:
    """Six donors x 60 cells x 8-d embedding with sample-level covariates."""
    return make_sample_adata()


if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per xdist worker: workers already use every core
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.gpu`` tests where no CUDA device exists."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def disk_reads(monkeypatch):
    """``arm()``: from then on, record the rows of every on-disk read (small blocks) and fail on
    loading a whole on-disk matrix; returns the list of rows per read."""
    from anndata._core.sparse_dataset import BaseCompressedSparseDataset

    import cellpop.data._lazy as lazy
    import cellpop.model.base._base as base
    from cellpop.data import LazyRows

    def boom(self):
        raise AssertionError("an on-disk matrix was loaded into memory")

    reads, read = [], lazy._read_sorted

    def record(X, rows, indptr=None):
        reads.append(len(rows))
        return read(X, rows, indptr)

    def arm() -> list[int]:
        monkeypatch.setattr(BaseCompressedSparseDataset, "to_memory", boom)
        monkeypatch.setattr(LazyRows, "to_memory", boom)
        monkeypatch.setattr(lazy, "BLOCK_ROWS", 64)
        monkeypatch.setattr(base, "INFERENCE_BATCH_SIZE", 64)
        monkeypatch.setattr(lazy, "_read_sorted", record)
        return reads

    return arm
