"""The Cell Ontology as a small DAG: term look-up, label mapping, pruning, propagation, hops."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ROOT = "CL:0000000"


def _load_pronto(source):
    import pronto

    if isinstance(source, pronto.Ontology):
        return source
    if isinstance(source, str | os.PathLike):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=pronto.warnings.ProntoWarning)
            return pronto.Ontology(os.fspath(source))
    raise TypeError(
        f"ontology must be a pronto.Ontology, a path to an OBO file or None, "
        f"got {type(source).__name__}."
    )


class CellOntology:
    """A Cell Ontology release with the look-ups POPPY needs (paper 004, §2.1, App. A.1).

    Only ``is_a`` edges are followed (``pronto.Term.superclasses``). The official
    ``cl-basic`` edition (default, 2022-12-15) has no ``part_of`` edges, so none are lost; in
    the derived 2026-03-26 file ``is_a`` already merges ``is_a`` and ``part_of``
    (see :func:`cellpop.datasets.cell_ontology`), so there they are followed too.

    Parameters
    ----------
    ontology
        A :class:`pronto.Ontology`, a path to an OBO file, or ``None`` (default) to load
        :func:`cellpop.datasets.cell_ontology` with ``version`` and ``data_dir``.
    version
        Release passed to :func:`cellpop.datasets.cell_ontology` when ``ontology`` is ``None``;
        default ``"2022-12-15"``.
    data_dir
        Directory passed to :func:`cellpop.datasets.cell_ontology` when ``ontology`` is ``None``.
    root
        The root term every used term must descend from; default ``"CL:0000000"`` ("cell"),
        the root named in the paper (App. A.1).

    Attributes
    ----------
    pronto
        The wrapped :class:`pronto.Ontology`.
    root
        The root term ID.

    Raises
    ------
    TypeError
        If ``ontology`` is neither a pronto ontology, a path nor ``None``.
    KeyError, ValueError
        If ``root`` is not a current term of the ontology (as :meth:`check`).
    """

    def __init__(
        self,
        ontology=None,
        *,
        version: str = "2022-12-15",
        data_dir: str | os.PathLike | None = None,
        root: str = ROOT,
    ):
        if ontology is None:
            from cellpop.datasets import cell_ontology

            ontology = cell_ontology(version=version, data_dir=data_dir)
        self.pronto = _load_pronto(ontology)
        self._parents: dict[str, tuple[str, ...]] = {}
        self._obsolete: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._alt: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for t in self.pronto.terms():
            for alt in t.alternate_ids:
                self._alt[alt] = t.id
            if t.obsolete:
                self._obsolete[t.id] = (
                    tuple(sorted(t.replaced_by.ids)),
                    tuple(sorted(t.consider.ids)),
                )
                continue
            self._names[t.id] = t.name or ""
            parents = t.superclasses(distance=1, with_self=False)
            self._parents[t.id] = tuple(sorted(p.id for p in parents if p.id != t.id))
        self._by_name: dict[str, list[str]] = {}
        for tid, name in self._names.items():
            self._by_name.setdefault(name.casefold(), []).append(tid)
        self.root = self.check(root)

    def __repr__(self) -> str:
        version = self.pronto.metadata.data_version or "unknown version"
        return f"CellOntology({len(self._names)} terms, {version}, root={self.root})"

    def __contains__(self, term_id) -> bool:
        return term_id in self._names

    def check(self, term_id: str) -> str:
        """Return ``term_id`` if it names a current (non-obsolete) term.

        Raises
        ------
        TypeError
            If ``term_id`` is not a string.
        KeyError
            If the ID is not in the ontology (the message names the primary ID when
            ``term_id`` is an ``alt_id``).
        ValueError
            If the term is obsolete; the message names its ``replaced_by`` term(s), else its
            ``consider`` term(s), when the ontology gives any.
        """
        if not isinstance(term_id, str):
            raise TypeError(f"Cell Ontology IDs are strings, got {term_id!r}.")
        if term_id in self._names:
            return term_id
        if term_id in self._obsolete:
            replaced_by, consider = self._obsolete[term_id]
            if replaced_by:
                hint = f"; the ontology replaces it by {', '.join(replaced_by)}"
            elif consider:
                hint = f"; the ontology suggests considering {', '.join(consider)}"
            else:
                hint = "; the ontology gives no replacement"
            raise ValueError(f"Cell Ontology term {term_id!r} is obsolete{hint}.")
        if term_id in self._alt:
            raise KeyError(
                f"{term_id!r} is an alternative ID of {self._alt[term_id]!r}; use the primary ID."
            )
        raise KeyError(f"{term_id!r} is not a term of this Cell Ontology.")

    def term(self, term_id: str):
        """The :class:`pronto.Term` of a current term; errors as :meth:`check`."""
        return self.pronto[self.check(term_id)]

    def name(self, term_id: str) -> str:
        """The term's name (``""`` when it has none); errors as :meth:`check`."""
        return self._names[self.check(term_id)]

    def parents(self, term_id: str) -> tuple[str, ...]:
        """Direct ``is_a`` parents (sorted IDs); errors as :meth:`check`."""
        return self._parents[self.check(term_id)]

    def ancestors(self, term_id: str) -> frozenset[str]:
        """All ``is_a`` ancestors of a term, the term itself included; errors as :meth:`check`."""
        todo, seen = [self.check(term_id)], set()
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(self._parents.get(t, ()))
        return frozenset(seen)

    def map_labels(self, labels: Iterable, mapping: Mapping | None = None) -> list[str]:
        """Map cell-type labels to current CL IDs.

        Parameters
        ----------
        labels
            Labels, one per cell or per cell type (e.g. ``adata.obs["cell_type"]``).
        mapping
            ``{label: CL ID}``. ``None`` (default): each label must itself be a CL ID or the
            exact name of a current term (case-insensitive).

        Returns
        -------
        list of str
            The CL ID of each label, in input order.

        Raises
        ------
        KeyError
            Listing every label without a CL ID (missing from ``mapping``, or neither an ID
            nor a term name), or every mapped ID not in the ontology.
        ValueError
            Listing every label whose ID is obsolete, with the replacements the ontology gives,
            or a name shared by several terms.
        """
        labels = list(labels)
        lookup, missing, unknown, bad = {}, [], [], []
        for label in dict.fromkeys(labels):
            if mapping is not None:
                if label not in mapping:
                    missing.append(label)
                    continue
                tid = mapping[label]
            elif isinstance(label, str) and (
                label in self._names or label in self._obsolete or label in self._alt
            ):
                tid = label
            else:
                hits = self._by_name.get(str(label).casefold(), [])
                if not hits:
                    missing.append(label)
                    continue
                if len(hits) > 1:
                    bad.append(f"{label!r} names several terms ({', '.join(hits)})")
                    continue
                tid = hits[0]
            try:
                lookup[label] = self.check(tid)
            except KeyError as err:
                unknown.append(f"{label!r}: {err.args[0]}")
            except (ValueError, TypeError) as err:
                bad.append(f"{label!r}: {err.args[0]}")
        if missing:
            where = "not in mapping" if mapping is not None else "neither a CL ID nor a term name"
            raise KeyError(f"Cell types without a CL ID ({where}): {missing!r}.")
        if unknown:
            raise KeyError("Labels mapped to unknown CL IDs: " + "; ".join(unknown))
        if bad:
            raise ValueError("Labels that do not map to a current CL term: " + "; ".join(bad))
        return [lookup[label] for label in labels]

    def prune(self, term_ids: Iterable[str]) -> PrunedOntology:
        """The sub-DAG of ``term_ids`` and all their ``is_a`` ancestors (paper App. A.1).

        Parameters
        ----------
        term_ids
            The CL IDs in use (compositions' columns); duplicates are dropped, order kept.

        Returns
        -------
        PrunedOntology
            Nodes: the used terms plus every ancestor up to the root; edges: ``is_a`` between
            them.

        Raises
        ------
        KeyError, ValueError, TypeError
            As :meth:`check`, for an unknown / obsolete / non-string ID.
        ValueError
            If ``term_ids`` is empty, or a term does not descend from the root.
        """
        used = tuple(dict.fromkeys(self.check(t) for t in term_ids))
        if not used:
            raise ValueError("prune needs at least one term ID.")
        nodes: set[str] = set()
        for t in used:
            anc = self.ancestors(t)
            if self.root not in anc:
                raise ValueError(
                    f"Term {t!r} ({self._names[t]!r}) does not descend from the root "
                    f"{self.root!r}; it cannot be placed on the ontology graph."
                )
            nodes |= anc
        depth = {self.root: 0}
        order = [self.root]
        for t in order:  # breadth-first from the root gives each node its min depth
            for c in sorted(n for n in nodes if t in self._parents[n]):
                if c not in depth:
                    depth[c] = depth[t] + 1
                    order.append(c)
        terms = tuple(sorted(nodes, key=lambda t: (depth[t], t)))
        parents = {t: tuple(p for p in self._parents[t] if p in nodes) for t in terms}
        return PrunedOntology(
            terms=terms, used=used, parents=parents, names={t: self._names[t] for t in terms}
        )


