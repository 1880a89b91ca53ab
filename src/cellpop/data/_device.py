"""Where data live: a cell matrix on a device (sparse stays sparse) and the placement rule."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse


def storage_device(
    compute: torch.device, nbytes: int, load_to_device, max_fraction: float = 0.5
) -> torch.device:
    """The one placement rule: where to keep a matrix of ``nbytes`` for training on ``compute``.

    ``load_to_device=True``: on ``compute``; ``False``: in host memory (minibatches are copied);
    ``"auto"``: on ``compute`` when it takes less than ``max_fraction`` of the free CUDA memory
    (always on a CPU or a non-CUDA device).
    """
    if compute.type == "cpu" or load_to_device is True:
        return compute
    if load_to_device is False:
        return torch.device("cpu")
    if compute.type == "cuda":
        free, _ = torch.cuda.mem_get_info(compute)
        if nbytes > max_fraction * free:
            return torch.device("cpu")
    return compute


class DeviceMatrix:
    """A cell × feature matrix held as torch tensors (dense, or CSR components) on one device.

    Sparse input stays sparse (CSR) and rows are densified only when gathered (:meth:`rows`),
    with vectorised index operations, on the device that holds them.
    """

    def __init__(self, X, device: torch.device, dtype=torch.float32):
        self.device = device
        self.shape = X.shape
        if sparse.issparse(X):
            X = sparse.csr_matrix(X)
            X.sort_indices()
            self.is_sparse = True
            self.indptr = torch.as_tensor(X.indptr.astype(np.int64), device=device)
            self.indices = torch.as_tensor(X.indices.astype(np.int64), device=device)
            self.data = torch.as_tensor(np.asarray(X.data), dtype=dtype, device=device)
        else:
            self.is_sparse = False
            self.dense = torch.as_tensor(np.asarray(X), dtype=dtype, device=device)

    @staticmethod
    def nbytes(X) -> int:
        """Bytes the matrix takes on the device (float32 values, int64 CSR indices)."""
        if sparse.issparse(X):
            return int(X.nnz) * 12 + (X.shape[0] + 1) * 8
        return int(np.prod(X.shape)) * 4

    @staticmethod
    def nbytes_of(matrix: DeviceMatrix) -> int:
        """Bytes an existing :class:`DeviceMatrix` takes."""
        names = ("indptr", "indices", "data") if matrix.is_sparse else ("dense",)
        return sum(getattr(matrix, n).element_size() * getattr(matrix, n).nelement() for n in names)

    def to(self, device: torch.device | str) -> DeviceMatrix:
        """Move the stored tensors to ``device`` (in place; returns ``self``)."""
        self.device = torch.device(device)
        names = ("indptr", "indices", "data") if self.is_sparse else ("dense",)
        for name in names:
            setattr(self, name, getattr(self, name).to(self.device))
        return self

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Dense float rows ``idx`` (1-D long tensor on ``self.device``), shape (len(idx), n_features)."""
        if not self.is_sparse:
            return self.dense.index_select(0, idx)
        start = self.indptr.index_select(0, idx)
        length = self.indptr.index_select(0, idx + 1) - start
        out = torch.zeros((idx.shape[0], self.shape[1]), dtype=self.data.dtype, device=self.device)
        total = int(length.sum())
        if total == 0:
            return out
        row_of_nz = torch.repeat_interleave(
            torch.arange(idx.shape[0], device=self.device), length, output_size=total
        )
        # position of each non-zero inside its row, then its offset in the CSR arrays
        first = torch.cumsum(length, 0) - length
        within = torch.arange(total, device=self.device) - first.repeat_interleave(
            length, output_size=total
        )
        src = start.repeat_interleave(length, output_size=total) + within
        out[row_of_nz, self.indices.index_select(0, src)] = self.data.index_select(0, src)
        return out
