"""GPU checks (run only where CUDA exists): training on the device, data resident there."""

import numpy as np
import pytest
import torch
from conftest import make_sample_adata

from cellpop.data import SampleSetDataModule, SampleSets, split_samples
from cellpop.model import SampleCLR


@pytest.mark.gpu
def test_sample_sets_are_drawn_on_the_gpu():
    a = make_sample_adata()
    codes = a.obs["donor_id"].cat.codes.to_numpy()
    sets = SampleSets(a.obsm["X_pca"], codes, 6).to("cuda")
    dm = SampleSetDataModule(sets, *split_samples(6, 1.0), batch_size=6, n_cells=(20, 30))
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].is_cuda and batch["mask"].is_cuda


@pytest.mark.gpu
def test_sampleclr_trains_on_gpu_and_matches_cpu_shapes():
    a = make_sample_adata()
    SampleCLR.setup_anndata(a, sample_key="donor_id", obsm_key="X_pca")
    model = SampleCLR(a)
    model.train(max_epochs=3, n_cells=(20, 40), accelerator="gpu", enable_progress_bar=False)
    assert next(model.module.parameters()).is_cuda
    reps = model.get_sample_representation()
    assert reps.shape == (6, model.module.n_output) and np.isfinite(reps.to_numpy()).all()
    assert torch.cuda.max_memory_allocated() > 0
