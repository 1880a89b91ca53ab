"""cellpop.ontology on a hand-built toy ontology (values computed by hand) and on the real CL."""

from __future__ import annotations

import numpy as np
import ot
import pandas as pd
import pytest
from joblib import parallel_config

from cellpop.ontology import (
    CellOntology,
    PrunedOntology,
    _graph_flow,
    adaptive_kernel,
    composition_distances,
)
from cellpop.ontology import _emd as emd_mod

# Undirected graph of the current toy terms (is_a edges):
#
#   T(3)   B(4)                         T = CL:0000003, B = CL:0000004, L = CL:0000002
#      \  /                             I = CL:0000001 immune, M = CL:0000005 myeloid
#      L(2)     M(5) - mono(6)          mono = CL:0000006, bm = CL:0000008 blood monocyte
#        \      /        \              circ = CL:0000007 circulating cell, root = CL:0000000
#         I(1)            bm(8)         bm has two parents (mono, circ): the cycle
#           \             /             root-I-M-mono-bm-circ-root has length 6.
#          root(0) --- circ(7)
#
# Plus: CL:0000009 obsolete, replaced_by T; CL:0000010 obsolete, consider L; CL:0000011 with
# no parent (not under the root); CL:0000099 is an alt_id of B.
TOY_OBO = """format-version: 1.2
ontology: toy

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000001
name: immune cell
is_a: CL:0000000 ! cell

[Term]
id: CL:0000002
name: lymphocyte
is_a: CL:0000001 ! immune cell

[Term]
id: CL:0000003
name: T cell
is_a: CL:0000002 ! lymphocyte

[Term]
id: CL:0000004
name: B cell
alt_id: CL:0000099
is_a: CL:0000002 ! lymphocyte

[Term]
id: CL:0000005
name: myeloid cell
is_a: CL:0000001 ! immune cell

[Term]
id: CL:0000006
name: monocyte
is_a: CL:0000005 ! myeloid cell

[Term]
id: CL:0000007
name: circulating cell
is_a: CL:0000000 ! cell

[Term]
id: CL:0000008
name: blood monocyte
is_a: CL:0000006 ! monocyte
is_a: CL:0000007 ! circulating cell

[Term]
id: CL:0000009
name: obsolete T lymphocyte
is_obsolete: true
replaced_by: CL:0000003

[Term]
id: CL:0000010
name: obsolete lymphoid cell
is_obsolete: true
consider: CL:0000002

[Term]
id: CL:0000011
name: floating cell
"""

ROOT, IMM, LYM, T, B, MYE, MONO, CIRC, BM = (f"CL:000000{i}" for i in range(9))


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> CellOntology:
    path = tmp_path_factory.mktemp("onto") / "toy.obo"
    path.write_text(TOY_OBO)
    return CellOntology(path)


# ---------------------------------------------------------------- terms and labels


def test_term_lookup_and_errors(toy):
    assert toy.name(T) == "T cell"
    assert toy.parents(BM) == (MONO, CIRC)
    assert toy.ancestors(BM) == {BM, MONO, MYE, IMM, ROOT, CIRC}
    assert toy.term(B).id == B
    with pytest.raises(KeyError, match="CL:0001234"):
        toy.check("CL:0001234")
    with pytest.raises(ValueError, match="obsolete; the ontology replaces it by CL:0000003"):
        toy.check("CL:0000009")
    with pytest.raises(ValueError, match="suggests considering CL:0000002"):
        toy.check("CL:0000010")
    with pytest.raises(KeyError, match="alternative ID of 'CL:0000004'"):
        toy.check("CL:0000099")
    with pytest.raises(TypeError):
        toy.check(3)


def test_map_labels(toy):
    assert toy.map_labels(["T cell", "b CELL", T, "T cell"]) == [T, B, T, T]
    assert toy.map_labels(["CD4", "Mono", "CD4"], {"CD4": T, "Mono": MONO}) == [T, MONO, T]
    with pytest.raises(KeyError, match=r"without a CL ID .*\['NK'\]"):
        toy.map_labels(["T cell", "NK"])
    with pytest.raises(KeyError, match=r"not in mapping.*\['Mono'\]"):
        toy.map_labels(["CD4", "Mono"], {"CD4": T})
    with pytest.raises(ValueError, match="replaces it by CL:0000003"):
        toy.map_labels(["CD4"], {"CD4": "CL:0000009"})
    with pytest.raises(KeyError, match="unknown CL IDs"):
        toy.map_labels(["CD4"], {"CD4": "CL:7777777"})


# ---------------------------------------------------------------- pruning and hops


