"""Sparse localized deformation components (SPLOCS; Neumann, Varanasi, Wenger,
Wacker, Magnor and Theobalt, SIGGRAPH Asia 2013).

Given F deformations X (float[F, N, 3], rows in correspondence with one mesh),
find K components C (float[K, N, 3]) and weights W (float[F, K]) minimizing

    f(W, C) = 1/2 ||X - W C||_F^2 + sum_k sum_v Lambda[k, v] ||C[k, v]||_2

subject to W in a box: 0 <= W <= 1 (``nonnegative=True``, the paper's
"B >= 0, max B_k = 1") or -1 <= W <= 1 (its "max |B_k| = 1"). The l1/l2 group
term makes components sparse per vertex; Lambda[k, v] = lambda * s_k(v) with
the local support map s_k(v) = clip((d(c_k, v) - d_min) / (d_max - d_min), 0, 1)
of the geodesic distance d from the component's centre c_k (its vertex of
largest displacement), so displacement is free near the centre and penalized
far from it. (The paper's eq. 1 names the same problem with the roles of B
and C swapped; its ||.||^2 + Omega equals 2 f here.)

Alternating optimization, each step not increasing f:

1. weights: exact block-coordinate minimization over each column W_k
   together with the scale of its component C_k, under max |W_k| = 1 (an
   l-infinity proximal step, by sorting), computed from the Gram matrices
   X C^T and C C^T (never forming the residual). Neumann et al.'s code
   projects the least-squares column and divides it by its maximum, leaving
   C_k's scale to the next component step; a box clip at 1 would instead stall
   weights that need to grow. Joining the scale to the column makes the step
   exact and lets a component grow or shrink within the step;
2. support: each component's centre moves to its vertex of largest
   displacement when that does not increase its group term;
3. components: ADMM on the group-lasso problem (inverse of W^T W + rho I,
   the l1/l2 proximal operator), the result kept only if f did not increase.

The greedy initialization follows Neumann et al.'s code: each new component
starts at the vertex of largest residual energy, with weights from the
residual's leading direction there (of its two signs, the one whose admissible
part, scaled to max 1, has the larger norm), restricted to its local support.
Geodesic distances are shortest paths over
the mesh's edges and unfolded edges across them (:func:`surface_edges`), within
about 2% of the true surface distance (Neumann et al. use the heat method,
which falls short of it by 2-5% on the same test).

Pure functions with explicit state (:class:`SplocsState`); frames are padded
to a static count and masked, so ``vmap`` fits many sets (V-A bins) at once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "Geodesics",
    "MeshGraph",
    "SplocsParams",
    "SplocsState",
    "geodesic_table",
    "graph_distances",
    "mesh_graph",
    "prox_l1l2",
    "splocs_fit",
    "splocs_init",
    "splocs_objective",
    "splocs_step",
    "support_map",
    "surface_edges",
    "table_distances",
]


class MeshGraph(NamedTuple):
    """The edge graph of a mesh, for geodesic (shortest edge path) distances.

    Attributes:
        src: int32[E], edge start (every undirected edge appears twice).
        dst: int32[E], edge end.
        length: float[E], edge length in the mesh's units.
    """

    src: Array
    dst: Array
    length: Array


def surface_edges(vertices, faces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of a triangle mesh plus one unfolded edge across each interior edge (numpy).

    Shortest paths along mesh edges overestimate geodesic distances (by 8% on
    average on an icosphere: a path must zigzag along the triangulation). Each
    interior edge ab with opposite vertices c and d also gives the edge cd,
    with the length of the straight segment c-d in the two triangles unfolded
    into one plane, where that segment crosses ab (the surface's own geodesic
    there). The error falls to about 1-2% (``tests/test_splocs.py`` measures it
    against great-circle distances on a sphere), at twice the edges.

    Args:
        vertices: float[N, 3].
        faces: int[T, 3].

    Returns:
        (src, dst, length), each undirected edge once: int64[E], int64[E],
        float64[E].
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    half = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    opposite = np.concatenate([f[:, 2], f[:, 0], f[:, 1]])
    edges, which = np.unique(half, axis=0, return_inverse=True)
    which = which.ravel()
    src, dst = [edges[:, 0]], [edges[:, 1]]
    length = [np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)]
    order = np.argsort(which, kind="stable")
    sorted_ = which[order]
    start = np.nonzero(np.r_[True, sorted_[1:] != sorted_[:-1]])[0]
    count = np.diff(np.r_[start, len(sorted_)])
    pair = start[count == 2]  # interior edges: exactly two triangles
    h0, h1 = order[pair], order[pair + 1]
    a, b = half[h0, 0], half[h0, 1]
    c, d = opposite[h0], opposite[h1]
    ab = v[b] - v[a]
    lab = np.linalg.norm(ab, axis=1)
    ex = ab / np.where(lab > 0, lab, 1.0)[:, None]

    def planar(q):  # coordinates along ab and distance from its line
        r = v[q] - v[a]
        x = np.sum(r * ex, axis=1)
        return x, np.linalg.norm(r - x[:, None] * ex, axis=1)

    xc, yc = planar(c)
    xd, yd = planar(d)
    span = yc + yd
    cross = xc + (xd - xc) * yc / np.where(span > 0, span, 1.0)  # where c-d meets ab
    ok = (span > 0) & (cross > 0) & (cross < lab) & (c != d)
    src.append(c[ok])
    dst.append(d[ok])
    length.append(np.hypot(xc - xd, span)[ok])
    # one entry per vertex pair, the shortest (scipy would add up duplicates)
    pairs = np.sort(np.stack([np.concatenate(src), np.concatenate(dst)], axis=1), axis=1)
    length = np.concatenate(length)
    order = np.lexsort((length, pairs[:, 1], pairs[:, 0]))
    pairs, length = pairs[order], length[order]
    first = np.r_[True, np.any(pairs[1:] != pairs[:-1], axis=1)]
    return pairs[first, 0], pairs[first, 1], length[first]


def mesh_graph(vertices, faces) -> MeshGraph:
    """The :class:`MeshGraph` of a triangle mesh, with :func:`surface_edges` (numpy; once per template).

    Args:
        vertices: float[N, 3].
        faces: int[T, 3].
    """
    src, dst, length = surface_edges(vertices, faces)
    return MeshGraph(
        jnp.asarray(np.concatenate([src, dst]), jnp.int32),
        jnp.asarray(np.concatenate([dst, src]), jnp.int32),
        jnp.asarray(np.concatenate([length, length]), jnp.result_type(float)),
    )


def graph_distances(graph: MeshGraph, source: Array, num_vertices: int, max_dist=jnp.inf) -> Array:
    """Shortest-path distances from one vertex over the graph's edges (Bellman-Ford relaxation).

    jit- and vmap-friendly (vmap over ``source``). Distances beyond
    ``max_dist`` stop being refined and come back as ``inf``: supports need
    no more.

    Args:
        graph: the :class:`MeshGraph`.
        source: int scalar, the source vertex.
        num_vertices: N (static).
        max_dist: relaxation bound.

    Returns:
        float[N] distances (0 at the source), ``inf`` beyond ``max_dist`` or
        in other connected components.
    """
    d0 = jnp.full((num_vertices,), jnp.inf, graph.length.dtype).at[source].set(0.0)

    def cond(state):
        return state[1]

    def body(state):
        d, _ = state
        cand = jax.ops.segment_min(d[graph.src] + graph.length, graph.dst, num_vertices)
        cand = jnp.where(cand <= max_dist, cand, jnp.inf)
        new = jnp.minimum(d, cand)
        return new, jnp.any(new < d)

    return jax.lax.while_loop(cond, body, (d0, jnp.bool_(True)))[0]


class Geodesics(NamedTuple):
    """Truncated geodesic distances of every vertex, in ELL (padded neighbour list) form.

    Attributes:
        neighbours: int32[N, M], the vertices within ``max_dist`` of each
            vertex (itself included), padded with N.
        distances: float[N, M], their distances (padding: inf).
    """

    neighbours: Array
    distances: Array


def geodesic_table(vertices, faces, max_dist: float, block: int = 1024) -> Geodesics:
    """All truncated geodesic distances of a mesh, once per template (scipy Dijkstra on :func:`surface_edges`).

    The support maps of SPLOCS need distances from a component's centre up
    to ``support_max``; looking them up is far cheaper inside the iterations
    than a graph search per component and iteration.

    Args:
        vertices: float[N, 3].
        faces: int[T, 3].
        max_dist: truncation distance (the SPLOCS ``support_max``).
        block: sources per Dijkstra call (bounds the temporary dense block).

    Returns:
        :class:`Geodesics` (numpy arrays, float32 distances).
    """
    import scipy.sparse
    import scipy.sparse.csgraph

    n = len(vertices)
    src, dst, length = surface_edges(vertices, faces)
    g = scipy.sparse.coo_matrix((length, (src, dst)), shape=(n, n)).tocsr()
    rows, dists = [], []
    for s0 in range(0, n, block):
        d = scipy.sparse.csgraph.dijkstra(
            g, directed=False, indices=np.arange(s0, min(n, s0 + block)), limit=max_dist
        )
        for row in d:
            idx = np.nonzero(np.isfinite(row))[0]
            rows.append(idx)
            dists.append(row[idx])
    m = max(len(r) for r in rows)
    nb = np.full((n, m), n, np.int32)
    dd = np.full((n, m), np.inf, np.float32)
    for i, (r, d) in enumerate(zip(rows, dists)):
        nb[i, : len(r)] = r
        dd[i, : len(r)] = d
    return Geodesics(nb, dd)


def table_distances(geo: Geodesics, centre: Array, num_vertices: int) -> Array:
    """float[N] distances from ``centre`` (inf beyond the table's truncation). jit/vmap-friendly."""
    d = jnp.full((num_vertices,), jnp.inf, geo.distances.dtype)
    return d.at[geo.neighbours[centre]].set(geo.distances[centre], mode="drop")


def support_map(dist: Array, d_min: float, d_max: float) -> Array:
    """Neumann et al.'s support weight: 0 within ``d_min``, 1 beyond ``d_max``, linear between."""
    return jnp.clip((dist - d_min) / (d_max - d_min), 0.0, 1.0)


def prox_l1l2(x: Array, lam: Array, beta) -> Array:
    """Proximal operator of ``beta * sum_v lam[..., v] ||x[..., v, :]||_2`` (group soft threshold).

    Args:
        x: float[..., N, 3] (groups along the last axis).
        lam: float[..., N], non-negative weights.
        beta: step (scalar).

    Returns:
        ``x[v] * max(0, 1 - beta lam[v] / ||x[v]||)``: groups with norm at most
        ``beta lam`` become exactly zero; with ``beta lam[v] = 0`` the group
        comes back unchanged, however small (the norm is taken of the group
        scaled by its largest entry, so it neither underflows nor flushes to
        zero). Differentiable everywhere: at an all-zero group the derivative
        is 0 where the threshold is positive (the operator is zero around it)
        and the identity where it is 0.
    """
    t = beta * lam
    m = jnp.max(jnp.abs(x), axis=-1)
    nonzero = m > 0
    ms = jnp.where(nonzero, m, 1.0)
    y = x / ms[..., None]
    sq = jnp.sum(y * y, axis=-1)  # >= 1 on non-zero groups: its square root is smooth
    norm = ms * jnp.sqrt(jnp.where(nonzero, sq, 1.0))
    shrink = jnp.maximum(0.0, 1.0 - t / norm)
    shrink = jnp.where(nonzero, shrink, jnp.where(t > 0, 0.0, 1.0))
    # a zero threshold selects x itself: no arithmetic, so even values a flush-to-zero
    # CPU mode would zero (float32 subnormals) come back bit for bit
    keep = jnp.broadcast_to((t == 0)[..., None], x.shape)
    return jnp.where(keep, x, x * shrink[..., None].astype(x.dtype))


class SplocsParams(NamedTuple):
    """Settings of the solver (static under jit), with the reference code's meaning.

    Attributes:
        num_components: K.
        num_iters: outer (alternating) iterations.
        sparsity: lambda, weight of the l1/l2 term (on data scaled to unit RMS).
        num_admm_iters: ADMM iterations per component update.
        rho: ADMM penalty.
        support_min: d_min of the support map (mesh units).
        support_max: d_max of the support map (mesh units).
        nonnegative: W in [0, 1] (True) or [-1, 1].
        update_support: move component centres during the iterations.
    """

    num_components: int = 50
    num_iters: int = 20
    sparsity: float = 2.0
    num_admm_iters: int = 10
    rho: float = 10.0
    support_min: float = 1.0
    support_max: float = 6.0
    nonnegative: bool = True
    update_support: bool = True


class SplocsState(NamedTuple):
    """Explicit solver state; one set of deformations (vmap adds a leading axis).

    Attributes:
        weights: float[F, K] (padded frames hold zeros).
        components: float[K, N, 3], in the scaled data's units.
        dual: float[K, N, 3], the scaled ADMM dual variable (warm starts).
        centres: int32[K], each component's support centre.
        lam: float[K, N], the group weights Lambda.
        objective: float[num_iters + 1], f after initialization and each iteration.
        residual: float[num_iters + 1], ||X - W C||_F / ||X||_F at the same points.
        iteration: int32, iterations done.
    """

    weights: Array
    components: Array
    dual: Array
    centres: Array
    lam: Array
    objective: Array
    residual: Array
    iteration: Array


def _distances(geo, centre, n, p: SplocsParams) -> Array:
    if isinstance(geo, Geodesics):
        return table_distances(geo, centre, n)
    return graph_distances(geo, centre, n, p.support_max)


def _supports(geo, centres, n, p: SplocsParams) -> Array:
    dist = jax.vmap(lambda c: _distances(geo, c, n, p))(centres)
    return (p.sparsity * support_map(dist, p.support_min, p.support_max)).astype(dist.dtype)


def _group_term(components, lam) -> Array:
    return jnp.sum(lam * jnp.sqrt(jnp.sum(components * components, axis=-1)), axis=-1)


def splocs_objective(x: Array, state: SplocsState) -> tuple[Array, Array]:
    """(f, relative residual) of a state, with the residual formed explicitly.

    Args:
        x: float[F, N, 3], the (scaled, masked) data.
        state: the state.
    """
    k = state.components.shape[0]
    r = x.reshape(x.shape[0], -1) - state.weights @ state.components.reshape(k, -1)
    data = 0.5 * jnp.sum(r * r)
    xx = jnp.sum(x * x)
    rel = jnp.sqrt(jnp.sum(r * r) / jnp.where(xx > 0, xx, 1.0))
    return data + jnp.sum(_group_term(state.components, state.lam)), rel


def splocs_init(x: Array, mask: Array, graph: MeshGraph, params: SplocsParams) -> SplocsState:
    """Greedy initialization (Neumann et al.): one component at a time from the residual.

    Args:
        x: float[F, N, 3], deformations (scaled; padded rows anything).
        mask: bool[F], valid frames.
        graph: the template's :class:`Geodesics` table (fast; truncated at
            ``params.support_max`` or beyond) or its :class:`MeshGraph`
            (distances searched in the loop: fine for small meshes).
        params: :class:`SplocsParams`.

    Returns:
        The initial :class:`SplocsState`.
    """
    f, n, _ = x.shape
    x = jnp.where(mask[:, None, None], x, 0.0)
    dtype = x.dtype

    # The residual R = X - W C is never formed (it would cost four passes over an
    # F x N x 3 array per component): its per-vertex energy is updated in place and
    # w^T R comes from one pass over X, corrected by the components found so far.
    k_total = params.num_components

    def one(carry, k):
        w_all, c_all, energy = carry
        centre = jnp.argmax(energy).astype(jnp.int32)
        at = x[:, centre, :] - w_all @ c_all[:, centre, :]  # R[:, centre], [F, 3]
        w = _leading_weights(at, mask, params.nonnegative)
        ww = jnp.sum(w * w)
        wtr = jnp.tensordot(w, x, 1) - jnp.tensordot(w @ w_all, c_all, 1)  # w^T R, [N, 3]
        dist = _distances(graph, centre, n, params)
        local = 1.0 - support_map(dist, params.support_min, params.support_max)
        c = jnp.where(ww > 0, wtr / jnp.where(ww > 0, ww, 1.0), 0.0) * local[:, None]
        energy = energy - 2 * jnp.sum(wtr * c, axis=1) + ww * jnp.sum(c * c, axis=1)
        return (w_all.at[:, k].set(w), c_all.at[k].set(c), energy), centre

    carry0 = (
        jnp.zeros((f, k_total), dtype),
        jnp.zeros((k_total, n, 3), dtype),
        jnp.sum(x * x, axis=(0, 2)),
    )
    (w, c, _), centres = jax.lax.scan(one, carry0, jnp.arange(k_total))
    state = SplocsState(
        weights=w.astype(dtype),
        components=c.astype(dtype),
        dual=jnp.zeros_like(c),
        centres=centres,
        lam=_supports(graph, centres, n, params).astype(dtype),
        objective=jnp.full((params.num_iters + 1,), jnp.nan, dtype),
        residual=jnp.full((params.num_iters + 1,), jnp.nan, dtype),
        iteration=jnp.int32(0),
    )
    obj, rel = splocs_objective(x, state)
    return state._replace(
        objective=state.objective.at[0].set(obj), residual=state.residual.at[0].set(rel)
    )


def _unit_max(w: Array) -> Array:
    m = jnp.max(jnp.abs(w))
    return jnp.where(m > 0, w / jnp.where(m > 0, m, 1.0), 0.0)


def _leading_weights(at: Array, mask: Array, nonnegative: bool) -> Array:
    """A new component's weights from the residual at its centre (float[F, 3] -> float[F]).

    The frames' projections on the residual's leading direction there (its top
    right singular vector), scaled to max |w| = 1. Non-negative weights take
    Neumann et al.'s rule: of the two signs' admissible parts, each scaled to
    max 1, the one with the larger norm (the sign active in more frames). Signed
    weights are oriented so that the largest is positive.
    """
    _, vecs = jnp.linalg.eigh(at.T @ at)
    w = (at @ vecs[:, -1]) * mask.astype(at.dtype)
    if nonnegative:
        pos, neg = _unit_max(jnp.maximum(w, 0.0)), _unit_max(jnp.maximum(-w, 0.0))
        return jnp.where(jnp.sum(pos * pos) >= jnp.sum(neg * neg), pos, neg)
    # the direction's sign is arbitrary: make the largest weight positive
    w = w * jnp.where(w[jnp.argmax(jnp.abs(w))] < 0, -1.0, 1.0).astype(w.dtype)
    return _unit_max(w)


def _column_and_scale(t: Array, gkk: Array, group: Array, nonnegative: bool):
    """Exact minimizer over one column of W and the scale of its component.

    With the other columns fixed, replacing (w_k, C_k) by (w, s C_k) with
    max |w| = 1 changes f by ``gkk/2 ||u - t||^2 + max|u| group`` up to a
    constant, u = s w: ``t`` is the unconstrained least-squares column,
    ``gkk = ||C_k||^2``, ``group`` the group term of C_k. That is the
    proximal operator of the l-infinity norm: u clips t at a level tau with
    ``gkk sum (|t| - tau)_+ = group`` (tau = 0 when no level is that large),
    found exactly by sorting.

    Args:
        t: float[F] (padded frames 0).
        gkk, group: scalars.
        nonnegative: u >= 0 (else signed).

    Returns:
        (w float[F] with max |w| = 1 or all zero, s scalar >= 0).
    """
    a = jnp.maximum(t, 0.0) if nonnegative else jnp.abs(t)
    desc = -jnp.sort(-a)
    level = (jnp.cumsum(desc) - group / gkk) / jnp.arange(1, a.shape[0] + 1, dtype=a.dtype)
    active = desc > level  # true on a prefix: the frames clipped at tau
    rho = jnp.maximum(jnp.sum(active), 1)
    tau = jnp.maximum(level[rho - 1], 0.0)
    u = jnp.minimum(a, tau)
    if not nonnegative:
        u = jnp.sign(t) * u
    safe = jnp.where(tau > 0, tau, 1.0)
    return jnp.where(tau > 0, u / safe, 0.0), tau


def _weights_step(x2, mask, w, c2, group, nonnegative):
    """Block-coordinate minimization over each column of W with its component's scale.

    Returns (w float[F, K], scale float[K]): C_k is to be multiplied by
    scale[k]; f does not increase, max |W_k| = 1 for every live component.
    """
    p = x2 @ c2.T  # [F, K]
    g = c2 @ c2.T  # [K, K]
    k_total = w.shape[1]

    def col(k, carry):
        w, g, p, scale = carry
        gkk = g[k, k]
        live = gkk > 0
        safe = jnp.where(live, gkk, 1.0)
        t = (p[:, k] - w @ g[:, k] + w[:, k] * gkk) / safe * mask
        wk, s = _column_and_scale(t, safe, group[k], nonnegative)  # C_k not yet scaled
        wk = jnp.where(live, wk, 0.0)
        s = jnp.where(live, s, 1.0)
        # later columns see C_k scaled: its row and column of the Gram matrix, its products
        g = g.at[k, :].multiply(s).at[:, k].multiply(s)
        p = p.at[:, k].multiply(s)
        return w.at[:, k].set(wk), g, p, scale.at[k].multiply(s)

    carry = (w, g, p, jnp.ones((k_total,), w.dtype))
    w, _, _, scale = jax.lax.fori_loop(0, k_total, col, carry)
    return w, scale


def splocs_step(
    x: Array, mask: Array, graph: MeshGraph, state: SplocsState, params: SplocsParams
) -> SplocsState:
    """One alternating iteration (weights, supports, components); f does not increase.

    Args and returns as :func:`splocs_init`, with the state to advance.
    """
    f, n, _ = x.shape
    k = params.num_components
    x = jnp.where(mask[:, None, None], x, 0.0)
    x2 = x.reshape(f, -1)
    c2 = state.components.reshape(k, -1)

    # 1. weights, each column with its component's scale (max |W_k| = 1)
    group = _group_term(state.components, state.lam)
    w, scale = _weights_step(x2, mask.astype(x.dtype), state.weights, c2, group, params.nonnegative)
    comps = state.components * scale[:, None, None]
    dual = state.dual * scale[:, None, None]

    # 2. supports: move a centre only where its group term does not grow
    lam = state.lam
    centres = state.centres
    if params.update_support:
        new_c = jnp.argmax(jnp.sum(comps * comps, axis=-1), axis=-1).astype(jnp.int32)
        new_lam = _supports(graph, new_c, n, params).astype(x.dtype)
        better = _group_term(comps, new_lam) <= _group_term(comps, lam)
        lam = jnp.where(better[:, None], new_lam, lam)
        centres = jnp.where(better, new_c, centres)

    # 3. components: ADMM on 1/2 ||X - W C||^2 + sum Lambda ||C||, safeguarded
    gw = w.T @ w
    rhs = w.T @ x2  # [K, 3N]
    # (W^T W + rho I)^-1 once per iteration (K x K, SPD); each ADMM solve is then a
    # matrix product instead of two triangular solves on K x 3N right-hand sides
    eye = jnp.eye(k, dtype=x.dtype)
    inv = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gw + params.rho * eye), eye)
    z = comps.reshape(k, -1)
    u = dual.reshape(k, -1)

    def admm(_, zu):
        z, u = zu
        c = inv @ (rhs + params.rho * (z - u))
        z = prox_l1l2((c + u).reshape(k, n, 3), lam, 1.0 / params.rho).reshape(k, -1)
        return z, u + c - z

    z, u = jax.lax.fori_loop(0, params.num_admm_iters, admm, (z, u))

    def smooth(c):  # 1/2 ||X - W C||^2 - 1/2 ||X||^2 from the Gram matrices (W fixed)
        return -jnp.sum(c * rhs) + 0.5 * jnp.sum(gw * (c @ c.T))

    def f_of(c):
        return smooth(c) + jnp.sum(_group_term(c.reshape(k, n, 3), lam))

    keep = f_of(z) <= f_of(comps.reshape(k, -1))
    comps = jnp.where(keep, z, comps.reshape(k, -1)).reshape(k, n, 3)
    state = state._replace(
        weights=w, components=comps, dual=u.reshape(k, n, 3), centres=centres, lam=lam
    )
    # f without forming the residual: exact up to rounding of the cancellation
    xx = jnp.sum(x2 * x2)
    data = jnp.maximum(0.5 * xx + smooth(comps.reshape(k, -1)), 0.0)
    obj = data + jnp.sum(_group_term(comps, lam))
    rel = jnp.sqrt(2 * data / jnp.where(xx > 0, xx, 1.0))
    i = state.iteration + 1
    return state._replace(
        objective=state.objective.at[i].set(obj),
        residual=state.residual.at[i].set(rel),
        iteration=i,
    )


@functools.partial(jax.jit, static_argnames=("params",))
def _fit(x, mask, graph, params):
    state = splocs_init(x, mask, graph, params)
    return jax.lax.fori_loop(
        0, params.num_iters, lambda _, s: splocs_step(x, mask, graph, s, params), state
    )


def splocs_fit(
    x: Array, mask: Array, graph: MeshGraph, params: SplocsParams = SplocsParams()
) -> SplocsState:
    """Initialize and run ``params.num_iters`` iterations. jit-compiled; vmap-friendly.

    Args:
        x: float[F, N, 3] deformations, scaled so that sparsity has its usual
            meaning (the caller centres and scales; see vafx.fit_bins).
        mask: bool[F], valid (non-padding) frames.
        graph: :class:`Geodesics` (see :func:`geodesic_table`) or
            :class:`MeshGraph` of the template, in the same units as
            ``support_min``/``support_max``.
        params: :class:`SplocsParams`.

    Returns:
        The final :class:`SplocsState`; check ``objective`` and ``residual``.
    """
    return _fit(x, jnp.asarray(mask, bool), graph, params)
