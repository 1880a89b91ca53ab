"""GPU checks (run only where CUDA exists): training on the device, data resident there, and
results that agree with the CPU.

A model trained on one device is embedded on both: the same weights must give the same
embedding on the GPU and on the CPU up to float32 round-off (TF32 is switched off so that GPU
matmuls keep full float32 precision). Training itself is not compared number for number: the
cell draws come from a ``torch.Generator`` on the training device, whose stream differs between
CUDA and CPU.
"""

import numpy as np
import pytest
import torch
from conftest import make_sample_adata

from cellpop.data import SampleSetDataModule, SampleSets, split_samples
from cellpop.model import SampleCLR


@pytest.fixture
def _full_fp32():
    """No TF32 in matmuls/convolutions for the duration of a test."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


def _same_on_gpu_and_cpu(model, get, rtol=1e-4):
    """``get()`` of the same weights on CUDA and on the CPU agree within float32 round-off:
    ``|gpu - cpu| <= rtol * |cpu| + rtol * max|cpu|``. Leaves the model on the CPU."""
    model.to_device("cuda")
    assert next(model.module.parameters()).is_cuda
    on_gpu = np.asarray(get(), dtype=np.float64)
    model.to_device("cpu")
    assert not next(model.module.parameters()).is_cuda
    on_cpu = np.asarray(get(), dtype=np.float64)
    assert on_gpu.shape == on_cpu.shape and np.isfinite(on_gpu).all()
    assert np.abs(on_cpu).max() > 0  # not a trivially equal all-zero output
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=rtol, atol=rtol * np.abs(on_cpu).max())


@pytest.mark.gpu
def test_sample_sets_are_drawn_on_the_gpu():
    a = make_sample_adata()
    codes = a.obs["donor_id"].cat.codes.to_numpy()
    X = a.obsm["X_pca"]
    sets = SampleSets(X, codes, 6).to("cuda")
    dm = SampleSetDataModule(sets, *split_samples(6, 1.0), batch_size=6, n_cells=(20, 30))
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].is_cuda and batch["mask"].is_cuda
    # the on-device draw gathers exactly the CPU rows of the right samples
    gen = torch.Generator(device="cuda").manual_seed(0)
    x, mask, idx = sets.draw(np.array([0, 3, 5]), 25, gen)
    assert x.is_cuda and idx.is_cuda and mask.all()
    idx = idx.cpu().numpy()
    np.testing.assert_array_equal(x.cpu().numpy(), X[idx])
    assert (codes[idx] == np.array([[0], [3], [5]])).all()
    assert all(len(set(row)) == 25 for row in idx)  # 60 cells per donor: no repeats


@pytest.mark.gpu
def test_sampleclr_gpu_training_and_embedding_match_cpu(_full_fp32):
    a = make_sample_adata()
    SampleCLR.setup_anndata(a, sample_key="donor_id", obsm_key="X_pca")
    torch.cuda.reset_peak_memory_stats()
    gpu_model = SampleCLR(a)
    gpu_model.train(max_epochs=3, n_cells=(20, 40), accelerator="gpu", enable_progress_bar=False)
    assert next(gpu_model.module.parameters()).is_cuda
    assert torch.cuda.max_memory_allocated() > 0
    reps = gpu_model.get_sample_representation()
    assert reps.shape == (6, gpu_model.module.n_output) and np.isfinite(reps.to_numpy()).all()
    # GPU-trained weights: the same sample vectors (fixed inference cells) on GPU and CPU
    _same_on_gpu_and_cpu(gpu_model, lambda: gpu_model.get_sample_representation().to_numpy())
    _same_on_gpu_and_cpu(gpu_model, gpu_model.get_latent_representation)
    # CPU-trained weights, embedded on the GPU: the same as on the CPU
    cpu_model = SampleCLR(a)
    cpu_model.train(max_epochs=3, n_cells=(20, 40), accelerator="cpu", enable_progress_bar=False)
    assert not next(cpu_model.module.parameters()).is_cuda
    _same_on_gpu_and_cpu(cpu_model, lambda: cpu_model.get_sample_representation().to_numpy())


@pytest.mark.gpu
def test_cell_models_train_on_gpu_and_embed_as_on_cpu(_full_fp32):
    """ScJEPA and ScProto train with accelerator='gpu' with their cell data on the device, and
    the trained weights embed the same on GPU and CPU."""
    from test_scjepa import _adata
    from test_scproto import _synthetic

    from cellpop.model import ScJEPA, ScProto

    a = _adata()
    ScJEPA.setup_anndata(a, sample_key="donor", labels_key="ct")
    jepa = ScJEPA(a)
    jepa.train(max_epochs=2, batch_size=64, accelerator="gpu", enable_progress_bar=False)
    assert next(jepa.module.parameters()).is_cuda
    assert jepa.get_latent_representation().shape == (a.n_obs, 64)
    _same_on_gpu_and_cpu(jepa, jepa.get_latent_representation)

    b = _synthetic()
    ScProto.setup_anndata(b, batch_key="study", labels_key="ct", sample_key="donor")
    proto = ScProto(b, n_prototypes=9, n_neighbors=10)
    proto.train(max_epochs=2, batch_size=120, accelerator="gpu", enable_progress_bar=False)
    assert next(proto.module.parameters()).is_cuda
    meta = proto.get_metacells()
    assert meta.n_obs == 9 and np.isfinite(meta.X).all()
    _same_on_gpu_and_cpu(proto, proto.get_latent_representation)
    _same_on_gpu_and_cpu(proto, lambda: np.asarray(proto.get_metacells().X))