def test_prune_tree_part(toy):
    pr = toy.prune([T, B])
    assert pr.terms == (ROOT, IMM, LYM, T, B)  # by depth, then ID
    assert pr.used == (T, B)
    assert pr.n_edges == 4
    d = pr.hop_distances([T, B, ROOT])
    np.testing.assert_array_equal(d, [[0, 2, 3], [2, 0, 3], [3, 3, 0]])


def test_prune_with_two_parents(toy):
    pr = toy.prune([T, BM, T])
    # BM's second parent brings CIRC in; B (unused) and the orphan stay out
    assert pr.terms == (ROOT, IMM, CIRC, LYM, MYE, BM, T, MONO)
    assert pr.parents[BM] == (MONO, CIRC)
    d = pr.hop_distances()
    assert d.dtype == np.float64 and np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    hops = pr.hop_distances([T, BM, ROOT, MONO, CIRC])
    # T-L-I-root-circ-bm and T-L-I-M-mono-bm are both 5; bm-circ-root 2; mono-bm-circ 2
    np.testing.assert_array_equal(
        hops,
        [[0, 5, 3, 4, 4], [5, 0, 2, 1, 1], [3, 2, 0, 3, 1], [4, 1, 3, 0, 2], [4, 1, 1, 2, 0]],
    )


def test_prune_errors(toy):
    with pytest.raises(ValueError, match="does not descend from the root"):
        toy.prune([T, "CL:0000011"])
    with pytest.raises(ValueError, match="at least one"):
        toy.prune([])
    with pytest.raises(ValueError, match="obsolete"):
        toy.prune(["CL:0000009"])
    with pytest.raises(KeyError, match="not in the pruned ontology"):
        toy.prune([T]).hop_distances([B])


def test_propagate(toy):
    pr = toy.prune([T, BM])
    comp = pd.DataFrame([[0.5, 0.5], [1.0, 0.0]], columns=[T, BM], index=["s1", "s2"])
    out = pr.propagate(comp)
    assert list(out.columns) == list(pr.terms) and list(out.index) == ["s1", "s2"]
    # BM reaches IMM and ROOT along two paths but counts once; the root gets 1.0
    expected = {ROOT: 1, IMM: 1, CIRC: 0.5, LYM: 0.5, MYE: 0.5, BM: 0.5, T: 0.5, MONO: 0.5}
    assert out.loc["s1"].to_dict() == pytest.approx(expected)
    assert out.loc["s2"].to_dict() == pytest.approx(
        {ROOT: 1, IMM: 1, CIRC: 0, LYM: 1, MYE: 0, BM: 0, T: 1, MONO: 0}
    )
    # mass on an internal node propagates from there
    inner = pr.propagate(pd.DataFrame([[1.0]], columns=[MYE]))
    assert inner.loc[0, [MYE, IMM, ROOT, MONO, BM]].tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(TypeError, match="DataFrame"):
        pr.propagate(np.ones((1, 2)))


# ---------------------------------------------------------------- EMD


def test_emd_hand_computed(toy):
    pr = toy.prune([T, B])
    comp = pd.DataFrame([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], columns=[T, B])
    # on the simplex: all of T moves 2 hops to B; half of it for the mixture
    d_plain = composition_distances(comp, pr, propagate=False)
    np.testing.assert_allclose(d_plain, [[0, 2, 1], [2, 0, 1], [1, 1, 0]], atol=1e-12)
    # propagated: T -> {T, L, I, root} at 1/4 each, B likewise; only 1/4 at T moves 2 hops
    d_prop = composition_distances(comp, pr)
    np.testing.assert_allclose(d_prop, [[0, 0.5, 0.25], [0.5, 0, 0.25], [0.25, 0.25, 0]])


def test_emd_through_the_cycle(toy):
    # pure T -> {T, L, I, root} at 1/4; pure BM -> {BM, mono, M, I, root, circ} at 1/6.
    # Bridges T-L and L-I carry 1/4 and 1/2 (0.75); on the 6-cycle the supplies are I: 7/12,
    # root: 1/12 and the demands M, mono, BM, circ: 1/6; the best cycle flow costs 15/12.
    pr = toy.prune([T, BM])
    comp = pd.DataFrame([[1.0, 0.0], [0.0, 1.0]], columns=[T, BM])
    d = composition_distances(comp, pr)
    np.testing.assert_allclose(d, [[0, 2.0], [2.0, 0]], atol=1e-12)
    sig = pr.propagate(comp).to_numpy()
    sig /= sig.sum(1, keepdims=True)
    assert ot.emd2(sig[0], sig[1], pr.hop_distances()) == pytest.approx(2.0)