@dataclass(frozen=True)
class PrunedOntology:
    """A pruned Cell Ontology: used terms plus their ancestors (see :meth:`CellOntology.prune`).

    Attributes
    ----------
    terms
        All nodes, root first, then by depth (min hops from the root) and ID. This is the
        column order of :meth:`propagate` and of :meth:`hop_distances`.
    used
        The terms it was pruned to, in the order given.
    parents
        ``{term: direct is_a parents within the pruned DAG}``.
    names
        ``{term: name}``.
    """

    terms: tuple[str, ...]
    used: tuple[str, ...]
    parents: dict[str, tuple[str, ...]] = field(repr=False)
    names: dict[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"PrunedOntology({len(self.terms)} terms, {len(self.used)} used, root={self.terms[0]})"
        )

    @property
    def n_edges(self) -> int:
        """Number of ``is_a`` edges."""
        return sum(len(p) for p in self.parents.values())

    def index(self, term_ids: Sequence[str]) -> np.ndarray:
        """Positions of ``term_ids`` in :attr:`terms`.

        Raises
        ------
        KeyError
            Naming every ID that is not a node of the pruned ontology.
        """
        pos = {t: i for i, t in enumerate(self.terms)}
        unknown = [t for t in term_ids if t not in pos]
        if unknown:
            raise KeyError(
                f"Terms not in the pruned ontology: {unknown!r}; prune to them first "
                f"(CellOntology.prune)."
            )
        return np.array([pos[t] for t in term_ids], dtype=np.intp)

    def to_networkx(self):
        """The DAG as a :class:`networkx.DiGraph` with edges child → parent (``is_a``)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from((t, {"name": self.names[t]}) for t in self.terms)
        g.add_edges_from((c, p) for c, ps in self.parents.items() for p in ps)
        return g

    def ancestor_matrix(self) -> np.ndarray:
        """``A[u, v] = 1`` if node ``v`` is node ``u`` or an ancestor of it.

        Returns
        -------
        numpy.ndarray
            ``(n_terms, n_terms)`` float64, rows and columns in :attr:`terms` order.
        """
        pos = {t: i for i, t in enumerate(self.terms)}
        a = np.eye(len(self.terms))
        for t in self.terms:
            todo = [t]
            while todo:
                u = todo.pop()
                for p in self.parents[u]:
                    if a[pos[t], pos[p]] == 0:
                        a[pos[t], pos[p]] = 1.0
                        todo.append(p)
        return a

    def hop_distances(self, term_ids: Sequence[str] | None = None) -> np.ndarray:
        """Shortest-path hop counts between terms in the undirected pruned DAG.

        The ground cost of the EMD (paper §2.1: "the shortest path between types k and l in
        the ontology graph"); every ``is_a`` edge counts 1 whichever direction it is walked.

        Parameters
        ----------
        term_ids
            Terms to return (default: all of :attr:`terms`, in that order).

        Returns
        -------
        numpy.ndarray
            ``(k, k)`` float64 hop counts, symmetric with zero diagonal (a metric).

        Raises
        ------
        KeyError
            As :meth:`index`.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import shortest_path

        pos = {t: i for i, t in enumerate(self.terms)}
        rows = [pos[c] for c, ps in self.parents.items() for _ in ps]
        cols = [pos[p] for ps in self.parents.values() for p in ps]
        n = len(self.terms)
        adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
        d = shortest_path(adj, directed=False, unweighted=True)
        if term_ids is not None:
            idx = self.index(list(term_ids))
            d = d[np.ix_(idx, idx)]
        return np.ascontiguousarray(d, dtype=np.float64)

    def propagate(self, compositions) -> pd.DataFrame:
        """Propagate compositions up the hierarchy (paper App. A.1).

        Each node receives the total proportion of the cells whose type is that node or one
        of its descendants; a type with several parents adds its proportion to every ancestor
        once. Rows that sum to one therefore give the root exactly 1.0 (the paper: "such that
        the root node has a proportion of 1.0"). No renormalisation is done here (see
        :func:`cellpop.ontology.composition_distances` for the unit-mass signals the EMD uses).

        Parameters
        ----------
        compositions
            ``(n_samples, n_types)`` :class:`pandas.DataFrame` whose columns are CL IDs that
            are nodes of this pruned ontology (usually :attr:`used`); proportions.

        Returns
        -------
        pandas.DataFrame
            ``(n_samples, n_terms)`` float64, columns :attr:`terms`, same index.

        Raises
        ------
        TypeError
            If ``compositions`` is not a DataFrame.
        KeyError
            If a column is not a node (as :meth:`index`).
        """
        if not isinstance(compositions, pd.DataFrame):
            raise TypeError(
                "compositions must be a pandas DataFrame with CL IDs as columns, "
                f"got {type(compositions).__name__}."
            )
        idx = self.index(list(compositions.columns))
        a = self.ancestor_matrix()[idx]
        values = compositions.to_numpy(dtype=np.float64) @ a
        return pd.DataFrame(values, index=compositions.index, columns=list(self.terms))
