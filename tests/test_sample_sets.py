import numpy as np
import pytest
import torch

from cellpop.data import (
    SampleSetDataModule,
    SampleSets,
    component_quotas,
    eigenvector_centrality,
    inference_cells,
    split_samples,
)


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
    assert torch.equal(x[..., 0], sets.matrix.dense[idx, 0])


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


class _FakeTrainer:
    """What Lightning attaches to a data module under DDP: ``global_rank``, ``world_size`` and
    the ``current_epoch`` the draws are seeded by."""

    def __init__(self, rank, world):
        self.global_rank, self.world_size = rank, world
        self.current_epoch = 0


def _rank_epochs(n_samples, world, batch_size, n_epochs=3):
    """Per rank: one list of per-step sample lists for each of ``n_epochs`` epochs."""
    X = np.arange(n_samples * 4, dtype=np.float32)[:, None]
    sets = SampleSets(X, np.repeat(np.arange(n_samples), 4), n_samples)
    out = []
    for rank in range(world):
        dm = SampleSetDataModule(
            sets, np.arange(n_samples), np.array([]), batch_size=batch_size, n_cells=(2, 4)
        )
        dm.trainer = _FakeTrainer(rank, world)
        epochs = []
        for _ in range(n_epochs):
            loader = dm.train_dataloader()
            steps = [(b["sample"].tolist(), b["x"].shape[2]) for b in loader]
            assert len(steps) == len(loader)  # __len__ tells Lightning the true step count
            epochs.append(steps)
            dm.trainer.current_epoch += 1
        out.append(epochs)
    return out


def test_datamodule_shards_samples_across_ranks():
    # 7 samples on 2 ranks, 2 samples per step: ceil(7 / 2) = 4 samples per rank (one sample
    # repeated as padding), 4 // 2 = 2 steps on BOTH ranks (a plain rank::world split gives 4
    # and 3 samples -> 2 and 1 steps, and DDP would hang on the missing step)
    runs = _rank_epochs(7, world=2, batch_size=2)
    for e in range(3):
        steps = [runs[r][e] for r in range(2)]
        assert [len(s) for s in steps] == [2, 2]
        # the same set size on every rank at every step
        assert [n for _, n in steps[0]] == [n for _, n in steps[1]]
        shards = [[x for s, _ in rank_steps for x in s] for rank_steps in steps]
        assert [len(s) for s in shards] == [4, 4]
        assert set(shards[0]) | set(shards[1]) == set(range(7))  # every sample seen
        assert len(set(shards[0]) & set(shards[1])) == 1  # only the padding repeat is shared
        assert all(len(set(s)) == len(s) for s in shards)  # no sample twice on one rank
    # shards are reshuffled between epochs: rank 0's samples are not the same every epoch
    per_epoch = [frozenset(x for s, _ in runs[0][e] for x in s) for e in range(3)]
    assert len(set(per_epoch)) > 1
    # 3 ranks, 10 samples, batch 3: ceil(10/3) = 4 per rank -> 1 step each
    runs = _rank_epochs(10, world=3, batch_size=3, n_epochs=1)
    assert [len(r[0]) for r in runs] == [1, 1, 1]
    assert set().union(*[set(r[0][0][0]) for r in runs]) == set(range(10))
    # a single process is unchanged: every sample once per epoch, order reshuffled
    (single,) = _rank_epochs(7, world=1, batch_size=2)
    orders = [[x for s, _ in steps for x in s] for steps in single]
    assert all(sorted(o) == list(range(7)) for o in orders) and orders[0] != orders[1]


def _reference_centrality(X, k=15):
    """Eigenvector centrality by networkx on the symmetrised 15-NN graph (independent code)."""
    import networkx as nx
    from sklearn.neighbors import NearestNeighbors

    nbrs = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)
    g = nx.Graph()
    g.add_nodes_from(range(len(X)))
    g.add_edges_from((i, int(j)) for i, row in enumerate(nbrs) for j in row[1:])
    assert nx.is_connected(g)
    c = nx.eigenvector_centrality_numpy(g)
    return np.array([c[i] for i in range(len(X))])


def test_inference_cells_lowest_centrality_and_resampling():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 4)), rng.normal(size=(30, 4))])
    codes = np.repeat([0, 1], [200, 30])
    idx = inference_cells(X, codes, 2, n_cells=50)
    assert idx.shape == (2, 50)
    assert len(set(idx[0])) == 50 and (codes[idx[0]] == 0).all()
    # exactly the 50 cells of lowest centrality (networkx on the same graph): every chosen
    # cell is at most as central as every cell left out
    ref = _reference_centrality(X[:200])
    chosen = np.zeros(200, bool)
    chosen[idx[0]] = True
    assert ref[chosen].max() <= ref[~chosen].min() + 1e-9
    np.testing.assert_allclose(eigenvector_centrality(X[:200]), ref / ref.max(), atol=1e-6)
    assert set(idx[1]) == set(range(200, 230))  # small sample: all cells, then resampled
    assert np.bincount(idx[1] - 200, minlength=30).min() >= 1
    again = inference_cells(X, codes, 2, n_cells=50)
    assert np.array_equal(idx, again)
    rand = inference_cells(X, codes, 2, n_cells=50, method="random", seed=1)
    assert len(set(rand[0])) == 50 and (codes[rand[0]] == 0).all()
    assert not np.array_equal(np.sort(rand[0]), np.sort(idx[0]))
    with pytest.raises(ValueError, match="method must be"):
        inference_cells(X, codes, 2, n_cells=50, method="bogus")
    with pytest.raises(ValueError, match="sample 2 has no cells"):
        inference_cells(X, codes, 3, n_cells=50)