def test_emd_matches_pot_on_random_compositions(toy, monkeypatch):
    cols = [T, B, MONO, BM, CIRC]
    pr = toy.prune(cols)
    rng = np.random.default_rng(0)
    comp = rng.dirichlet(np.full(len(cols), 0.4), size=25)
    comp[:3] = np.eye(len(cols))[:3]
    comp = pd.DataFrame(comp, columns=cols)
    cost = pr.hop_distances()
    for propagate in (True, False):
        if propagate:
            sig = pr.propagate(comp).to_numpy()
            sig /= sig.sum(1, keepdims=True)
        else:
            sig = np.zeros((len(comp), len(pr.terms)))
            sig[:, pr.index(cols)] = comp.to_numpy()
        ref = np.array([[ot.emd2(a, b, cost) for b in sig] for a in sig])
        fast = composition_distances(comp, pr, propagate=propagate)
        np.testing.assert_allclose(fast, ref, atol=1e-10)
        assert np.array_equal(fast, fast.T) and np.all(np.diag(fast) == 0)
        monkeypatch.setattr(_graph_flow, "numba", None)  # POT network simplex path
        np.testing.assert_allclose(
            composition_distances(comp, pr, propagate=propagate), ref, atol=1e-10
        )
        monkeypatch.undo()


def test_emd_solver_give_up_is_resolved_with_pot(toy, monkeypatch):
    cols = [T, B, BM]
    pr = toy.prune(cols)
    comp = pd.DataFrame(np.random.default_rng(2).dirichlet(np.ones(3), size=6), columns=cols)
    expected = composition_distances(comp, pr)
    graph_rows = emd_mod._graph_rows

    def gives_up(*args):
        out = graph_rows(*args)
        out[0, 4] = np.nan  # as if the solver had hit its phase limit on pair (0, 4)
        return out

    monkeypatch.setattr(emd_mod, "_graph_rows", gives_up)
    np.testing.assert_allclose(composition_distances(comp, pr), expected, atol=1e-12)


def test_emd_parallel_equals_serial(toy):
    cols = [T, B, BM]
    rng = np.random.default_rng(1)
    comp = pd.DataFrame(rng.dirichlet(np.ones(3), size=320), columns=cols)
    serial = composition_distances(comp, toy)  # CellOntology: pruned to the columns
    # threads exercise the row-block split and reassembly without process start-up
    with parallel_config(backend="threading"):
        parallel = composition_distances(comp, toy.prune(cols), n_jobs=2)
    # each row block starts its simplex from a fresh tree: equal up to float64 rounding
    np.testing.assert_allclose(serial, parallel, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(parallel, parallel.T)


def _random_graph_problem(seed: int, n_nodes: int = 30, n_edges: int = 70, n_rows: int = 40):
    """A connected random graph (many cycles), its hop costs, and random unit-mass rows."""
    import networkx as nx
    from scipy.sparse.csgraph import shortest_path

    g = nx.gnm_random_graph(n_nodes, n_edges, seed=seed)
    assert nx.is_connected(g)
    edges = np.array(sorted(g.edges()))
    adj = np.zeros((n_nodes, n_nodes))
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1
    cost = shortest_path(adj, unweighted=True)
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.full(n_nodes, 0.3), size=n_rows)
    return edges, cost, rows


@pytest.mark.parametrize("max_pivots", [_graph_flow._MAX_PIVOTS, 2, 0])
def test_graph_solver_matches_pot_on_random_graphs(max_pivots):
    # network simplex warm-started pair to pair (default), with the primal-dual fallback on
    # many pairs (2 pivots), and primal-dual only (0), against POT on the full cost matrix
    for seed in (0, 1):
        edges, cost, rows = _random_graph_problem(seed)
        graph = _graph_flow.incidence_csr(len(cost), edges)
        out = _graph_flow.graph_emd_rows(rows, np.arange(len(rows) - 1), *graph, len(edges),
                                         max_pivots=max_pivots)  # fmt: skip
        iu = np.triu_indices(len(rows), 1)
        ref = np.array([ot.emd2(rows[i], rows[j], cost) for i, j in zip(*iu, strict=True)])
        np.testing.assert_allclose(out[iu], ref, rtol=0, atol=1e-10)
        assert ref.min() > 0.1  # non-trivial transports
        assert np.all(np.tril(out) == 0)


def test_chain_order_is_a_nearest_neighbour_permutation():
    x = np.array([[0.0, 0], [5, 5], [1, 0], [4, 5], [1, 1]])
    # from row 0: nearest (L1) is row 2 (1), then 4 (1), then 3 (7), then 1 (1)
    assert _graph_flow.chain_order(x).tolist() == [0, 2, 4, 3, 1]


