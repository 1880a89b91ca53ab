"""Exact EMD with a graph's hop metric as min-cost flow on the graph itself (numba).

With the shortest-path metric of a graph with unit edge lengths as ground cost, the EMD
between p and q equals the cheapest flow along the graph's edges that turns p into q
(Beckmann's formulation of W1 on a graph):

    EMD(p, q) = min { sum_e |f_e| : B f = p - q },

B the node-edge incidence matrix. This LP has one variable per edge (39-250 nodes and
50-350 edges for pruned Cell Ontologies) instead of one per pair of types. It is solved by a
primal network simplex on the graph's spanning trees (:func:`_tree_simplex`): any spanning
tree carries a feasible flow (each tree edge is used in the direction its flow needs), the
potentials follow from the tree, and a non-tree edge whose end potentials differ by more than
one hop enters the tree (Dantzig's rule). The optimal tree of the previous pair is the
starting tree of the next one, so few pivots are needed when consecutive samples are similar
(the caller orders samples along a nearest-neighbour chain, :func:`chain_order`). The result
is exact: the simplex stops only when every edge's potential difference is at most one
(dual feasibility), i.e. at an LP optimum. If it runs into its pivot limit (possible cycling
on degenerate trees; not observed) the pair is solved by the primal-dual method
(:func:`_min_cost_flow`): Dijkstra on reduced costs raises the node potentials, then a Dinic
max-flow pushes as much mass as possible along zero-reduced-cost arcs; costs and potentials
are integers, so the shortest augmenting cost grows by at least one per phase. Both agree
with ``ot.emd2`` (checked in the tests).
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba comes with scanpy / pynndescent
    numba = None

_EPS = 1e-13  # mass below this counts as zero (rows have unit mass)
_MAX_PHASES = 10_000
_MAX_PIVOTS = 1_000  # network simplex pivots per pair before the primal-dual fallback


def incidence_csr(n_nodes: int, edges: np.ndarray):
    """CSR adjacency of an undirected graph: ``(indptr, edge id, sign, neighbour)``.

    ``sign`` is +1 when pushing from the node along the edge increases ``f_e`` (the node is
    ``edges[e, 0]``), -1 otherwise.
    """
    edges = np.asarray(edges, dtype=np.int64)
    ends = np.concatenate([edges[:, 0], edges[:, 1]])
    other = np.concatenate([edges[:, 1], edges[:, 0]])
    eid = np.concatenate([np.arange(len(edges)), np.arange(len(edges))])
    sign = np.concatenate([np.ones(len(edges)), -np.ones(len(edges))]).astype(np.int64)
    order = np.argsort(ends, kind="stable")
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.add.at(indptr, ends + 1, 1)
    indptr = np.cumsum(indptr)
    return indptr, eid[order], sign[order], other[order]


def _min_cost_flow(excess, pi, flow, work, indptr, eid, sign, nbr, n_edges):  # pragma: no cover
    """Sum of |f_e| of a min-cost flow meeting ``excess`` (> 0 supply, < 0 demand); -1 if the
    phase limit is hit. ``excess``, ``flow`` and ``work`` are overwritten.

    ``pi`` (int64 node potentials) must be 1-Lipschitz on the edges (zeros, or the ``pi`` a
    previous call returned: with zero flow every arc costs 1, and the final potentials of an
    optimal flow differ by at most one across every edge); it is updated in place, which lets
    consecutive pairs start from the last optimal duals (far fewer phases).
    """
    n = excess.shape[0]
    flow[:] = 0.0
    dist, level, queue, it, path, parc = work[0], work[1], work[2], work[3], work[4], work[5]
    done = np.empty(n, dtype=np.bool_)
    nb = 2 * n + 3
    bhead = np.empty(nb, dtype=np.int64)
    enode = np.empty(n + nbr.shape[0] + 1, dtype=np.int64)
    enext = np.empty(n + nbr.shape[0] + 1, dtype=np.int64)
    big = np.int64(1) << 40
    for _ in range(_MAX_PHASES):
        supply = 0.0
        for v in range(n):
            if excess[v] > _EPS:
                supply += excess[v]
        if supply <= _EPS:
            total = 0.0
            for e in range(n_edges):
                total += abs(flow[e])
            return total
        # Dijkstra on reduced costs from every supply node, stopped at the nearest demand.
        # Potentials stay 1-Lipschitz on the edges, so reduced costs are 0, 1 or 2 and
        # distances are below 2n: a bucket queue (Dial) with lazy deletion suffices.
        for b in range(nb):
            bhead[b] = -1
        npool = 0
        for v in range(n):
            done[v] = False
            dist[v] = big
            if excess[v] > _EPS:
                dist[v] = 0
                enode[npool] = v
                enext[npool] = bhead[0]
                bhead[0] = npool
                npool += 1
        dmin = big
        for d in range(nb):
            while bhead[d] >= 0 and dmin == big:
                e = bhead[d]
                bhead[d] = enext[e]
                u = enode[e]
                if done[u] or dist[u] != d:
                    continue
                done[u] = True
                if excess[u] < -_EPS:
                    dmin = d  # nearest demand: farther nodes get pi += dmin below
                    break
                for a in range(indptr[u], indptr[u + 1]):
                    w = nbr[a]
                    c = -1 if sign[a] * flow[eid[a]] < -_EPS else 1
                    nd = d + c + pi[u] - pi[w]
                    if nd < d:  # negative reduced cost: invariant broken, let POT solve it
                        return -1.0
                    if nd < dist[w] and nd < nb:
                        dist[w] = nd
                        enode[npool] = w
                        enext[npool] = bhead[nd]
                        bhead[nd] = npool
                        npool += 1
            if dmin < big:
                break
        if dmin >= big:  # no demand left: the remaining supply is rounding, or unreachable
            if supply > 1e-9:
                return -1.0
            total = 0.0
            for e in range(n_edges):
                total += abs(flow[e])
            return total
        for v in range(n):
            pi[v] += dist[v] if dist[v] < dmin else dmin
        # Dinic max-flow on admissible arcs (reduced cost 0, residual capacity > 0)
        while True:
            head, tail = 0, 0
            for v in range(n):
                level[v] = -1
                if excess[v] > _EPS:
                    level[v] = 0
                    queue[tail] = v
                    tail += 1
            reached = False
            sink_level = big
            while head < tail:
                u = queue[head]
                head += 1
                if excess[u] < -_EPS and level[u] < sink_level:
                    reached = True
                    sink_level = level[u]  # like Dinic's super-sink: no longer paths needed
                if level[u] >= sink_level:
                    continue
                for a in range(indptr[u], indptr[u + 1]):
                    w = nbr[a]
                    if level[w] >= 0:
                        continue
                    neg = sign[a] * flow[eid[a]] < -_EPS
                    c = -1 if neg else 1
                    if c + pi[u] - pi[w] == 0:
                        level[w] = level[u] + 1
                        queue[tail] = w
                        tail += 1
            if not reached:
                break
            for v in range(n):
                it[v] = indptr[v]
            for s in range(n):
                while excess[s] > _EPS and level[s] == 0:
                    # depth-first search for a sink along the level graph
                    depth = 0
                    path[0] = s
                    found = False
                    while True:
                        u = path[depth]
                        if excess[u] < -_EPS and depth > 0:
                            found = True
                            break
                        advanced = False
                        while it[u] < indptr[u + 1]:
                            a = it[u]
                            w = nbr[a]
                            if level[w] == level[u] + 1:
                                neg = sign[a] * flow[eid[a]] < -_EPS
                                c = -1 if neg else 1
                                if c + pi[u] - pi[w] == 0:
                                    parc[depth] = a
                                    depth += 1
                                    path[depth] = w
                                    advanced = True
                                    break
                            it[u] += 1
                        if advanced:
                            continue
                        level[u] = -1  # dead end
                        if depth == 0:
                            break
                        depth -= 1
                        it[path[depth]] += 1
                    if not found:
                        break
                    t = path[depth]
                    delta = min(excess[s], -excess[t])
                    for i in range(depth):
                        a = parc[i]
                        g = sign[a] * flow[eid[a]]
                        if g < -_EPS and -g < delta:
                            delta = -g
                    for i in range(depth):
                        a = parc[i]
                        g = sign[a] * flow[eid[a]]
                        if g < -_EPS and -g - delta <= _EPS:
                            flow[eid[a]] = 0.0  # cancelled exactly
                        else:
                            flow[eid[a]] += sign[a] * delta
                    excess[s] -= delta
                    excess[t] += delta
                    if abs(excess[t]) <= _EPS:
                        excess[t] = 0.0
                    if abs(excess[s]) <= _EPS:
                        excess[s] = 0.0
    return -1.0


def _tree_simplex(
    d, intree, orient, ends, indptr, eid, nbr, work, fup, max_pivots
):  # pragma: no cover
    """Primal network simplex for ``min sum_e |f_e| : B f = d`` from the spanning tree
    ``intree``; returns the optimal cost, or -1 after ``max_pivots`` pivots.

    ``intree`` (bool per edge) and ``orient`` (+1: the tree edge is used from ``ends[e, 0]``
    to ``ends[e, 1]``, -1: the reverse; kept for zero-flow edges) are updated in place and
    describe the optimal tree on return. ``work``: ``(6, k)`` int64 scratch, ``fup``: ``k``.
    """
    k = d.shape[0]
    m = ends.shape[0]
    par, pedge, depth, order, pi, up = work[0], work[1], work[2], work[3], work[4], work[5]
    for _ in range(max_pivots + 1):
        # the tree, rooted at node 0: parents, depths and a breadth-first order
        for v in range(k):
            par[v] = -2
        par[0], depth[0], order[0] = -1, 0, 0
        head, tail = 0, 1
        while head < tail:
            u = order[head]
            head += 1
            for a in range(indptr[u], indptr[u + 1]):
                if intree[eid[a]] and par[nbr[a]] == -2:
                    w = nbr[a]
                    par[w], pedge[w], depth[w] = u, eid[a], depth[u] + 1
                    order[tail] = w
                    tail += 1
        # fup[v]: flow from v to its parent = net mass of v's subtree
        for v in range(k):
            fup[v] = d[v]
        for t in range(k - 1, 0, -1):
            fup[par[order[t]]] += fup[order[t]]
        # direction of each tree edge and the potentials (+1 hop along the flow)
        pi[0] = 0
        for t in range(1, k):
            v = order[t]
            e = pedge[v]
            first = ends[e, 0] == v
            if fup[v] > _EPS:
                is_up = 1
            elif fup[v] < -_EPS:
                is_up = 0
            else:  # no flow: keep the edge's last direction
                is_up = 1 if (orient[e] == 1) == first else 0
            orient[e] = 1 if (is_up == 1) == first else -1
            up[v] = is_up
            pi[v] = pi[par[v]] - 1 if is_up else pi[par[v]] + 1
        # entering edge: largest potential difference above one hop (Dantzig's rule)
        best, enter = 1, -1
        for e in range(m):
            if not intree[e]:
                gap = abs(pi[ends[e, 1]] - pi[ends[e, 0]])
                if gap > best:
                    best, enter = gap, e
        if enter < 0:  # every edge is 1-Lipschitz for pi: optimal
            total = 0.0
            for v in range(1, k):
                total += abs(fup[v])
            return total
        if pi[ends[enter, 1]] > pi[ends[enter, 0]]:  # flow u -> w, towards higher potential
            u, w, o = ends[enter, 0], ends[enter, 1], 1
        else:
            u, w, o = ends[enter, 1], ends[enter, 0], -1
        # the cycle u -> w -> (tree path) -> u: tree edges against it lose flow; the first to
        # reach zero leaves
        theta, leave = np.inf, -1
        x, y = w, u
        while x != y:
            if depth[x] >= depth[y]:  # on w's side, walking towards the root
                if up[x] == 0 and abs(fup[x]) < theta:
                    theta, leave = abs(fup[x]), pedge[x]
                x = par[x]
            else:  # on u's side, walked from the root downwards
                if up[y] == 1 and abs(fup[y]) < theta:
                    theta, leave = abs(fup[y]), pedge[y]
                y = par[y]
        if leave < 0:  # cannot happen for a tree (unbounded LP); solve another way
            return -1.0
        intree[leave] = False
        intree[enter] = True
        orient[enter] = o
    return -1.0


def _spanning_tree(indptr, eid, nbr, k, n_edges):  # pragma: no cover - numba
    """Breadth-first spanning tree from node 0 (bool per edge)."""
    intree = np.zeros(n_edges, dtype=np.bool_)
    seen = np.zeros(k, dtype=np.bool_)
    queue = np.empty(k, dtype=np.int64)
    seen[0], queue[0] = True, 0
    head, tail = 0, 1
    while head < tail:
        u = queue[head]
        head += 1
        for a in range(indptr[u], indptr[u + 1]):
            if not seen[nbr[a]]:
                seen[nbr[a]] = True
                intree[eid[a]] = True
                queue[tail] = nbr[a]
                tail += 1
    return intree


def _pair_rows(signals, rows, indptr, eid, sign, nbr, n_edges, max_pivots):  # pragma: no cover
    n, k = signals.shape
    out = np.zeros((rows.shape[0], n))
    ends = np.empty((n_edges, 2), dtype=np.int64)
    for v in range(k):
        for a in range(indptr[v], indptr[v + 1]):
            if sign[a] == 1:
                ends[eid[a], 0], ends[eid[a], 1] = v, nbr[a]
    start = _spanning_tree(indptr, eid, nbr, k, n_edges)
    intree, orient = start.copy(), np.ones(n_edges, dtype=np.int64)
    fup = np.empty(k)
    pi = np.zeros(k, dtype=np.int64)
    flow = np.zeros(n_edges)
    work = np.empty((6, k + 1), dtype=np.int64)
    excess = np.empty(k)
    for r in range(rows.shape[0]):
        i = rows[r]
        for j in range(i + 1, n):
            for v in range(k):
                excess[v] = signals[i, v] - signals[j, v]
            cost = _tree_simplex(
                excess, intree, orient, ends, indptr, eid, nbr, work, fup, max_pivots
            )
            if cost < 0:  # pivot limit: restart the tree, solve this pair by primal-dual
                intree[:] = start
                pmin = pi.min()
                for v in range(k):
                    pi[v] -= pmin
                cost = _min_cost_flow(excess, pi, flow, work, indptr, eid, sign, nbr, n_edges)
            out[r, j] = cost
    return out


def _chain_order(signals):  # pragma: no cover - numba
    """Greedy nearest-neighbour chain (L1) through the rows, starting at row 0."""
    n, k = signals.shape
    order = np.empty(n, dtype=np.int64)
    free = np.ones(n, dtype=np.bool_)
    cur = 0
    for t in range(n):
        order[t] = cur
        free[cur] = False
        best, nxt = np.inf, -1
        for j in range(n):
            if free[j]:
                dist = 0.0
                for v in range(k):
                    dist += abs(signals[cur, v] - signals[j, v])
                    if dist >= best:
                        break
                if dist < best:
                    best, nxt = dist, j
        cur = nxt
    return order


if numba is not None:
    _min_cost_flow = numba.njit(cache=True)(_min_cost_flow)
    _tree_simplex = numba.njit(cache=True)(_tree_simplex)
    _spanning_tree = numba.njit(cache=True)(_spanning_tree)
    _pair_rows = numba.njit(cache=True)(_pair_rows)
    _chain_order = numba.njit(cache=True)(_chain_order)


def decompose(n_nodes: int, edges: np.ndarray):
    """Split a connected graph at its bridges for an exact, smaller EMD.

    All mass on the far side of a bridge must cross it, so the bridge contributes
    ``|net mass of that side|`` and is then contracted; what is left are the 2-edge-connected
    blocks, each an independent min-cost-flow problem in which every node also carries the
    mass of the parts hanging off it through bridges.

    Returns
    -------
    side : numpy.ndarray
        ``(n_nodes, n_bridges)`` 0/1: node on the far side of each bridge.
    blocks : list of (numpy.ndarray, tuple)
        For each block with at least three nodes: ``R`` ``(n_nodes, n_block)`` 0/1 mapping every
        node to the block node through which its mass enters the block, and the block's
        :func:`incidence_csr` plus its number of edges.
    """
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(n_nodes))
    g.add_edges_from((int(u), int(w)) for u, w in edges)
    bridges = list(nx.bridges(g))
    side = np.zeros((n_nodes, len(bridges)))
    for k, (u, w) in enumerate(bridges):
        g.remove_edge(u, w)
        side[list(nx.node_connected_component(g, w)), k] = 1.0
        g.add_edge(u, w)
    h = g.copy()
    h.remove_edges_from(bridges)
    blocks = []
    for comp in nx.connected_components(h):
        if len(comp) < 3:  # a single node: no internal edge, no cost
            continue
        nodes = sorted(comp)
        local = {x: c for c, x in enumerate(nodes)}
        r = np.zeros((n_nodes, len(nodes)))
        for x in nodes:
            r[x, local[x]] = 1.0
            stack, seen = [x], {x}
            while stack:
                u = stack.pop()
                for w in g[u]:
                    if w not in comp and w not in seen:
                        seen.add(w)
                        r[w, local[x]] = 1.0
                        stack.append(w)
        sub = np.array([(local[u], local[w]) for u, w in h.subgraph(nodes).edges()])
        blocks.append((r, (*incidence_csr(len(nodes), sub), len(sub))))
    return side, blocks


def graph_emd_rows(
    signals, rows, indptr, eid, sign, nbr, n_edges, max_pivots: int = _MAX_PIVOTS
) -> np.ndarray:
    """``out[r, j] = EMD(signals[rows[r]], signals[j])`` for ``j > rows[r]`` (else 0).

    Pairs are solved in order, each network simplex starting from the previous pair's optimal
    tree; a pair that needs more than ``max_pivots`` pivots is solved by the primal-dual
    method instead (``max_pivots=0``: primal-dual only). Entries of -1 mark pairs that solver
    gave up on too (never seen; the caller re-solves them with POT).
    """
    if numba is None:
        raise ImportError("numba is needed for the graph min-cost-flow EMD.")
    return _pair_rows(
        np.ascontiguousarray(signals, dtype=np.float64),
        np.asarray(rows, dtype=np.int64),
        indptr,
        eid,
        sign,
        nbr,
        int(n_edges),
        int(max_pivots),
    )


def chain_order(signals: np.ndarray) -> np.ndarray:
    """Order of the rows along a greedy nearest-neighbour chain (L1 distance), from row 0.

    ``(n,)`` int64 permutation; O(n^2 k) time, O(n) memory. Similar consecutive samples let
    :func:`graph_emd_rows` start each pair from a nearly optimal tree.
    """
    if numba is None:
        raise ImportError("numba is needed for the chain order.")
    return _chain_order(np.ascontiguousarray(signals, dtype=np.float64))