def test_inference_cells_interleaved_samples_match_each_sample_alone():
    # cells of the samples interleaved (as in any real AnnData): every set equals the set
    # chosen from that sample's rows alone, mapped back to the global row numbers
    rng = np.random.default_rng(1)
    X = rng.normal(size=(420, 5))
    codes = rng.permutation(np.repeat([0, 1, 2], [200, 160, 60]))
    idx = inference_cells(X, codes, 3, n_cells=80)
    for s in range(3):
        rows = np.flatnonzero(codes == s)
        alone = inference_cells(X[rows], np.zeros(len(rows), int), 1, n_cells=80, seed=0)[0]
        if len(rows) > 80:
            np.testing.assert_array_equal(idx[s], rows[alone])
        else:  # 60 cells: all of them, then 20 resampled (seeded, so not comparable alone)
            assert set(idx[s]) == set(rows)


def test_inference_cells_disconnected_graph_draws_from_every_component():
    # issue 8: three well-separated clusters of 500 / 375 / 125 cells give a 15-NN graph with
    # three components. The leading eigenvector of the whole graph is ~1e-16 off one component,
    # so "lowest centrality" used to be decided by round-off (0 / 275 / 125 cells kept here).
    rng = np.random.default_rng(0)
    sizes = [500, 375, 125]
    X = np.vstack([rng.normal(size=(m, 10)) + 50.0 * i for i, m in enumerate(sizes)])
    cluster = np.repeat([0, 1, 2], sizes)
    perm = rng.permutation(len(X))  # cells of a cluster are not contiguous
    X, cluster = X[perm], cluster[perm]
    codes = np.zeros(len(X), dtype=np.int64)
    c = eigenvector_centrality(X)
    for k in range(3):  # per-component centrality: every component reaches 1, none is ~0
        assert c[cluster == k].max() == pytest.approx(1.0) and c[cluster == k].min() > 0.05
    idx = inference_cells(X, codes, 1, n_cells=400)[0]
    assert len(set(idx)) == 400
    # quotas proportional to size: 400 * (0.5, 0.375, 0.125)
    assert np.bincount(cluster[idx], minlength=3).tolist() == [200, 150, 50]
    # within each cluster: its lowest-centrality cells
    for k in range(3):
        members = np.flatnonzero(cluster == k)
        chosen = np.isin(members, idx)
        assert c[members][chosen].max() <= c[members][~chosen].min()
    # 333 cells: 166.5 / 124.875 / 41.625 -> floors 166 / 124 / 41, the 2 left over go to the
    # largest remainders (0.875 and 0.625)
    idx = inference_cells(X, codes, 1, n_cells=333)[0]
    assert np.bincount(cluster[idx], minlength=3).tolist() == [166, 125, 42]


def test_component_quotas_largest_remainder():
    assert component_quotas(np.array([500, 375, 125]), 400).tolist() == [200, 150, 50]
    assert component_quotas(np.array([500, 375, 125]), 333).tolist() == [166, 125, 42]
    # equal remainders (1/3 each): the larger component first, then the lower index
    assert component_quotas(np.array([1, 2, 1, 2]), 2).tolist() == [0, 1, 0, 1]
    assert component_quotas(np.array([3, 3, 3]), 2).tolist() == [1, 1, 0]
    assert component_quotas(np.array([7]), 5).tolist() == [5]


def test_split_samples_grouped_and_stratified():
    # 12 samples in 6 batches of 2; labels alternate by batch
    groups = np.repeat(np.arange(6), 2)
    labels = np.repeat(np.array(["x", "y"] * 3), 2)
    for seed in range(5):
        tr, va = split_samples(12, 2 / 3, seed=seed, groups=groups, stratify=labels)
        assert len(va) == 4 and not set(tr) & set(va) and len(tr) + len(va) == 12
        # a batch's samples are on one side only
        assert not set(groups[tr]) & set(groups[va])
        # both labels in the validation set (stratified)
        assert set(labels[va]) == {"x", "y"}
    with pytest.raises(ValueError, match="groups has 3 entries"):
        split_samples(12, 0.5, groups=[0, 1, 2])


def test_sparse_input_stays_sparse_and_draws_equal_dense():
    from scipy import sparse

    rng = np.random.default_rng(0)
    X = rng.poisson(0.3, size=(60, 7)).astype(np.float32)
    codes = np.repeat(np.arange(3), 20)
    dense, csr = SampleSets(X, codes, 3), SampleSets(sparse.csr_matrix(X), codes, 3)
    assert csr.matrix.is_sparse and not hasattr(csr.matrix, "dense")
    a = dense.draw(np.array([0, 2]), 15, torch.Generator().manual_seed(3))
    b = csr.draw(np.array([0, 2]), 15, torch.Generator().manual_seed(3))
    assert torch.equal(a[2], b[2]) and torch.equal(a[0], b[0])
    np.testing.assert_array_equal(b[0].numpy(), X[b[2].numpy()])


def test_rows_by_code_equals_flatnonzero_per_code():
    from cellpop.data._samples import rows_by_code

    codes = np.random.default_rng(0).integers(0, 6, 500)
    codes[codes == 3] = 5  # code 3 has no rows
    groups = rows_by_code(codes, 7)
    assert len(groups) == 7
    for c, rows in enumerate(groups):
        np.testing.assert_array_equal(rows, np.flatnonzero(codes == c))