def test_emd_array_input_and_cache(toy, tmp_path):
    pr = toy.prune([T, B])
    arr = np.array([[1.0, 0.0], [0.0, 1.0]])
    path = tmp_path / "emd"
    d = composition_distances(arr, pr, propagate=False, cache=path)
    assert d[0, 1] == pytest.approx(2.0)
    saved = tmp_path / "emd.npz"
    with np.load(saved) as f:
        key = str(f["key"])
    np.savez(saved, key=np.array(key), distances=np.full((2, 2), 7.0))
    # same signals and cost: the cached matrix is returned without solving
    assert np.all(composition_distances(arr, pr, propagate=False, cache=path) == 7.0)
    # other compositions: the key differs, the result is recomputed and overwritten
    d2 = composition_distances(np.array([[1.0, 0], [0.5, 0.5]]), pr, propagate=False, cache=path)
    assert d2[0, 1] == pytest.approx(1.0)
    with np.load(saved) as f:
        assert f["distances"][0, 1] == pytest.approx(1.0)


def test_emd_input_errors(toy):
    pr = toy.prune([T, B])
    ok = pd.DataFrame([[0.5, 0.5]], columns=[T, B], index=["donor1"])
    with pytest.raises(ValueError, match=r"do not sum to 1.*'donor2': 0\.9"):
        composition_distances(
            pd.DataFrame([[0.5, 0.5], [0.5, 0.4]], columns=[T, B], index=["donor1", "donor2"]),
            pr,
        )
    assert composition_distances(ok * (1 + 5e-6), pr).shape == (1, 1)  # within atol
    with pytest.raises(ValueError, match=r"negative proportions \(samples \['donor1'\]"):
        composition_distances(pd.DataFrame([[1.5, -0.5]], columns=[T, B], index=["donor1"]), pr)
    with pytest.raises(ValueError, match="NaN"):
        composition_distances(pd.DataFrame([[np.nan, 1.0]], columns=[T, B]), pr)
    with pytest.raises(ValueError, match=r"\['CL:0000006'\] are not terms of the pruned"):
        composition_distances(pd.DataFrame([[0.5, 0.5]], columns=[T, MONO]), pr)
    with pytest.raises(ValueError, match="duplicated"):
        composition_distances(pd.DataFrame([[0.5, 0.5]], columns=[T, T]), pr)
    with pytest.raises(ValueError, match=r"\(n_samples, 2\)"):
        composition_distances(np.ones((2, 3)) / 3, pr)
    with pytest.raises(ValueError, match="no samples"):
        composition_distances(ok.iloc[:0], pr)
    with pytest.raises(TypeError, match="DataFrame whose columns are CL"):
        composition_distances(np.ones((1, 2)) / 2, toy)
    with pytest.raises(TypeError, match="CellOntology or PrunedOntology"):
        composition_distances(ok, "CL")
    with pytest.raises(ValueError, match="obsolete"):  # pruning a CellOntology to the columns
        composition_distances(pd.DataFrame([[1.0]], columns=["CL:0000009"]), toy)


# ---------------------------------------------------------------- kernel


def test_adaptive_kernel_hand_computed():
    # three samples on a line at 0, 1, 3
    d = np.array([[0.0, 1, 3], [1, 0, 2], [3, 2, 0]])
    # k = 1: sigma = (1, 1, 2); kNN edges 0-1 and 2-1 (union), 0-2 not connected
    s1 = adaptive_kernel(d, k=1)
    e = np.exp
    np.testing.assert_allclose(s1, [[1, e(-1), 0], [e(-1), 1, e(-2)], [0, e(-2), 1]])
    # k = 2 = n - 1 (and any larger k): sigma = (3, 2, 3), complete graph
    s2 = adaptive_kernel(d, k=100)
    expect = [[1, e(-1 / 6), e(-1)], [e(-1 / 6), 1, e(-4 / 6)], [e(-1), e(-4 / 6), 1]]
    np.testing.assert_allclose(s2, expect)
    np.testing.assert_array_equal(adaptive_kernel(d, k=2), s2)


