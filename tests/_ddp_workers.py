"""Global-batch losses on one process and on two gloo ranks (CPU), for tests/test_ddp.py.

Every case builds a fixed global batch from a seed, splits it into per-rank shards (of unequal
sizes, so the padded gather is exercised), and evaluates the loss on a shard inside
``cellpop.nn.global_batch``. ``run_case(case, rank, world)`` returns the loss, the optional
extra outputs and the gradients of the shard's leaf tensors (and of shared parameters).
With ``world == 1`` it is the plain one-process loss of the whole global batch.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from cellpop.nn import global_batch, masked_vicreg_variance, sigreg
from cellpop.nn._distributed import world_size
from cellpop.nn._swav import (
    cosine_scores,
    propagation_loss,
    sinkhorn_knopp,
    swapped_prediction_loss,
)

# rows of the global batch each rank holds (rank 0 gets more: shards of unequal size)
SPLIT = {"sigreg": (11, 7), "vicreg": (3, 2), "swav": (15, 9), "sampleclr": (4, 2), "poppy": (3, 3)}
CASES = tuple(SPLIT)
DIM = {"sigreg": 1, "sampleclr": 1}  # dimension of the shards (default 0)
SHARED = ("prototypes",)  # parameters every rank holds whole (DDP averages their gradients)


def _shard(x: torch.Tensor, case: str, rank: int, world: int, dim: int = 0) -> torch.Tensor:
    """Rank ``rank``'s rows of ``x`` along ``dim`` (all rows when ``world == 1``)."""
    if world == 1:
        return x
    sizes = SPLIT[case]
    start = sum(sizes[:rank])
    return x.narrow(dim, start, sizes[rank])


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


def _sigreg(rank, world):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, sum(SPLIT["sigreg"]), 5, generator=g, dtype=torch.float64) * 0.7 + 0.2
    z = _leaf(_shard(z, "sigreg", rank, world, dim=1))  # 3 sets (views) of N cells
    return sigreg(z, num_directions=16, step=7), {}, {"z": z}


def _vicreg(rank, world):
    g = torch.Generator().manual_seed(1)
    b, n, k = sum(SPLIT["vicreg"]), 6, 4
    z = torch.randn(b, n, k, generator=g, dtype=torch.float64) * torch.tensor([0.3, 0.8, 1.5, 0.5])
    mask = torch.rand(b, n, generator=g) < 0.7
    z = _leaf(_shard(z, "vicreg", rank, world))
    mask = _shard(mask, "vicreg", rank, world)
    loss = masked_vicreg_variance(z, mask, gamma=1.2) + masked_vicreg_variance(
        z, mask, gamma=1.2, statistic="var"
    )
    return loss, {}, {"z": z}


def _swav(rank, world):
    g = torch.Generator().manual_seed(2)
    n, d, k = sum(SPLIT["swav"]), 4, 3
    z_t = torch.randn(n, d, generator=g)
    z_s = z_t + 0.5 * torch.randn(n, d, generator=g)
    groups = torch.tensor([0] * 10 + [1] * 11 + [2] * 3)  # group 2 (3 cells) is below 4
    groups = groups[torch.randperm(n, generator=g)]
    protos = torch.nn.Parameter(torch.randn(k, d, generator=g))
    z_t, z_s = (_leaf(_shard(x, "swav", rank, world)) for x in (z_t, z_s))
    groups = _shard(groups, "swav", rank, world)
    scores_t, scores_s = cosine_scores(z_t, protos), cosine_scores(z_s, protos)
    kw = {"epsilon": 0.3, "n_iters": 3, "groups": groups, "min_group_size": 4}
    q_t, q_s = sinkhorn_knopp(scores_t, **kw), sinkhorn_knopp(scores_s, **kw)
    q_plain = sinkhorn_knopp(scores_t, epsilon=0.3, n_iters=50)  # one group (DINO's teacher)
    swav = swapped_prediction_loss(scores_t, scores_s, q_t, q_s, temperature=0.5, groups=groups)
    loss = swav + propagation_loss(z_t, protos)
    extra = {"q_t": q_t, "q_plain": q_plain}
    return loss, extra, {"z_t": z_t, "z_s": z_s, "prototypes": protos}


def _sampleclr(rank, world):
    from cellpop.module import SampleCLRModule

    torch.manual_seed(3)
    module = SampleCLRModule(n_input=5).double()
    g = torch.Generator().manual_seed(3)
    b = sum(SPLIT["sampleclr"])
    z = torch.randn(2, b, 6, generator=g, dtype=torch.float64)  # 2 views of b samples
    sample = torch.tensor([4, 0, 5, 2, 1, 3])  # the batch's sample ids
    prior = torch.rand(6, 6, generator=g, dtype=torch.float64)
    z = _shard(z, "sampleclr", rank, world, dim=1)
    leaf = _leaf(z)
    sample = _shard(sample, "sampleclr", rank, world)
    out = {"z": leaf.reshape(-1, 6), "n_sets": leaf.shape[1], "n_views": 2}
    loss = module.loss({"sample": sample}, out, {}, prior=prior).loss
    return loss, {}, {"z": leaf}


def _poppy(rank, world):
    import torch.nn.functional as F

    from cellpop.module import POPPYModule

    module = POPPYModule(n_cell_input=4, n_genes=5)
    g = torch.Generator().manual_seed(4)
    b = sum(SPLIT["poppy"])
    z_c = F.normalize(torch.randn(b, 6, generator=g, dtype=torch.float64), dim=1)
    z_b = F.normalize(z_c + torch.randn(b, 6, generator=g, dtype=torch.float64), dim=1)
    sample = torch.tensor([2, 5, 0, 1, 4, 3])
    sim = torch.eye(6, dtype=torch.float64) + 0.3 * torch.rand(6, 6, generator=g)
    z_c, z_b = (_leaf(_shard(x, "poppy", rank, world)) for x in (z_c, z_b))
    sample = _shard(sample, "poppy", rank, world)
    out = {"z_cell": z_c, "z_bulk": z_b}
    loss = module.loss({"sample": sample}, out, {}, similarity=sim).loss
    return loss, {}, {"z_cell": z_c, "z_bulk": z_b}


_BUILD = {
    "sigreg": _sigreg,
    "vicreg": _vicreg,
    "swav": _swav,
    "sampleclr": _sampleclr,
    "poppy": _poppy,
}


def run_case(case: str, rank: int = 0, world: int = 1) -> dict:
    """Loss, extra outputs and leaf gradients of ``case`` on rank ``rank`` of ``world``."""
    with global_batch():
        loss, extra, leaves = _BUILD[case](rank, world)
        loss.backward()
    return {
        "loss": loss.detach(),
        "extra": {k: v.detach() for k, v in extra.items()},
        "grad": {k: v.grad.detach().clone() for k, v in leaves.items()},
    }


def worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One gloo rank: every case, results saved to ``out_dir/rank{rank}.pt``."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    try:
        results = {case: run_case(case, rank, world) for case in CASES}
        with global_batch():
            inside = world_size()
            try:  # unseeded SIGReg directions would differ between ranks
                sigreg(torch.randn(4, 3))
                results["sigreg_unseeded"] = "ran"
            except ValueError as e:
                results["sigreg_unseeded"] = str(e)
        results["world_size"] = {"outside": world_size(), "inside": inside}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
