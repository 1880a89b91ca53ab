"""Data-parallel training: global-batch losses on 2 gloo ranks equal the one-process loss, and a
model trains end to end under Lightning DDP on 2 CPU processes.

Each loss is evaluated on a fixed global batch by one process, and on two ranks holding
shards of unequal size. Every rank must return the one-process loss, and a rank's gradient with
respect to its shard, divided by the number of ranks (DDP averages gradients over ranks),
must equal the one-process gradient of those rows (for shared parameters: the mean over ranks).
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from _ddp_workers import _BUILD, CASES, DIM, SHARED, run_case, worker

pytestmark = pytest.mark.ddp
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_case(ranks: list[dict], case: str) -> None:
    """Every rank's loss, the shard gradients and per-cell outputs against one process."""
    full = run_case(case)
    # the shard alone (no gathering) gives another loss: the check can fail
    alone = _BUILD[case](0, WORLD)[0].detach()
    assert not torch.allclose(alone, full["loss"], rtol=1e-3), case
    for res in ranks:
        torch.testing.assert_close(res[case]["loss"], full["loss"], rtol=1e-5, atol=1e-6)
    for key, g_full in full["grad"].items():
        if key in SHARED:
            g = sum(res[case]["grad"][key] for res in ranks) / WORLD
        else:
            g = torch.cat([res[case]["grad"][key] / WORLD for res in ranks], DIM.get(case, 0))
        torch.testing.assert_close(g, g_full, rtol=1e-4, atol=1e-6, msg=f"{case}: grad {key}")
        assert g_full.abs().max() > 1e-4, f"{case}: {key}"  # a gradient that matters
    for key, v_full in full["extra"].items():  # per-cell outputs: each rank's rows
        v = torch.cat([res[case]["extra"][key] for res in ranks], DIM.get(case, 0))
        torch.testing.assert_close(v, v_full, rtol=1e-4, atol=1e-6, msg=f"{case}: {key}")


def test_two_ranks_give_the_one_process_losses_and_gradients(tmp_path):
    # one test for all cases: one pair of spawned processes (forking a process whose OpenMP
    # threads have run can hang the children), also under pytest-xdist
    torch.multiprocessing.spawn(worker, args=(WORLD, _free_port(), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for case in CASES:  # SIGReg, VICReg variance, SwAV/Sinkhorn, SampleCLR, POPPY
        _check_case(ranks, case)
    # converged one-group Sinkhorn: each of the K = 3 prototypes gets B / K of the global
    # batch's B = 24 cells (not of a rank's own 15 or 9 cells)
    q = [res["swav"]["extra"]["q_plain"] for res in ranks]
    np.testing.assert_allclose(torch.cat(q).sum(0).numpy(), 24 / 3, rtol=1e-3)
    assert not np.allclose(q[0].sum(0).numpy(), 15 / 3, rtol=1e-2)
    # collectives only inside global_batch; unseeded SIGReg refused there
    for res in ranks:
        assert res["world_size"] == {"outside": 1, "inside": WORLD}
        assert "needs step=" in res["sigreg_unseeded"]


@pytest.mark.parametrize("name", ["SampleCLR", "ScProto"])
def test_model_trains_under_lightning_ddp(name):
    # 2 CPU processes (gloo) started by Lightning; the trained weights come back to this process
    import scvi
    from test_contract import make_adata

    from cellpop.model import SampleCLR, ScProto

    adata = make_adata(n_donors=8)
    scvi.settings.seed = 0
    if name == "SampleCLR":
        SampleCLR.setup_anndata(adata, sample_key="donor", obsm_key="X_pca")
        model, kw = SampleCLR(adata), dict(n_cells=(20, 40))
    else:
        ScProto.setup_anndata(adata, sample_key="donor", batch_key="batch", layer="counts")
        model, kw = ScProto(adata, n_prototypes=8, n_neighbors=10, n_pcs=10), dict(batch_size=64)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_spawn",
                enable_progress_bar=False, **kw)  # fmt: skip
    loss = model.history["train_loss"].to_numpy(dtype=float).ravel()
    assert model.is_trained_ and loss.shape == (2,) and np.isfinite(loss).all()
    # the trained weights of rank 0 came back to this process
    after = model.module.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    z = model.get_latent_representation()
    assert np.isfinite(z).all()