def test_adaptive_kernel_duplicates_and_errors():
    # samples 0 and 1 identical: with k = 1 sigma_0 = sigma_1 = 0 (the limit: 1 at d = 0)
    d = np.array([[0.0, 0, 2], [0, 0, 2], [2, 2, 0]])
    s = adaptive_kernel(d, k=1)
    np.testing.assert_allclose(s, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="square"):
        adaptive_kernel(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n >= 2"):
        adaptive_kernel(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="not symmetric"):
        adaptive_kernel(np.array([[0.0, 1], [2, 0]]))
    with pytest.raises(ValueError, match="negative"):
        adaptive_kernel(np.array([[0.0, -1], [-1, 0]]))
    with pytest.raises(ValueError, match="diagonal"):
        adaptive_kernel(np.array([[1.0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        adaptive_kernel(np.array([[0.0, np.nan], [np.nan, 0]]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        adaptive_kernel(np.array([[0.0, 1], [1, 0]]), k=0)
    with pytest.raises(TypeError, match="integer"):
        adaptive_kernel(np.array([[0.0, 1], [1, 0]]), k=1.5)


def test_emd_pipeline_types(toy):
    assert isinstance(toy.prune([T]), PrunedOntology)
    assert emd_mod._balanced_blocks(10, 3)[0][0] == 0
    blocks = emd_mod._balanced_blocks(1000, 8)
    work = [sum(999 - i for i in b) for b in blocks]
    assert np.concatenate(blocks).tolist() == list(range(999))
    assert max(work) < 1.05 * sum(work) / len(work)


# ---------------------------------------------------------------- real Cell Ontology


@pytest.mark.realdata
def test_real_cell_ontology_kang(data_dir):
    import anndata as ad

    co = CellOntology(data_dir=data_dir)
    obs = ad.read_h5ad(data_dir / "kang2018_ctrl_8donors.h5ad", backed="r").obs
    ids = co.map_labels(obs["cell_type_ontology_term_id"].astype(str))
    used = sorted(set(ids))
    assert len(used) == 8
    cd4, cd8, t_cell, mono, cmono = (
        "CL:0000624",
        "CL:0000625",
        "CL:0000084",
        "CL:0000576",
        "CL:0000860",
    )
    pr = co.prune([*used, t_cell, mono])
    assert pr.terms[0] == "CL:0000000" and len(pr.terms) == 39  # T cell, monocyte: ancestors
    hop = pr.hop_distances([cd4, cd8, t_cell, mono, cmono])
    assert hop[0, 1] == 2  # siblings under CL:0000791 mature alpha-beta T cell
    assert hop[2, 3] == 3  # T cell - lymphocyte - mononuclear cell - monocyte
    assert hop[0, 1] < hop[2, 3] and hop[3, 4] == 1
    with pytest.raises(ValueError, match="replaces it by CL:0007010"):
        co.check("CL:0000375")
    with pytest.raises(KeyError, match="alternative ID of 'CL:0000009'"):
        co.check("CL:0000274")
    # per-donor compositions: distances are finite, symmetric and positive off the diagonal
    tab = pd.crosstab(obs["donor_id"], pd.Series(ids, index=obs.index, name="cl"))
    comp = tab.div(tab.sum(axis=1), axis=0)
    d = composition_distances(comp, pr)
    assert d.shape == (8, 8) and np.allclose(d, d.T) and (d[~np.eye(8, dtype=bool)] > 0).all()
    s = adaptive_kernel(d, k=3)
    assert np.all((s >= 0) & (s <= 1)) and np.all(np.diag(s) == 1)
    assert ((s > 0).sum(axis=1) >= 4).all()  # self + at least its 3 neighbours


@pytest.mark.realdata
def test_real_cell_ontology_wide_panel_matches_pot(data_dir):
    # 26 CL types of the shared datasets -> 71 terms, a 2-edge-connected block of 51 terms:
    # the warm-started network simplex over many pivots against ot.emd2 on every pair
    panel = ["CL:0000037", "CL:0000081", "CL:0000084", "CL:0000232", "CL:0000233",
             "CL:0000236", "CL:0000451", "CL:0000542", "CL:0000556", "CL:0000576",
             "CL:0000623", "CL:0000624", "CL:0000625", "CL:0000775", "CL:0000782",
             "CL:0000784", "CL:0000787", "CL:0000798", "CL:0000815", "CL:0000860",
             "CL:0000875", "CL:0000938", "CL:0000939", "CL:0000940", "CL:0000980",
             "CL:2000001"]  # fmt: skip
    pr = CellOntology(data_dir=data_dir).prune(panel)
    assert len(pr.terms) == 71
    rng = np.random.default_rng(3)
    comp = pd.DataFrame(rng.dirichlet(np.full(len(panel), 0.5), size=40), columns=panel)
    sig = pr.propagate(comp).to_numpy()
    sig /= sig.sum(axis=1, keepdims=True)
    cost = pr.hop_distances()
    ref = np.array([[ot.emd2(a, b, cost) for b in sig] for a in sig])
    np.testing.assert_allclose(composition_distances(comp, pr), ref, rtol=0, atol=1e-10)
