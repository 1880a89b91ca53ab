"""Out-of-core cell matrices: rows read in blocks from a backed ``.h5ad``, a zarr store or several
files, never the whole matrix.

A model's input is *on disk* when the registered element is one of anndata's on-disk types: a
backed sparse dataset (:class:`anndata.abc.CSRDataset` / ``CSCDataset``, e.g. ``adata.X`` of
``anndata.read_h5ad(path, backed="r")``), an ``h5py.Dataset`` or a ``zarr.Array`` (dense), or a
:class:`LazyRows` (several files, or columns put in the model's gene order). The data layer then
reads only the rows of each minibatch or sample set (:meth:`LazyRows.rows`), in a background
thread one step ahead of training (:func:`prefetch`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from anndata.abc import CSCDataset, CSRDataset
from scipy import sparse

from ._genes import align_columns
from ._validation import get_input_matrix

BLOCK_ROWS = 4096
"""Rows per block of a streaming pass over an on-disk matrix (value checks, inference)."""

PREFETCH_DEPTH = 2
"""Batches read ahead of the consumer by :func:`prefetch`."""


def _disk_types() -> tuple[type, ...]:
    types: list[type] = [CSRDataset, CSCDataset]
    try:
        import h5py

        types.append(h5py.Dataset)
    except ImportError:  # pragma: no cover - h5py is a dependency of anndata
        pass
    try:
        import zarr

        types.append(zarr.Array)
    except ImportError:  # pragma: no cover - zarr is a dependency of anndata
        pass
    return tuple(types)


def is_on_disk(X) -> bool:
    """Whether ``X`` is an on-disk matrix whose rows are read on demand (see module docs)."""
    return isinstance(X, _disk_types())


def to_memory(X):
    """``X`` read into memory when it is on disk (a backed or zarr matrix), else ``X`` itself.

    For small matrices only (e.g. POPPY's bulk profiles of a backed MuData): sparse on-disk
    matrices become scipy sparse, dense ones a numpy array.
    """
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(X, CSRDataset | CSCDataset):
        return X.to_memory()
    return np.asarray(X) if is_on_disk(X) else X


def _h5_spans(dset, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``dset[start[0]:stop[0]], dset[start[1]:stop[1]], ...`` concatenated, in one HDF5 read
    (a union of hyperslabs; adjacent spans merged)."""
    import h5py

    total = int((stop - start).sum())
    out = np.empty(total, dtype=dset.dtype)
    keep = stop > start
    start, stop = start[keep], stop[keep]
    if total == 0:
        return out
    new = np.concatenate([[True], start[1:] != stop[:-1]])  # a span not continuing the last
    first, last = start[new], np.append(stop[np.flatnonzero(new)[1:] - 1], stop[-1])
    fspace = dset.id.get_space()
    fspace.select_none()
    for s, e in zip(first.tolist(), last.tolist()):
        fspace.select_hyperslab((s,), (e - s,), op=h5py.h5s.SELECT_OR)
    dset.id.read(h5py.h5s.create_simple((total,)), fspace, out)
    return out


def _h5_csr_rows(X: CSRDataset, rows: np.ndarray, indptr: np.ndarray) -> sparse.csr_matrix:
    """Rows ``rows`` (sorted, unique) of a CSR matrix stored in HDF5: two reads in all (data,
    indices), where anndata's reader makes two per row."""
    start, stop = indptr[rows], indptr[rows + 1]
    out_indptr = np.concatenate([[0], np.cumsum(stop - start)])
    data = _h5_spans(X.group["data"], start, stop)
    indices = _h5_spans(X.group["indices"], start, stop)
    return sparse.csr_matrix((data, indices, out_indptr), shape=(len(rows), X.shape[1]))


def _read_sorted(X, rows: np.ndarray, indptr: np.ndarray | None = None):
    """Rows ``rows`` (sorted, unique int64) of one on-disk or in-memory matrix (``indptr``: the
    cached row pointer of an HDF5-stored CSR matrix)."""
    import zarr

    if indptr is not None:
        return _h5_csr_rows(X, rows, indptr)
    if isinstance(X, zarr.Array):
        return X.oindex[rows, :]
    if sparse.issparse(X) or isinstance(X, np.ndarray | CSRDataset | CSCDataset):
        return X[rows]
    return X[rows, :]  # h5py.Dataset: increasing indices, as given


class LazyRows(CSRDataset):
    """Row concatenation of matrices read by row blocks, each with its columns optionally moved.

    An :class:`anndata.abc.CSRDataset`, so an AnnData accepts it as ``X`` or a layer (a
    collection of files, or a query put in the model's gene order, is registered this way
    without reading it).

    Parameters
    ----------
    parts
        Matrices ``(n_i, m_i)`` stacked along rows: on-disk (``CSRDataset``, ``CSCDataset``,
        ``h5py.Dataset``, ``zarr.Array``) or in memory (numpy, scipy sparse).
    positions
        Per part, the column of each output column in that part (``-1``: a zero column) as
        returned by :func:`cellpop.data.gene_positions`, or ``None`` (columns as they are).
        Default: ``None`` for every part.

    Raises
    ------
    ValueError
        If the parts do not have the same number of output columns, or ``positions`` has
        another length than ``parts``.
    """

    def __init__(self, parts: Sequence, positions: Sequence[np.ndarray | None] | None = None):
        self.parts = list(parts)
        self.positions = [None] * len(self.parts) if positions is None else list(positions)
        if len(self.positions) != len(self.parts):
            raise ValueError(f"{len(self.positions)} positions for {len(self.parts)} parts.")
        widths = {
            p.shape[1] if pos is None else len(pos)
            for p, pos in zip(self.parts, self.positions, strict=True)
        }
        if len(widths) != 1:
            raise ValueError(f"parts have different numbers of columns: {sorted(widths)}.")
        sizes = [p.shape[0] for p in self.parts]
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.shape = (int(self.bounds[-1]), widths.pop())
        self.dtype = np.dtype(np.float32)
        self.backend = (
            "zarr" if any(type(p).__module__.startswith("zarr") for p in parts) else "hdf5"
        )
        self._indptrs: dict[int, np.ndarray] = {}

    def _indptr(self, k: int) -> np.ndarray | None:
        """Row pointer of part ``k`` when it is a CSR matrix stored in HDF5 (read once: ``8
        (n_rows + 1)`` bytes), else ``None``."""
        part = self.parts[k]
        stored = isinstance(part, CSRDataset) and not isinstance(part, LazyRows)
        if not (stored and part.backend == "hdf5" and hasattr(part, "group")):
            return None
        if k not in self._indptrs:
            self._indptrs[k] = np.asarray(part.group["indptr"][:], dtype=np.int64)
        return self._indptrs[k]

    def with_columns(self, positions: np.ndarray | None) -> LazyRows:
        """The same rows with output column ``j`` taken from this matrix's column
        ``positions[j]`` (``-1``: zeros; ``None``: ``self``)."""
        if positions is None:
            return self
        pos = np.asarray(positions, dtype=np.int64)
        new = [
            pos if p is None else np.where(pos >= 0, p[np.maximum(pos, 0)], -1)
            for p in self.positions
        ]
        return LazyRows(self.parts, new)

    def _block(self, rows: np.ndarray, dense: bool | None):
        """Rows ``rows`` (sorted, unique) as one float32 block: dense, CSR, or (``None``) CSR
        when a part is stored sparse."""
        if dense is None:
            dense = not any(sparse.issparse(p) or isinstance(p, CSRDataset | CSCDataset)
                            for p in self.parts)  # fmt: skip
        out = []
        part_of = np.searchsorted(self.bounds, rows, side="right") - 1
        for k in np.unique(part_of):
            local = rows[part_of == k] - self.bounds[k]
            block = _read_sorted(self.parts[k], local, self._indptr(k))
            block = align_columns(block, self.positions[k])
            if dense:
                block = block.toarray() if sparse.issparse(block) else np.asarray(block)
                block = block.astype(np.float32, copy=False)
            else:
                block = sparse.csr_matrix(block, dtype=np.float32)
            out.append(block)
        if dense:
            return out[0] if len(out) == 1 else np.concatenate(out)
        return out[0] if len(out) == 1 else sparse.vstack(out, format="csr")

    def rows(self, idx, dense: bool = True):
        """Rows ``idx`` (any order, repeats allowed), read from disk in one sorted pass per part.

        Parameters
        ----------
        idx
            int ``(n,)`` row numbers in ``[0, n_rows)``.
        dense
            ``True``: a float32 ``(n, n_columns)`` numpy array; ``False``: a float32 CSR matrix.

        Raises
        ------
        IndexError
            If a row number is outside ``[0, n_rows)``.
        """
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(f"row numbers must lie in [0, {self.shape[0]}).")
        uniq, inverse = np.unique(idx, return_inverse=True)
        block = self._block(uniq, dense)
        if len(uniq) == len(idx) and (uniq == idx).all():
            return block
        return block[inverse]

    def blocks(
        self, block_rows: int | None = None, dense: bool | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, rows)`` of consecutive blocks of ``block_rows`` rows (default
        :data:`BLOCK_ROWS`), float32, dense or CSR as in :meth:`rows` (``None``: CSR when a
        part is stored sparse)."""
        step = int(block_rows or BLOCK_ROWS)
        for s in range(0, self.shape[0], step):
            yield s, self._block(np.arange(s, min(s + step, self.shape[0])), dense)

    # anndata.abc.CSRDataset API
    def __getitem__(self, index):
        """Rows (and columns) as CSR: ``index`` selects rows, or ``(rows, columns)``; the
        selected rows are read whole, then their columns taken."""
        cols = slice(None)
        if isinstance(index, tuple):
            index, cols = index
        rows = np.atleast_1d(np.arange(self.shape[0])[index])
        out = self.rows(rows, dense=False)
        return out if isinstance(cols, slice) and cols == slice(None) else out[:, cols]

    def to_memory(self):
        """The whole matrix in memory (CSR): what out-of-core training never calls."""
        return self.rows(np.arange(self.shape[0]), dense=False)

    def __repr__(self) -> str:
        return f"LazyRows(shape={self.shape}, parts={len(self.parts)})"


def as_lazy(X, positions: np.ndarray | None = None) -> LazyRows | None:
    """``X`` (on disk) as :class:`LazyRows` with columns ``positions``; ``None`` for an
    in-memory matrix."""
    if isinstance(X, LazyRows):
        return X.with_columns(positions)
    if is_on_disk(X):
        return LazyRows([X], [positions])
    return None


def align_input(X, positions: np.ndarray | None):
    """:func:`cellpop.data.align_columns` that leaves an on-disk ``X`` on disk (a
    :class:`LazyRows` moving columns block by block)."""
    lazy = as_lazy(X, positions)
    return lazy if lazy is not None else align_columns(X, positions)


def aligned_copy(adata: AnnData, genes: pd.Index, layer: str | None, pos: np.ndarray) -> AnnData:
    """A copy of ``adata`` (obs, obsm, uns kept) whose input (``layer``, ``None``: ``X``) has
    exactly ``genes``, column ``j`` from ``adata``'s column ``pos[j]`` (``-1``: zeros); an
    on-disk input stays on disk (:func:`align_input`)."""
    X = align_input(get_input_matrix(adata, layer=layer), pos)
    out = AnnData(
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=genes),
        obsm={k: v for k, v in adata.obsm.items()},
        uns=dict(adata.uns),
    )
    if layer is None:
        out.X = X
    else:
        out.layers[layer] = X
    return out


def check_blocks(X: LazyRows, check: Callable, what: str) -> None:
    """Run ``check(block, what)`` (e.g. :func:`cellpop.data.check_finite`) on every row block:
    one streaming pass, never the whole matrix in memory."""
    for _, block in X.blocks():
        check(block, what)


def streaming_pca(
    X: LazyRows, n_comps: int, transform: Callable | None = None, max_features: int = 20_000
) -> np.ndarray:
    """Exact PCA scores of ``transform(rows)`` in two streaming passes over an on-disk matrix.

    Pass 1 accumulates the feature means and ``X^T X`` (float64), whose centred form is the
    covariance; its top ``n_comps`` eigenvectors (:func:`numpy.linalg.eigh`) are the principal
    axes, as scanpy's ``svd_solver="covariance_eigh"``. Pass 2 projects the centred rows.

    Parameters
    ----------
    X
        ``(n_cells, n_features)`` on-disk matrix.
    n_comps
        Components, ``1 <= n_comps <= n_features``.
    transform
        Row-wise map applied to each dense float32 block before the PCA (e.g. library-size
        normalisation and ``log1p``); ``None``: identity.
    max_features
        Largest ``n_features`` accepted (the ``n_features^2`` float64 Gram matrix is held in
        memory: 20,000 features take 3.2 GB).

    Returns
    -------
    float32 ``(n_cells, n_comps)`` scores; component signs are arbitrary (distances are not).

    Raises
    ------
    ValueError
        If ``n_features > max_features`` (select highly variable genes first).
    """
    n, d = X.shape
    if d > max_features:
        raise ValueError(
            f"an out-of-core PCA of {d} features needs a {d}x{d} matrix in memory (limit "
            f"max_features={max_features}): subset the genes (e.g. highly variable genes) first."
        )
    transform = transform or (lambda b: b)
    total = np.zeros(d)
    gram = np.zeros((d, d))
    for _, block in X.blocks(dense=True):
        block = transform(block).astype(np.float64)
        total += block.sum(0)
        gram += block.T @ block
    mean = total / n
    cov = (gram - n * np.outer(mean, mean)) / max(n - 1, 1)
    _, vecs = np.linalg.eigh(cov)
    axes = vecs[:, ::-1][:, :n_comps]
    out = np.empty((n, axes.shape[1]), dtype=np.float32)
    for s, block in X.blocks(dense=True):
        out[s : s + len(block)] = (transform(block).astype(np.float64) - mean) @ axes
    return out


def prefetch(iterable: Iterable, depth: int = PREFETCH_DEPTH) -> Iterator:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead of the consumer.

    Items come in the same order as from ``iterable`` (which runs entirely in the worker
    thread, so seeded draws are unchanged); an exception in it is raised in the consumer.
    Stopping early (``break``, garbage collection) stops the worker after its current item.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as err:  # handed to the consumer
            q.put((False, err))

    thread = threading.Thread(target=work, daemon=True, name="cellpop-prefetch")
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a worker waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _read_group_elems(group, names: Iterable[str]) -> dict:
    from anndata.io import read_elem

    return {k: read_elem(group[k]) for k in names if k in group}


def _on_disk_elem(elem):
    """A stored matrix element as an on-disk object (sparse dataset or the array itself)."""
    from anndata.io import sparse_dataset

    encoding = elem.attrs.get("encoding-type", "")
    if encoding in ("csr_matrix", "csc_matrix"):
        return sparse_dataset(elem)
    if encoding in ("", "array"):
        return elem
    raise ValueError(f"cannot read {elem.name!r} (encoding {encoding!r}) by rows.")


def read_backed(path: str | Path) -> AnnData:
    """Open an ``.h5ad`` file or a zarr store with ``X`` and every layer left on disk.

    ``obs``, ``var``, ``obsm``, ``obsp``, ``varm`` and ``uns`` are read into memory (they are
    small); ``X`` and the layers stay on disk as anndata's sparse datasets (or h5py/zarr arrays
    when dense), so a cellpop model trained on the result reads row blocks only. Unlike
    ``anndata.read_h5ad(path, backed="r")``, layers are not loaded (a model reading
    ``layer="counts"`` stays out of core), and a zarr store works too (``anndata.read_zarr``
    loads everything). The returned AnnData is not ``isbacked``: keep it read-only.

    Parameters
    ----------
    path
        ``*.h5ad`` (HDF5) or a zarr store directory (``*.zarr``).

    Returns
    -------
    AnnData whose ``X`` and layers are :class:`anndata.abc.CSRDataset` (sparse) or
    ``h5py.Dataset``/``zarr.Array`` (dense); the file stays open while they are referenced.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``X`` or a layer has an encoding that cannot be read by rows.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.is_dir():
        import zarr

        root = zarr.open_group(str(path), mode="r")
    else:
        import h5py

        root = h5py.File(path, "r")
    elems = _read_group_elems(root, ("obs", "var", "obsm", "obsp", "varm", "uns"))
    X = _on_disk_elem(root["X"]) if "X" in root else None
    layers = {}
    if "layers" in root:
        layers = {k: _on_disk_elem(root["layers"][k]) for k in root["layers"].keys()}
    return AnnData(X=X, layers=layers, **elems)


