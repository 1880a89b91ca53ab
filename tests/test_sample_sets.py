import numpy as np
import pytest
import torch

from cellpop.data import SampleSetDataModule, SampleSets, inference_cells, split_samples


def _sets():
    X = np.arange(100, dtype=np.float32)[:, None].repeat(3, 1)
    codes = np.repeat(np.arange(4), [10, 20, 30, 40])
    rng = np.random.default_rng(0)
    perm = rng.permutation(100)  # cells of a sample are not contiguous
    return SampleSets(X[perm], codes[perm], 4), codes[perm]


def test_draw_without_replacement_for_large_samples():
    sets, codes = _sets()
    g = torch.Generator().manual_seed(0)
    x, mask, idx = sets.draw(torch.tensor([2, 3]), 25, g)
    assert x.shape == (2, 25, 3) and mask.all()
    assert (codes[idx[0].numpy()] == 2).all() and (codes[idx[1].numpy()] == 3).all()
    assert len(set(idx[0].tolist())) == 25  # no repeats when the sample is large enough
    assert torch.equal(x[..., 0], sets.X[idx, 0])


def test_draw_small_sample_replace_and_mask():
    sets, codes = _sets()
    g = torch.Generator().manual_seed(0)
    x, mask, idx = sets.draw(torch.tensor([0, 3]), 25, g, "replace")
    assert mask.all() and (codes[idx[0].numpy()] == 0).all()
    assert len(set(idx[0].tolist())) <= 10  # resampled with replacement
    x, mask, idx = sets.draw(torch.tensor([0, 3]), 25, g, "mask")
    assert mask.sum(1).tolist() == [10, 25]
    assert sorted(idx[0][mask[0]].tolist()) == sorted(np.flatnonzero(codes == 0).tolist())
    with pytest.raises(ValueError, match="small_sample"):
        sets.draw(torch.tensor([0, 1]), 5, g, "bogus")


def test_draws_are_seeded():
    sets, _ = _sets()
    a = sets.draw(torch.tensor([1, 2, 3]), 15, torch.Generator().manual_seed(3))[2]
    b = sets.draw(torch.tensor([1, 2, 3]), 15, torch.Generator().manual_seed(3))[2]
    c = sets.draw(torch.tensor([1, 2, 3]), 15, torch.Generator().manual_seed(4))[2]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_split_samples():
    tr, va = split_samples(20, 0.9, seed=1)
    assert len(tr) == 18 and len(va) == 2 and not set(tr) & set(va)
    assert np.array_equal(split_samples(20, 0.9, seed=1)[1], va)
    tr, va = split_samples(5, 0.9, seed=1)  # 0.5 validation samples -> no validation
    assert len(tr) == 5 and len(va) == 0
    with pytest.raises(ValueError):
        split_samples(5, 0.0)


def test_datamodule_batches_cover_samples_and_targets():
    sets, _ = _sets()
    targets = {"cls_y": torch.tensor([0, 1, 0, 1])}
    dm = SampleSetDataModule(
        sets, np.arange(4), np.array([]), batch_size=2, n_cells=(5, 7), sample_targets=targets
    )
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    seen = torch.cat([b["sample"] for b in batches]).sort().values
    assert seen.tolist() == [0, 1, 2, 3]
    for b in batches:
        v, bs, n, d = b["x"].shape
        assert (v, bs, d) == (2, 2, 3) and 5 <= n <= 7
        assert torch.equal(b["cls_y"], targets["cls_y"][b["sample"]])
    assert dm.val_dataloader() == []


def test_datamodule_shards_samples_across_ranks():
    sets, _ = _sets()

    class FakeTrainer:
        def __init__(self, rank):
            self.global_rank, self.world_size = rank, 2

    seen = []
    for rank in (0, 1):
        dm = SampleSetDataModule(sets, np.arange(4), np.array([]), batch_size=2, n_cells=(3, 3))
        dm.trainer = FakeTrainer(rank)  # what Lightning attaches under DDP
        seen.append({int(s) for b in dm.train_dataloader() for s in b["sample"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {0, 1, 2, 3}


def test_inference_cells_lowest_centrality_and_resampling():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.normal(size=(30, 4))])
    codes = np.repeat([0, 1], [200, 30])
    idx = inference_cells(X, codes, 2, n_cells=50)
    assert idx.shape == (2, 50)
    assert len(set(idx[0])) == 50 and (codes[idx[0]] == 0).all()
    assert set(idx[1]) == set(range(200, 230))  # small sample: all cells, then resampled
    again = inference_cells(X, codes, 2, n_cells=50)
    assert np.array_equal(idx, again)
