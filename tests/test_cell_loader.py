"""Tests of the device-resident cell loader (cellpop.data.CellDataModule)."""

import numpy as np
import pytest
import torch
from scipy import sparse

from cellpop.data import CellDataModule, split_cells


def _data(n=103, g=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.7, size=(n, g)).astype(np.float32)
    donor = np.repeat(np.arange(5), int(np.ceil(n / 5)))[:n]
    return X, donor


def _all_batches(loader):
    return [b for b in loader]


@pytest.mark.parametrize("as_sparse", [False, True])
def test_batches_shapes_and_content(as_sparse):
    X, donor = _data()
    Xin = sparse.csr_matrix(X) if as_sparse else X
    dm = CellDataModule(
        X=Xin, batch=donor, labels=donor % 2, validation_size=0.2, batch_size=16, seed=1
    )
    batches = _all_batches(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader()) == int(np.ceil(dm.n_train / 16))
    for b in batches:
        assert set(b) == {"X", "batch", "labels", "indices", "ind_x"}
        assert b["X"].dtype == torch.float32 and b["X"].shape[1] == 7
        n = b["X"].shape[0]
        assert b["batch"].shape == (n, 1) and b["indices"].shape == (n, 1)
        idx = b["indices"][:, 0].numpy()
        # rows are the right cells (sparse densification included)
        np.testing.assert_array_equal(b["X"].numpy(), X[idx])
        np.testing.assert_array_equal(b["batch"][:, 0].numpy(), donor[idx])
        np.testing.assert_array_equal(b["labels"][:, 0].numpy(), donor[idx] % 2)
    assert batches[0]["X"].shape[0] == 16


def test_every_train_cell_once_per_epoch_and_new_order():
    X, _ = _data()
    dm = CellDataModule(X=X, validation_size=0.1, batch_size=10, seed=3)
    e1 = np.concatenate([b["indices"][:, 0].numpy() for b in dm.train_dataloader()])
    e2 = np.concatenate([b["indices"][:, 0].numpy() for b in dm.train_dataloader()])
    np.testing.assert_array_equal(np.sort(e1), dm.train_idx)
    np.testing.assert_array_equal(np.sort(e2), dm.train_idx)
    assert not np.array_equal(e1, e2)  # a new permutation per epoch
    val = np.concatenate([b["indices"][:, 0].numpy() for b in dm.val_dataloader()])
    np.testing.assert_array_equal(val, dm.val_idx)


def test_drop_last():
    X, _ = _data()
    dm = CellDataModule(X=X, validation_size=0.0, batch_size=10, drop_last=True)
    sizes = [b["X"].shape[0] for b in dm.train_dataloader()]
    assert sizes == [10] * 10 and len(dm.train_dataloader()) == 10
    assert dm.val_dataloader() == []


def test_split_disjoint_and_by_donor():
    X, donor = _data()
    tr, va = split_cells(len(X), 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(X)
    assert len(va) == round(0.2 * len(X))
    dm = CellDataModule(X=X, sample=donor, validation_size=0.2, seed=0)
    assert len(np.intersect1d(donor[dm.train_idx], donor[dm.val_idx])) == 0
    assert len(np.unique(donor[dm.val_idx])) == 1  # 20 % of 5 donors
    assert dm.n_train + dm.n_val == len(X)
    with pytest.raises(ValueError, match="split_by_sample=True needs sample"):
        CellDataModule(X=X, split_by_sample=True)
    with pytest.raises(ValueError, match="cannot hold out whole samples"):
        split_cells(4, 0.5, sample=np.array([0, 0, 0, 0]))


def test_deterministic_under_seed():
    X, donor = _data()

    def order(seed):
        dm = CellDataModule(X=X, sample=donor, validation_size=0.2, batch_size=8, seed=seed)
        return dm.val_idx, np.concatenate(
            [b["indices"][:, 0].numpy() for b in dm.train_dataloader()]
        )

    v1, o1 = order(5)
    v2, o2 = order(5)
    _, o3 = order(6)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(o1, o2)
    assert not np.array_equal(o1, o3)


def test_external_indexing_and_errors():
    X, _ = _data()
    dm = CellDataModule(X=X, external_indexing=[np.arange(50), np.arange(50, 60)], batch_size=64)
    assert dm.n_train == 50 and dm.n_val == 10 and len(dm.test_idx) == 0
    assert [b["X"].shape[0] for b in dm.train_dataloader()] == [50]
    with pytest.raises(ValueError, match="batch has 3 entries"):
        CellDataModule(X=X, batch=[0, 1, 2])
    with pytest.raises(ValueError, match="Give the cell matrix X="):
        CellDataModule()
    with pytest.raises(ValueError, match="load_to_device"):
        CellDataModule(X=X, load_to_device="yes")


def test_ddp_sharding_covers_permutation():
    """Two simulated ranks take disjoint halves (padded by wrapping) of one permutation."""
    X, _ = _data(n=21)

    class _FakeTrainer:
        def __init__(self, rank):
            self.global_rank, self.world_size, self.current_epoch = rank, 2, 0

            class _S:
                root_device = torch.device("cpu")

            self.strategy = _S()

    seen = []
    for rank in (0, 1):
        dm = CellDataModule(X=X, validation_size=0.0, batch_size=4, seed=0)
        dm.trainer = _FakeTrainer(rank)
        idx = np.concatenate([b["indices"][:, 0].numpy() for b in dm.train_dataloader()])
        assert len(idx) == 11
        seen.append(idx)
    allidx = np.concatenate(seen)
    assert set(allidx) == set(range(21)) and len(allidx) == 22  # one cell padded


def test_partners_stay_in_the_cells_split():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    partners = rng.integers(0, 40, size=(40, 5))
    partners[7] = 7  # a cell whose only partner is itself
    dm = CellDataModule(X, validation_size=0.25, batch_size=8, seed=0, partners=partners)
    is_val = np.isin(np.arange(40), dm.val_idx)
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for b in loader:
            idx = b["indices"][:, 0].numpy()
            xp = b["X_pos"].numpy()
            # recover each partner's row index from its features
            pos = [int(np.flatnonzero((X == row).all(1))[0]) for row in xp]
            assert (is_val[pos] == is_val[idx]).all()
            for i, p in zip(idx, pos):
                assert p in partners[i] or p == i