def collection_anndata(collection) -> AnnData:
    """One AnnData over the files of an :class:`anndata.experimental.AnnCollection`, read by rows.

    ``X`` and every layer shared by all files become :class:`LazyRows` (the files' on-disk
    matrices stacked along rows, each file's genes put in the collection's order); ``obs`` is
    the collection's (with its ``label`` column, when given) and ``obsm`` the files' common keys
    concatenated in memory. Build the collection from backed AnnData (``read_h5ad(...,
    backed="r")``) or from :func:`read_backed` so that nothing is loaded; files with other gene
    sets need ``join_vars="inner"`` (anndata's rule).

    Parameters
    ----------
    collection
        An ``AnnCollection``.

    Returns
    -------
    AnnData ``(collection.n_obs, collection.n_vars)``; the files must stay open.

    Raises
    ------
    ValueError
        If the collection has no files.
    """
    adatas = list(collection.adatas)
    if not adatas:
        raise ValueError("the AnnCollection holds no AnnData.")
    var_names = pd.Index(collection.var_names)
    positions = [
        None if pd.Index(a.var_names).equals(var_names) else a.var_names.get_indexer(var_names)
        for a in adatas
    ]

    def stack(get) -> LazyRows:
        return LazyRows([get(a) for a in adatas], positions)

    layer_keys = set.intersection(*(set(a.layers.keys()) for a in adatas))
    obsm_keys = set.intersection(*(set(a.obsm.keys()) for a in adatas))
    obsm = {}
    for k in sorted(obsm_keys):
        vals = [a.obsm[k] for a in adatas]
        if all(isinstance(v, pd.DataFrame) for v in vals):
            continue  # column sets may differ: left out
        obsm[k] = np.concatenate([np.asarray(v) for v in vals])
    obs = collection.obs.copy()
    obs.index = pd.Index(collection.obs_names)
    return AnnData(
        X=stack(lambda a: a.X) if all(a.X is not None for a in adatas) else None,
        obs=obs,
        var=pd.DataFrame(index=var_names),
        obsm=obsm,
        layers={k: stack(lambda a, k=k: a.layers[k]) for k in sorted(layer_keys)},
    )
