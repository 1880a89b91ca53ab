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


@pytest.mark.gpu
def test_cell_models_train_on_gpu():
    """ScJEPA and ScProto train with accelerator='gpu' and their cell data on the device."""
    from test_scjepa import _adata
    from test_scproto import _synthetic

    from cellpop.model import ScJEPA, ScProto

    a = _adata()
    ScJEPA.setup_anndata(a, sample_key="donor", labels_key="ct")
    jepa = ScJEPA(a)
    jepa.train(max_epochs=2, batch_size=64, accelerator="gpu", enable_progress_bar=False)
    assert next(jepa.module.parameters()).is_cuda
    assert jepa.get_latent_representation().shape == (a.n_obs, 64)

    b = _synthetic()
    ScProto.setup_anndata(b, batch_key="study", labels_key="ct", sample_key="donor")
    proto = ScProto(b, n_prototypes=9, n_neighbors=10)
    proto.train(max_epochs=2, batch_size=120, accelerator="gpu", enable_progress_bar=False)
    assert next(proto.module.parameters()).is_cuda
    meta = proto.get_metacells()
    assert meta.n_obs == 9 and np.isfinite(meta.X).all()
