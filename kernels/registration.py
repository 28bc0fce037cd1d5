"""Surface registration: closest points on a mesh and optimal-step non-rigid ICP.

Non-rigid ICP after Amberg, Romdhani and Vetter, "Optimal Step Nonrigid ICP
Algorithms for Surface Registration" (CVPR 2007). Every template vertex i
carries an affine transform X_i (float[4, 3], acting on [v_i, 1]); for a
stiffness alpha the energy

    E(X) = sum_i w_i ||[v_i, 1] X_i - u_i||^2
         + alpha^2 sum_{(i, j) in edges} ||G (X_i - X_j)||_F^2
         + beta^2 sum_l ||[v_l, 1] X_l - p_l||^2,     G = diag(1, 1, 1, gamma)

is minimized exactly for fixed correspondences u_i (closest points on the
target surface, weight w_i in {0, 1} after rejection by distance, normal angle
and the target's border) and landmarks p_l, then the correspondences are found
again; alpha falls along a schedule. The normal equations share one sparse
symmetric positive-definite matrix for the three coordinate columns; it is
solved by conjugate gradients preconditioned with its 4 x 4 diagonal blocks,
warm-started from the previous X (Amberg et al. factor it directly).

Closest points use a uniform grid over the target's vertices (exact nearest
vertex within one cell) and then the exact closest point on the triangles
around that vertex. The grid is built on the host (:func:`build_grid`) with
static capacities, so that grids of many targets stack and ``vmap``.

Everything here works on plain arrays (it knows nothing about faces): pure,
jit- and vmap-friendly functions with explicit state.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "Closest",
    "NicpState",
    "PointGrid",
    "SurfaceTarget",
    "TemplateGraph",
    "build_grid",
    "closest_on_triangles",
    "closest_points",
    "nearest_vertex",
    "nicp",
    "nicp_solve",
    "surface_target",
    "template_graph",
    "target_sizes",
    "umeyama",
    "vertex_normals",
    "walk_nearest",
]

_OFFSETS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), np.int32)  # [27, 3]


# --------------------------------------------------------------------- geometry
def vertex_normals(verts: Array, faces: Array, face_valid: Array | None = None) -> Array:
    """Area-weighted unit vertex normals.

    Args:
        verts: float[n, 3].
        faces: int32[f, 3].
        face_valid: bool[f], or None (all valid); invalid faces add nothing.

    Returns:
        float[n, 3]; zero for a vertex without a valid face.
    """
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = jnp.cross(b - a, c - a)
    if face_valid is not None:
        fn = jnp.where(face_valid[:, None], fn, 0)
    n = jnp.zeros_like(verts)
    for k in range(3):
        n = n.at[faces[:, k]].add(fn)
    norm = jnp.linalg.norm(n, axis=-1, keepdims=True)
    return n / jnp.where(norm > 0, norm, 1)


def closest_on_triangles(p: Array, a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    """Closest point of triangle(s) (a, b, c) to p, with its barycentric coordinates.

    Ericson, *Real-Time Collision Detection* (2005), section 5.1.5, without
    branches. Broadcasts over leading axes.

    Args:
        p, a, b, c: float[..., 3].

    Returns:
        (float[..., 3] closest point, float[..., 3] barycentric weights of a, b, c).
        A degenerate triangle gives one of its corners or edges.
    """
    dot = lambda x, y: jnp.sum(x * y, axis=-1)  # noqa: E731
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = p - b
    d3, d4 = dot(ab, bp), dot(ac, bp)
    cp = p - c
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2

    def safe(num, den):
        return num / jnp.where(den != 0, den, 1)

    one, zero = jnp.ones_like(d1), jnp.zeros_like(d1)
    # Interior (the default), then the edges and corners override it in turn.
    den = va + vb + vc
    v = safe(vb, den)
    w = safe(vc, den)
    u = 1 - v - w
    bary = jnp.stack([u, v, w], -1)

    def put(cond, new):
        return jnp.where(cond[..., None], new, bary)

    # edge bc
    w_bc = safe(d4 - d3, (d4 - d3) + (d5 - d6))
    bary = put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), jnp.stack([zero, 1 - w_bc, w_bc], -1))
    # edge ac
    w_ac = safe(d2, d2 - d6)
    bary = put((vb <= 0) & (d2 >= 0) & (d6 <= 0), jnp.stack([1 - w_ac, zero, w_ac], -1))
    # edge ab
    v_ab = safe(d1, d1 - d3)
    bary = put((vc <= 0) & (d1 >= 0) & (d3 <= 0), jnp.stack([1 - v_ab, v_ab, zero], -1))
    # corners
    bary = put((d6 >= 0) & (d5 <= d6), jnp.stack([zero, zero, one], -1))
    bary = put((d3 >= 0) & (d4 <= d3), jnp.stack([zero, one, zero], -1))
    bary = put((d1 <= 0) & (d2 <= 0), jnp.stack([one, zero, zero], -1))
    q = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    return q, bary


def umeyama(src: Array, dst: Array, weights: Array, scale: bool = True):
    """Weighted least-squares similarity (s, R, t) with dst ~ s R src + t (Umeyama 1991).

    Args:
        src, dst: float[m, 3].
        weights: float[m] >= 0 (not all zero).
        scale: estimate s; otherwise s = 1.

    Returns:
        (s float scalar, R float[3, 3] a rotation, t float[3]).
    """
    w = weights / jnp.maximum(jnp.sum(weights), 1e-30)
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s[None], dst - mu_d[None]
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = jnp.linalg.svd(cov)
    d = jnp.sign(jnp.linalg.det(u) * jnp.linalg.det(vt))
    d = jnp.where(d == 0, 1.0, d)
    e = jnp.array([1.0, 1.0, 0.0], src.dtype) + jnp.array([0.0, 0.0, 1.0], src.dtype) * d
    r = (u * e[None]) @ vt
    var = jnp.sum(w * jnp.sum(xs * xs, -1))
    s = jnp.sum(sig * e) / jnp.maximum(var, 1e-30) if scale else jnp.ones((), src.dtype)
    t = mu_d - s * (r @ mu_s)
    return s, r, t


# ------------------------------------------------------------ closest points
class PointGrid(NamedTuple):
    """A uniform grid over a point set, for nearest-point queries.

    Build it on the host with :func:`build_grid`. Grids with equal shapes
    (``num_cells``, ``capacity``, point count) stack into a batch for ``vmap``.

    Attributes:
        points: float32[N, 3], the points sorted by cell (invalid points last).
        index: int32[N], the original index of each sorted point.
        start: int32[C], the first sorted position of each cell.
        count: int32[C], the points in each cell (unused cells 0).
        origin: float32[3], the grid's lower corner.
        cell: float32 scalar, the cell's side: a query finds its exact nearest
            point when that point is within ``cell`` of it.
        dims: int32[3], cells along x, y, z (their product <= C).
        slots: int32[K], ``arange(K)``; K, the most points in a cell, is static.
    """

    points: Array
    index: Array
    start: Array
    count: Array
    origin: Array
    cell: Array
    dims: Array
    slots: Array


def build_grid(
    points: np.ndarray,
    valid: np.ndarray | None,
    cell: float,
    *,
    num_cells: int | None = None,
    capacity: int | None = None,
) -> PointGrid:
    """Sort points into a uniform grid of cell side ``cell`` (host code, numpy).

    Args:
        points: float[N, 3].
        valid: bool[N] (None: all); invalid points are never found.
        cell: the cell side, in the points' units (> 0).
        num_cells: pad the cell tables to this length (>= the grid's cells),
            so that grids of several point sets share shapes.
        capacity: pad the per-cell capacity K to this (>= the fullest cell).

    Returns:
        A :class:`PointGrid` of numpy arrays.
    """
    points = np.asarray(points, np.float32)
    n = len(points)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    if not cell > 0:
        raise ValueError(f"cell must be > 0, got {cell}")
    if not valid.any():
        raise ValueError("no valid points to grid")
    p = points[valid]
    origin = p.min(0) - cell
    dims = np.floor((p.max(0) - origin) / cell).astype(np.int64) + 2
    ijk = np.floor((p - origin) / cell).astype(np.int64)
    flat = ijk[:, 0] + dims[0] * (ijk[:, 1] + dims[1] * ijk[:, 2])
    total = int(np.prod(dims))
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=total)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = int(counts.max())
    if num_cells is not None and num_cells < total:
        raise ValueError(f"num_cells {num_cells} < the grid's {total} cells")
    if capacity is not None and capacity < k:
        raise ValueError(f"capacity {capacity} < the fullest cell's {k} points")
    c = total if num_cells is None else num_cells
    k = k if capacity is None else capacity
    ids = np.nonzero(valid)[0][order]
    rest = np.nonzero(~valid)[0]
    index = np.concatenate([ids, rest]).astype(np.int32)
    start = np.zeros(c, np.int32)
    count = np.zeros(c, np.int32)
    start[:total], count[:total] = starts, counts
    return PointGrid(
        points[index],
        index,
        start,
        count,
        origin.astype(np.float32),
        np.float32(cell),
        dims.astype(np.int32),
        np.arange(k, dtype=np.int32),
    )


def grid_shape(points: np.ndarray, valid: np.ndarray | None, cell: float) -> tuple[int, int]:
    """(cells, capacity) that :func:`build_grid` would need for these points."""
    points = np.asarray(points, np.float32)
    p = points if valid is None else points[np.asarray(valid, bool)]
    origin = p.min(0) - cell
    dims = np.floor((p.max(0) - origin) / cell).astype(np.int64) + 2
    ijk = np.floor((p - origin) / cell).astype(np.int64)
    flat = ijk[:, 0] + dims[0] * (ijk[:, 1] + dims[1] * ijk[:, 2])
    return int(np.prod(dims)), int(np.bincount(flat).max())


def _nearest_in_grid(grid: PointGrid, q: Array) -> tuple[Array, Array]:
    """(original index int32[Q], squared distance float[Q]; inf when no point within a cell)."""
    ijk = jnp.floor((q - grid.origin[None]) / grid.cell).astype(jnp.int32)
    nb = ijk[:, None, :] + jnp.asarray(_OFFSETS)[None]  # [Q, 27, 3]
    inside = jnp.all((nb >= 0) & (nb < grid.dims[None, None]), axis=-1)
    flat = nb[..., 0] + grid.dims[0] * (nb[..., 1] + grid.dims[1] * nb[..., 2])
    flat = jnp.where(inside, flat, 0)
    start = grid.start[flat]
    count = jnp.where(inside, grid.count[flat], 0)
    ok = grid.slots[None, None] < count[..., None]  # [Q, 27, K]
    pos = jnp.where(ok, start[..., None] + grid.slots[None, None], 0)
    d2 = jnp.sum((grid.points[pos] - q[:, None, None, :]) ** 2, axis=-1)
    d2 = jnp.where(ok, d2, jnp.inf).reshape(q.shape[0], -1)
    best = jnp.argmin(d2, axis=1)
    return grid.index[pos.reshape(q.shape[0], -1)[jnp.arange(q.shape[0]), best]], jnp.min(
        d2, axis=1
    )


class SurfaceTarget(NamedTuple):
    """A target surface for closest-point queries (one scan), padded to static shapes.

    Attributes:
        verts: float32[N, 3].
        normals: float32[N, 3], unit vertex normals (zero on padding).
        faces: int32[F, 3] (padding rows repeat vertex 0).
        ring: int32[N, R], the triangles around each vertex, -1 padded.
        border: bool[N], vertices on the surface's border (holes, edge of the scan).
        neighbours: int32[N, V], each vertex's neighbours, padded with itself.
        grid: a :class:`PointGrid` over the valid vertices.
    """

    verts: Array
    normals: Array
    faces: Array
    ring: Array
    border: Array
    neighbours: Array
    grid: PointGrid


def surface_target(
    verts: np.ndarray,
    faces: np.ndarray,
    cell: float,
    *,
    num_verts: int | None = None,
    num_faces: int | None = None,
    ring_size: int | None = None,
    num_cells: int | None = None,
    capacity: int | None = None,
    num_neighbours: int | None = None,
) -> SurfaceTarget:
    """A :class:`SurfaceTarget` of a triangle mesh (host code), padded to the given sizes.

    Vertices on no triangle are left out of the search. Sizes left None are
    the mesh's own (use :func:`target_sizes` to find common sizes for a batch).
    """
    verts = np.asarray(verts, np.float32)
    faces = np.asarray(faces, np.int64)
    n, f = len(verts), len(faces)
    used = np.zeros(n, bool)
    used[faces.ravel()] = True
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    key = edges[:, 0] * n + edges[:, 1]
    uniq, cnt = np.unique(key, return_counts=True)
    border = np.zeros(n, bool)
    once = uniq[cnt == 1]
    border[once // n] = True
    border[once % n] = True
    # triangle rings
    corner_v = faces.ravel()
    corner_t = np.repeat(np.arange(f), 3)
    order = np.argsort(corner_v, kind="stable")
    val = np.bincount(corner_v, minlength=n)
    r = int(val.max()) if ring_size is None else ring_size
    if r < val.max():
        raise ValueError(f"ring_size {r} < the largest vertex valence {val.max()}")
    nn = n if num_verts is None else num_verts
    ff = f if num_faces is None else num_faces
    ring = -np.ones((nn, r), np.int32)
    starts = np.concatenate([[0], np.cumsum(val)[:-1]])
    slot = np.arange(len(corner_v)) - np.repeat(starts, val)
    ring[corner_v[order], slot] = corner_t[order]
    normals = _vertex_normals_np(verts, faces)
    pv = np.zeros((nn, 3), np.float32)
    pv[:n] = verts
    pn = np.zeros((nn, 3), np.float32)
    pn[:n] = normals
    pf = np.zeros((ff, 3), np.int32)
    pf[:f] = faces
    pb = np.zeros(nn, bool)
    pb[:n] = border
    valid = np.zeros(nn, bool)
    valid[:n] = used
    grid = build_grid(pv, valid, cell, num_cells=num_cells, capacity=capacity)
    nb = _neighbour_table(faces, nn, num_neighbours)
    return SurfaceTarget(pv, pn, pf, ring, pb, nb, grid)


def _vertex_normals_np(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`vertex_normals` in numpy (host code: no compilation per mesh size)."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n = np.stack(
        [np.bincount(faces.ravel(), np.repeat(fn[:, k], 3), len(verts)) for k in range(3)], 1
    )
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(norm > 0, norm, 1)).astype(np.float32)


def _neighbour_table(faces: np.ndarray, n: int, width: int | None = None) -> np.ndarray:
    """int32[n, V]: each vertex's edge neighbours, padded with the vertex itself."""
    faces = np.asarray(faces, np.int64)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.unique(np.concatenate([e[:, 0] * n + e[:, 1], e[:, 1] * n + e[:, 0]]))
    both = np.stack([key // n, key % n], 1)  # sorted by start vertex
    deg = np.bincount(both[:, 0], minlength=n)
    k = max(int(deg.max()), 1) if width is None else width
    if k < deg.max():
        raise ValueError(f"num_neighbours {k} < the largest vertex degree {deg.max()}")
    nb = np.repeat(np.arange(n)[:, None], k, 1).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(deg)[:-1]])
    slot = np.arange(len(both)) - np.repeat(starts, deg)
    nb[both[:, 0], slot] = both[:, 1]
    return nb


def target_sizes(meshes, cell: float) -> dict:
    """Common padded sizes for :func:`surface_target` over (verts, faces) pairs."""
    sizes = dict(num_verts=0, num_faces=0, ring_size=0, num_cells=0, capacity=0,
                 num_neighbours=0)  # fmt: skip
    for verts, faces in meshes:
        faces = np.asarray(faces)
        used = np.zeros(len(verts), bool)
        used[faces.ravel()] = True
        c, k = grid_shape(verts, used, cell)
        sizes["num_verts"] = max(sizes["num_verts"], len(verts))
        sizes["num_faces"] = max(sizes["num_faces"], len(faces))
        sizes["ring_size"] = max(sizes["ring_size"], int(np.bincount(faces.ravel()).max()))
        sizes["num_cells"] = max(sizes["num_cells"], c)
        sizes["capacity"] = max(sizes["capacity"], k)
        nb = _neighbour_table(faces, len(verts))
        sizes["num_neighbours"] = max(sizes["num_neighbours"], nb.shape[1])
    return sizes


class Closest(NamedTuple):
    """Closest points on a :class:`SurfaceTarget` to a set of queries.

    Attributes:
        point: float[Q, 3], the closest surface point (the query itself when none).
        normal: float[Q, 3], the interpolated unit normal there.
        distance: float[Q].
        border: bool[Q], whether the nearest target vertex is on the border.
        vertex: int32[Q], the nearest target vertex.
    """

    point: Array
    normal: Array
    distance: Array
    border: Array
    vertex: Array


def nearest_vertex(target: SurfaceTarget, queries: Array, *, block: int = 1024):
    """Each query's nearest target vertex by the grid: (int32[Q], distance float[Q]).

    Exact when that vertex lies within ``target.grid.cell``; the distance is
    inf when no vertex does (the vertex is then 0).
    """

    def one_block(q):
        v, d2 = _nearest_in_grid(target.grid, q)
        return v, jnp.sqrt(d2)

    q = queries.shape[0]
    if q <= block:
        return one_block(queries)
    pad = (-q) % block
    qs = jnp.concatenate([queries, jnp.broadcast_to(queries[:1], (pad, 3))])
    v, d = jax.lax.map(one_block, qs.reshape(-1, block, 3))
    return v.reshape(-1)[:q], d.reshape(-1)[:q]


def walk_nearest(target: SurfaceTarget, queries: Array, start: Array, steps: int) -> Array:
    """Greedy descent over the target's edges from ``start`` towards each query.

    Each step moves to the neighbour nearest the query, or stays where no
    neighbour is nearer. On a
    surface closer to the query than its own spacing this ends at the nearest
    vertex; it costs ``steps`` x V distances per query, where the grid costs
    27 x K. int32[Q] -> int32[Q].
    """

    def step(_, v):
        cand = jnp.concatenate([v[:, None], target.neighbours[v]], axis=1)  # [Q, 1 + V]
        d2 = jnp.sum((target.verts[cand] - queries[:, None, :]) ** 2, axis=-1)
        return jnp.take_along_axis(cand, jnp.argmin(d2, axis=1)[:, None], 1)[:, 0]

    return jax.lax.fori_loop(0, steps, step, start)


def closest_points(target: SurfaceTarget, queries: Array, vertex: Array) -> Closest:
    """Closest points on the target surface among the triangles around a vertex.

    With ``vertex`` the nearest target vertex (:func:`nearest_vertex`,
    :func:`walk_nearest`) this is the surface's closest point unless a farther
    vertex's triangle is nearer, which needs a fold sharper than the mesh's
    spacing.

    Args:
        target: the surface.
        queries: float[Q, 3].
        vertex: int32[Q], the nearest target vertex of each query.

    Returns:
        A :class:`Closest`.
    """
    tris = target.ring[vertex]  # [Q, R]
    ok = tris >= 0
    corners = target.faces[jnp.where(ok, tris, 0)]  # [Q, R, 3]
    a, b, c = (target.verts[corners[..., k]] for k in range(3))
    p, bary = closest_on_triangles(queries[:, None, :], a, b, c)
    dist = jnp.where(ok, jnp.linalg.norm(p - queries[:, None, :], axis=-1), jnp.inf)
    best = jnp.argmin(dist, axis=1)
    take = lambda x: jnp.take_along_axis(x, best[:, None, None], 1)[:, 0]  # noqa: E731
    point, w = take(p), take(bary)
    nrm = jnp.einsum("bk,bkd->bd", w, target.normals[take(corners)])
    nrm = nrm / jnp.maximum(jnp.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    return Closest(point, nrm, jnp.min(dist, axis=1), target.border[vertex], vertex)


# --------------------------------------------------------------------- NICP
class TemplateGraph(NamedTuple):
    """The template's edge graph for the stiffness term.

    Attributes:
        neighbours: int32[n, K], each vertex's neighbours, padded with the
            vertex itself (a self-edge adds nothing to the stiffness term).
        degree: float32[n], neighbours per vertex.
    """

    neighbours: Array
    degree: Array


def template_graph(faces: np.ndarray, num_verts: int) -> TemplateGraph:
    """The :class:`TemplateGraph` of a triangle mesh (host code)."""
    nb = _neighbour_table(faces, num_verts)
    deg = np.sum(nb != np.arange(num_verts)[:, None], axis=1)
    return TemplateGraph(nb, deg.astype(np.float32))


class NicpState(NamedTuple):
    """State of :func:`nicp`.

    Attributes:
        x: float[n, 4, 3], each vertex's affine transform ([v, 1] @ x).
        verts: float[n, 3], the deformed template.
        weights: float[n], the last correspondences' weights (0 = rejected).
        distance: float[n], the last distances to the target.
        vertex: int32[n], each template vertex's nearest target vertex.
        cg_iters: int32, conjugate-gradient iterations of the last solve.
    """

    x: Array
    verts: Array
    weights: Array
    distance: Array
    vertex: Array
    cg_iters: Array


def _apply(x: Array, v: Array) -> Array:
    return jnp.einsum("nk,nkd->nd", jnp.concatenate([v, jnp.ones_like(v[:, :1])], 1), x)


def nicp_solve(
    graph: TemplateGraph,
    source: Array,
    targets: Array,
    weights: Array,
    alpha: Array,
    gamma: Array | float,
    x0: Array,
    *,
    tol: float = 1e-5,
    maxiter: int = 200,
) -> tuple[Array, Array]:
    """The exact minimizer X of the NICP energy for fixed correspondences.

    Landmarks enter as extra weight on their vertex with their position as
    target (fold them into ``targets`` and ``weights`` as the weighted mean).

    Args:
        graph: the template's edges.
        source: float[n, 3], the undeformed template (v_i).
        targets: float[n, 3], u_i.
        weights: float[n] >= 0, w_i.
        alpha: float scalar > 0, the stiffness.
        gamma: float scalar, weight of the translation row against the linear
            part (1 / length: set it from the data's scale).
        x0: float[n, 4, 3], the starting guess (the previous solution).
        tol: relative residual of conjugate gradients.
        maxiter: most conjugate-gradient iterations.

    Returns:
        (x float[n, 4, 3], iterations int32).
    """
    d = jnp.concatenate([source, jnp.ones_like(source[:, :1])], 1)  # [n, 4]
    gamma = jnp.asarray(gamma, source.dtype)
    g2 = jnp.concatenate([jnp.ones(3, source.dtype), (gamma * gamma)[None]])[:, None]
    a2 = alpha * alpha
    blocks = weights[:, None, None] * d[:, :, None] * d[:, None, :]  # [n, 4, 4]
    rhs = weights[:, None, None] * d[:, :, None] * targets[:, None, :]  # [n, 4, 3]
    nb = graph.neighbours

    def matvec(x):
        lap = nb.shape[1] * x - jnp.sum(x[nb], axis=1)  # self-padding cancels
        return a2 * g2[None] * lap + jnp.einsum("nij,njd->nid", blocks, x)

    diag = blocks + a2 * graph.degree[:, None, None] * jnp.diag(g2[:, 0])[None]
    pinv = jnp.linalg.inv(diag + 1e-12 * jnp.eye(4, dtype=source.dtype)[None])

    def precond(r):
        return jnp.einsum("nij,njd->nid", pinv, r)

    # Preconditioned conjugate gradients, the three columns as one vector (the
    # operator is block diagonal over them). Written out so that the iteration
    # count comes back and the loop stays a while_loop under vmap.
    bnorm = jnp.sqrt(jnp.sum(rhs * rhs))
    r = rhs - matvec(x0)
    z = precond(r)
    rz = jnp.sum(r * z)

    def cond(c):
        _, r, _, _, k = c
        return (jnp.sqrt(jnp.sum(r * r)) > tol * bnorm) & (k < maxiter)

    def body(c):
        x, r, p, rz, k = c
        ap = matvec(p)
        step = rz / jnp.where(jnp.sum(p * ap) != 0, jnp.sum(p * ap), 1)
        x = x + step * p
        r = r - step * ap
        z = precond(r)
        rz_new = jnp.sum(r * z)
        p = z + (rz_new / jnp.where(rz != 0, rz, 1)) * p
        return x, r, p, rz_new, k + 1

    x, _, _, _, k = jax.lax.while_loop(cond, body, (x0, r, z, rz, jnp.int32(0)))
    return x, k


def nicp(
    graph: TemplateGraph,
    faces: Array,
    source: Array,
    target: SurfaceTarget,
    alphas: Array,
    betas: Array,
    *,
    start_vertex: Array,
    walk_steps: int = 4,
    landmark_vertex: Array,
    landmark_target: Array,
    landmark_valid: Array,
    max_distance: Array,
    min_cos: float = 0.5,
    gamma: Array | float = 1.0,
    vertex_valid: Array | None = None,
    tol: float = 1e-5,
    maxiter: int = 200,
) -> NicpState:
    """Optimal-step non-rigid ICP of a template onto a target surface.

    One iteration per entry of ``alphas``: closest points from the current
    deformed template, rejection (farther than ``max_distance``, normals at
    more than arccos(``min_cos``), on the target's border), then the exact
    step for that stiffness (:func:`nicp_solve`), warm-started.

    Args:
        graph: the template's edges (:func:`template_graph`).
        faces: int32[f, 3], the template's triangles (for its normals).
        source: float[n, 3], the template, already roughly on the target.
        target: the target surface.
        alphas: float[T], the stiffness of each iteration (falling).
        betas: float[T], the landmarks' weight at each iteration.
        start_vertex: int32[n], a target vertex near each template vertex
            (the nearest, or one a few edges from it).
        walk_steps: steps of :func:`walk_nearest` before each iteration.
        landmark_vertex: int32[L], template vertex of each landmark.
        landmark_target: float[L, 3], its position on the target.
        landmark_valid: bool[L].
        max_distance: float scalar or float[T], the rejection distance.
        min_cos: the least cosine between template and target normals.
        gamma: weight of the translation row in the stiffness term.
        vertex_valid: bool[n], vertices that may take correspondences (None: all).
        tol, maxiter: of each conjugate-gradient solve.

    Returns:
        The final :class:`NicpState` (its weights and distances those of the
        last correspondences, before the last solve).
    """
    n = source.shape[0]
    dtype = source.dtype
    max_distance = jnp.broadcast_to(jnp.asarray(max_distance, dtype), alphas.shape)
    lm_w = landmark_valid.astype(dtype)
    valid = jnp.ones(n, bool) if vertex_valid is None else vertex_valid
    x0 = jnp.broadcast_to(jnp.concatenate([jnp.eye(3, dtype=dtype), jnp.zeros((1, 3), dtype)]),
                          (n, 4, 3))  # fmt: skip

    def step(state, inputs):
        alpha, beta, tau = inputs
        v = walk_nearest(target, state.verts, state.vertex, walk_steps)
        c = closest_points(target, state.verts, v)
        nrm = vertex_normals(state.verts, faces)
        ok = valid & (c.distance < tau) & ~c.border & (jnp.sum(nrm * c.normal, -1) > min_cos)
        w = ok.astype(dtype)
        # landmarks: extra weight beta^2 at their vertex, the weighted mean target
        lw = jnp.zeros(n, dtype).at[landmark_vertex].add(beta * beta * lm_w)
        lsum = (
            jnp.zeros((n, 3), dtype)
            .at[landmark_vertex]
            .add((beta * beta * lm_w)[:, None] * landmark_target)
        )
        wt = w + lw
        u = (w[:, None] * c.point + lsum) / jnp.where(wt > 0, wt, 1)[:, None]
        x, k = nicp_solve(graph, source, u, wt, alpha, gamma, state.x, tol=tol, maxiter=maxiter)
        new = NicpState(x, _apply(x, source), w, c.distance, v, k)
        return new, None

    init = NicpState(x0, source, jnp.zeros(n, dtype), jnp.full(n, jnp.inf, dtype),
                     start_vertex, jnp.int32(0))  # fmt: skip
    state, _ = jax.lax.scan(step, init, (alphas, betas, max_distance))
    return state
