"""Triangle rasterization in JAX: a tiled hard z-buffer and a SoftRas soft rasterizer.

Both take vertices already in image space: float[V, 3] = (u, v, z) with u, v in
pixels ((0, 0) the centre of the top-left pixel, v down) and z the depth along
the viewing direction (smaller is nearer). Pixel (y, x) samples the point
(u, v) = (x, y).

No triangle is missed, whatever its size, as long as the static plan holds the
vertices drawn: :func:`raster_plan` counts what they need, and a plan made for other
vertices may be too small, in which case the triangles beyond a capacity are left
out; :func:`plan_overflow` counts them (callers check it: vafx's renderer refuses a
plan that drops any). :func:`rasterize` scatters
every triangle whose pixel bounding box fits in 16 x 16 (nearly all triangles
of a face mesh) straight into the z-buffer, in groups of equal box size (a
scatter-min of depths, then of ids among the nearest); larger triangles go
through tiles: the image is cut into square tiles, every tile lists the large
triangles whose bounding box overlaps it, and each of its pixels tests only
that list. :func:`soft_rasterize` scatters every triangle's SoftRas terms into
the pixels of its box grown by the soft margin, again in groups of equal box
size, with a flat list of pixel-triangle pairs for the rest. Sizes are static:
:func:`raster_plan` and :func:`soft_plan` count them on the host first.

- :func:`rasterize`: per pixel the nearest triangle, its perspective-correct
  barycentrics and depth (back faces optionally culled).
- :func:`soft_rasterize`: SoftRas (Liu, Li, Chen and Li, ICCV 2019): per
  triangle a probability map sigmoid(+-d^2 / sigma) of the pixel's squared
  distance d to the triangle (positive inside), colours aggregated with
  softmax weights of inverse depth at temperature gamma, plus a background
  term; the silhouette 1 - prod(1 - D). Differentiable in vertices and colours.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "Fragments",
    "RasterPlan",
    "SoftPlan",
    "interpolate",
    "plan_overflow",
    "raster_plan",
    "rasterize",
    "rasterize_batch",
    "sample_bicubic",
    "sample_bilinear",
    "soft_margin",
    "soft_plan",
    "soft_rasterize",
    "tile_capacity",
    "tile_size",
]


class Fragments(NamedTuple):
    """What :func:`rasterize` returns for one image.

    Attributes:
        triangle: int32[H, W], the visible triangle, -1 for background.
        bary: float[H, W, 3], perspective-correct barycentric coordinates (0 off the mesh).
        depth: float[H, W], interpolated depth (inf off the mesh).
    """

    triangle: Array
    bary: Array
    depth: Array


def tile_size(height: int, width: int) -> int:
    """Tile side in pixels: 8 to 64, so that an image has at most about 1,024 tiles."""
    side = max(height, width)
    return int(min(64, max(8, 1 << math.ceil(math.log2(max(side / 32, 1))))))


def _fold(op, x: Array, axis: int = -1) -> Array:
    """Reduce a short axis (2 to 9 entries) with an elementwise ``op``, unrolled.

    XLA's CPU backend hands reductions to a library call that ran 5 to 10 times
    slower than these elementwise terms for axes this short (the corners of a
    triangle, the coordinates of a point); XLA fuses the terms with their neighbours.
    """
    parts = [jax.lax.index_in_dim(x, i, axis, keepdims=False) for i in range(x.shape[axis])]
    return functools.reduce(op, parts)


def _tile_boxes(height, width, tile):
    ty, tx = -(-height // tile), -(-width // tile)
    y0 = jnp.arange(ty) * tile
    x0 = jnp.arange(tx) * tile
    yy, xx = jnp.meshgrid(y0, x0, indexing="ij")
    return ty, tx, yy.reshape(-1), xx.reshape(-1)


SIDES = (2, 4, 8, 16)  # scatter groups: triangles whose pixel box fits in kx x ky
SMALL = SIDES[-1]
GROUPS = tuple((kx, ky) for ky in SIDES for kx in SIDES)


def _extents(verts, faces):
    """float[F, 2]: the sides (x, y) of the triangle's pixel-centre bounding box (inf if not finite)."""
    uv = verts[faces][..., :2]
    ext = jnp.floor(_fold(jnp.maximum, uv, 1)) - jnp.ceil(_fold(jnp.minimum, uv, 1)) + 1
    return jnp.where(jnp.isfinite(ext), ext, jnp.inf)


def _extent(verts, faces):
    """float[F]: the larger side of the triangle's pixel-centre bounding box."""
    return _fold(jnp.maximum, _extents(verts, faces), 1)


def _finite(tri):
    """bool[F]: all nine coordinates of the triangle are finite."""
    return _fold(jnp.logical_and, jnp.isfinite(tri).reshape(tri.shape[0], -1), 1)


def _group(verts, faces):
    """int32[F]: the scatter group of each triangle (index into GROUPS), len(GROUPS) if too large."""
    ext = _extents(verts, faces)
    gx = _sides_index(ext[:, 0], SIDES)
    gy = _sides_index(ext[:, 1], SIDES)
    small = (gx < len(SIDES)) & (gy < len(SIDES))
    return jnp.where(small, gy * len(SIDES) + gx, len(GROUPS)).astype(jnp.int32)


def _sides_index(ext, sides):
    """int32[...]: the index of the first of ``sides`` (ascending) >= ext; len(sides) if none.

    A count of comparisons: XLA's CPU backend ran ``searchsorted`` as a loop.
    """
    return functools.reduce(jnp.add, [(ext > s).astype(jnp.int32) for s in sides])


def _group_members(group, caps):
    """Every scatter group's member slots, from one sort of the triangles by group.

    Args:
        group: int32[F], each triangle's group in [0, len(caps)] (len(caps): none).
        caps: static capacity of each group.

    Returns:
        per group, None for a capacity of 0, else (ids int32[cap]: its first
        ``cap`` triangles in ascending order, 0 in empty slots; bool[cap]: the
        slots that hold one). One sort of F keys ran 4x faster than a
        ``nonzero`` per group for the ICT face's 16 groups.
    """
    n = group.shape[0]
    if not any(caps):
        return [None] * len(caps)
    if (len(caps) + 1) * n >= 2**31:
        raise ValueError(f"{n} triangles are too many to sort into {len(caps)} groups in int32")
    key = jnp.sort(group * n + jnp.arange(n, dtype=jnp.int32))
    counts = jnp.bincount(group, length=len(caps) + 1)
    start = jnp.cumsum(counts) - counts
    key = jnp.concatenate([key, jnp.zeros((max(caps, default=0),), key.dtype)])
    out = []
    for g, cap in enumerate(caps):
        if not cap:
            out.append(None)
            continue
        member = jnp.arange(cap) < counts[g]
        ids = jax.lax.dynamic_slice(key, (start[g],), (cap,)) - g * n
        out.append((jnp.where(member, ids, 0), member))
    return out


def _small(verts, faces):
    """bool[F]: the triangle's pixel-centre bounding box fits in SMALL x SMALL."""
    return _extent(verts, faces) <= SMALL


def _overlap(verts, faces, height, width, tile, margin, only_large=False):
    """bool[T, F]: triangle bounding boxes (grown by margin px) against tiles."""
    tri = verts[faces]  # [F, 3, 3]
    lo = _fold(jnp.minimum, tri[..., :2], 1) - margin
    hi = _fold(jnp.maximum, tri[..., :2], 1) + margin
    _, _, ty0, tx0 = _tile_boxes(height, width, tile)
    ty0, tx0 = ty0.astype(verts.dtype), tx0.astype(verts.dtype)
    # a tile covers pixel centres ty0 .. ty0 + tile - 1
    oy = (hi[None, :, 1] >= ty0[:, None]) & (lo[None, :, 1] <= ty0[:, None] + tile - 1)
    ox = (hi[None, :, 0] >= tx0[:, None]) & (lo[None, :, 0] <= tx0[:, None] + tile - 1)
    finite = _finite(tri)
    if only_large:
        finite = finite & ~_small(verts, faces)
    return oy & ox & finite[None, :]


@functools.partial(jax.jit, static_argnames=("height", "width", "tile", "only_large"))
def _max_per_tile_batch(verts, faces, height, width, tile, margin, only_large):
    return jax.lax.map(
        lambda v: jnp.max(jnp.sum(_overlap(v, faces, height, width, tile, margin, only_large), 1)),
        verts,
    )


class RasterPlan(NamedTuple):
    """Static sizes for :func:`rasterize` (hashable): from :func:`raster_plan`.

    Attributes:
        levels: capacity of each scatter group (triangles whose pixel box fits
            in kx x ky, for the (kx, ky) of ``GROUPS``; powers of two, or 0).
        large: capacity for triangles too large to scatter (power of two, or 0).
        per_tile: capacity of a tile's list of them (power of two, or 0).
    """

    levels: tuple[int, ...]
    large: int
    per_tile: int


@jax.jit
def _level_counts(verts, faces):
    """int[len(GROUPS) + 1]: triangles per scatter group, then those too large to scatter."""
    return jnp.bincount(_group(verts, faces), length=len(GROUPS) + 1)


_level_counts_batch = jax.jit(jax.vmap(_level_counts, in_axes=(0, None)))


def _pow2(m: int, floor: int = 8) -> int:
    return 0 if m == 0 else max(floor, 1 << math.ceil(math.log2(m)))


def _quarter_pow2(m: int, floor: int) -> int:
    """0 for 0, else the least of 2^k x (1, 1.25, 1.5, 1.75) >= max(m, floor).

    Finer than powers of two (a scatter group's padding wastes at most a fifth)
    while still taking few distinct values, so plans repeat and compiled code is reused.
    """
    if m == 0:
        return 0
    m = max(m, floor)
    k = max(math.ceil(math.log2(m)) - 1, 2)
    step = 1 << (k - 2)
    return -(-m // step) * step


def raster_plan(verts, faces, height: int, width: int) -> RasterPlan:
    """Count on the host what :func:`rasterize` must hold (for a batch [B, V, 3]: the largest)."""
    v = jnp.asarray(verts)
    f = jnp.asarray(faces)
    vs = v if v.ndim == 3 else v[None]
    counts = np.max(np.asarray(_level_counts_batch(vs, f)), axis=0)
    levels = tuple(_quarter_pow2(int(c), 16) for c in counts[:-1])
    large = int(counts[-1])
    if large == 0:
        return RasterPlan(levels, 0, 0)
    return RasterPlan(levels, _pow2(large), tile_capacity(verts, faces, height, width, None))


def plan_overflow(verts, faces, height: int, width: int, plan: RasterPlan) -> int:
    """How many triangles :func:`rasterize` would leave out with ``plan`` (0: none).

    For a batch (verts [B, V, 3]) the largest over the images. Counts, on the host,
    the triangles of each scatter group beyond its capacity, those too large to scatter
    beyond ``plan.large``, and the entries beyond ``plan.per_tile`` in the fullest tile
    (a triangle left out of one tile's list misses that tile's pixels).
    """
    v = jnp.asarray(verts)
    f = jnp.asarray(faces)
    vs = v if v.ndim == 3 else v[None]
    counts = np.asarray(_level_counts_batch(vs, f))  # [B, groups + 1]
    caps = np.array([*plan.levels, plan.large])
    over = np.maximum(counts - caps[None], 0).sum(axis=1)
    if counts[:, -1].max() > 0:
        tile = tile_size(height, width)
        per_tile = np.asarray(_max_per_tile_batch(vs, f, height, width, tile, 0.0, True))
        over = over + np.maximum(per_tile - plan.per_tile, 0)
    return int(over.max())


def tile_capacity(verts, faces, height: int, width: int, margin: float | None = None) -> int:
    """The static tile-list length that holds every tile's triangles (a power of two, >= 8).

    Runs on the host before :func:`rasterize`; for a batch (verts [B, V, 3])
    it returns the largest over the images. ``margin=None`` counts only the
    triangles too large to scatter (those :func:`rasterize` tiles); a number
    counts every triangle, boxes grown by the margin in pixels.
    """
    tile = tile_size(height, width)
    v = jnp.asarray(verts)
    f = jnp.asarray(faces)
    only_large = margin is None
    mg = 0.0 if margin is None else margin
    vs = v if v.ndim == 3 else v[None]
    m = int(jnp.max(_max_per_tile_batch(vs, f, height, width, tile, mg, only_large)))
    return max(8, 1 << math.ceil(math.log2(max(m, 1))))


def _edge_setup(tri2):
    """Screen-space barycentric weights of points against triangles."""
    a, b, c = tri2[..., 0, :], tri2[..., 1, :], tri2[..., 2, :]
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )
    return a, b, c, area


def _bary(p, a, b, c, area):
    """p: [P, 1, 2]; a, b, c: [1, K, 2]; area: [1, K] -> [P, K, 3] (nan-free for degenerate)."""

    def cross(o, q):
        return (q[..., 0] - o[..., 0]) * (p[..., 1] - o[..., 1]) - (q[..., 1] - o[..., 1]) * (
            p[..., 0] - o[..., 0]
        )

    w0 = cross(b, c)
    w1 = cross(c, a)
    w2 = cross(a, b)
    safe = jnp.where(area != 0, area, 1.0)
    return jnp.stack([w0, w1, w2], -1) / safe[..., None]


def _bary_steps(a, b, c, area):
    """Screen-space gradients of the barycentrics: (d w / dx, d w / dy), float[F, 3] each.

    a, b, c: float[F, 2] corners; area: float[F] (twice the signed area; 0 gives 0).
    """
    safe = jnp.where(area != 0, area, 1.0)[:, None]
    gx = jnp.stack([b[:, 1] - c[:, 1], c[:, 1] - a[:, 1], a[:, 1] - b[:, 1]], -1) / safe
    gy = jnp.stack([c[:, 0] - b[:, 0], a[:, 0] - c[:, 0], b[:, 0] - a[:, 0]], -1) / safe
    return gx, gy


def _untile(x, ty, tx, tile, height, width):
    """Per-tile results [T, tile * tile, ...] back to an image [H, W, ...]."""
    extra = x.shape[2:]
    x = x.reshape(ty, tx, tile, tile, *extra)
    x = jnp.moveaxis(x, 2, 1).reshape(ty * tile, tx * tile, *extra)
    return x[:height, :width]


def _pixels(tile, ty0, tx0):
    py, px = jnp.meshgrid(jnp.arange(tile), jnp.arange(tile), indexing="ij")
    return jnp.stack([tx0 + px.reshape(-1), ty0 + py.reshape(-1)], -1)  # [P, 2] (u, v)


@functools.partial(
    jax.jit, static_argnames=("height", "width", "plan", "cull_backfaces", "perspective")
)
def rasterize(
    verts: Array,
    faces: Array,
    height: int,
    width: int,
    plan: RasterPlan,
    *,
    cull_backfaces: bool = False,
    perspective: bool = False,
) -> Fragments:
    """Hard rasterization with a z-buffer (one image; vmap for batches).

    Args:
        verts: float[V, 3] image-space vertices (u, v, z).
        faces: int32[F, 3].
        height, width: image size (static).
        plan: static sizes from :func:`raster_plan`.
        cull_backfaces: drop triangles whose corners run clockwise on screen
            (counter-clockwise is front-facing for y up; on screen, with v
            down, front faces run clockwise in (u, v): those are kept).
        perspective: z is view depth of a pinhole camera: barycentrics are
            corrected by 1/z (orthographic depth needs no correction).

    Returns:
        :class:`Fragments`.
    """
    tri_id, depth = _nearest(verts, faces, height, width, plan, cull_backfaces, perspective)
    return _fragments(verts, faces, tri_id, depth, perspective)


def _nearest(verts, faces, height, width, plan, cull_backfaces, perspective):
    """The z-buffer: (nearest triangle int32[H, W], -1 for none; its depth float[H, W], inf for none)."""
    dtype = verts.dtype
    tri_all = verts[faces]  # [F, 3, 3]
    a_all, b_all, c_all, area_all = _edge_setup(tri_all[:, :, :2])
    front = (area_all < 0) if cull_backfaces else jnp.ones_like(area_all, bool)
    usable = (area_all != 0) & front & _finite(tri_all)

    # 1. small triangles (all of a face mesh at 512 x 512): each scatters the
    #    depths of the pixel centres of its box, in groups of kx x ky boxes;
    #    edge functions and depth are planes, stepped from the box's corner
    group = _group(verts, faces)
    # per triangle: the three edge functions at the box's first pixel centre lo,
    # their steps in y and x, the depth plane (the same three), lo itself
    lo = jnp.ceil(_fold(jnp.minimum, tri_all[..., :2], 1))  # [F, 2]
    w0 = _bary(lo[:, None], a_all[:, None], b_all[:, None], c_all[:, None], area_all[:, None])
    w0 = jnp.where(usable[:, None], w0[:, 0], -jnp.inf)  # a triangle left out never covers a pixel
    gx, gy = _bary_steps(a_all, b_all, c_all, area_all)
    q = 1.0 / tri_all[..., 2] if perspective else tri_all[..., 2]  # [F, 3]
    plane = [_fold(jnp.add, g * q) for g in (w0, gy, gx)]
    setup = jnp.concatenate([w0, gy, gx, jnp.stack(plane, -1), lo], -1)  # [F, 14]
    flats, depths, idss = [], [], []
    for (kx, ky), slots in zip(GROUPS, _group_members(group, plan.levels)):
        if slots is None:
            continue
        fid, member = slots
        rows = setup[fid]  # one gather per group
        tri = [rows[:, i] for i in range(12)]
        tri[0] = jnp.where(member, tri[0], -jnp.inf)
        tri += [rows[:, 12].astype(jnp.int32), rows[:, 13].astype(jnp.int32)]
        tri = [x[:, None, None] for x in tri]  # per triangle: [G, 1, 1] each
        ox = jnp.arange(kx, dtype=dtype)[None, None, :]
        oy = jnp.arange(ky, dtype=dtype)[None, :, None]
        w = [tri[i] + oy * tri[3 + i] + ox * tri[6 + i] for i in range(3)]  # 3 x [G, ky, kx]
        d = tri[9] + oy * tri[10] + ox * tri[11]
        if perspective:
            d = 1.0 / d
        px = tri[12] + jnp.arange(kx, dtype=jnp.int32)[None, None]
        py = tri[13] + jnp.arange(ky, dtype=jnp.int32)[None, :, None]
        inside = (w[0] >= 0) & (w[1] >= 0) & (w[2] >= 0)
        onimage = (px >= 0) & (px < width) & (py >= 0) & (py < height)
        # a pixel of the box outside the triangle scatters an infinite depth to its
        # own pixel (a no-op) rather than being dropped: dropping half the box at
        # random made the scatter's bounds test mispredict, 0.6 ms of 2.5
        flats.append(jnp.where(onimage, py * width + px, height * width).reshape(-1))
        depths.append(jnp.where(inside, d, jnp.inf).reshape(-1))
        idss.append(jnp.broadcast_to(fid[:, None, None], inside.shape).reshape(-1))
    zbuf = jnp.full((height * width,), jnp.inf, dtype)
    idbuf = jnp.full((height * width,), -1, jnp.int32)
    if flats:
        flat, depth, ids = jnp.concatenate(flats), jnp.concatenate(depths), jnp.concatenate(idss)
        zbuf = zbuf.at[flat].min(depth, mode="drop")
        win = jnp.isfinite(depth) & (depth <= zbuf.at[flat].get(mode="fill", fill_value=-jnp.inf))
        idbuf = idbuf.at[flat].max(jnp.where(win, ids, -1), mode="drop")

    # 2. large triangles: tiles, each testing the large triangles overlapping it
    zs = zbuf.reshape(height, width)
    tri_id = idbuf.reshape(height, width)
    best = zs
    if plan.large:
        tile = tile_size(height, width)
        ty, tx, ty0, tx0 = _tile_boxes(height, width, tile)
        large = jnp.nonzero((group == len(GROUPS)) & usable, size=plan.large, fill_value=-1)[0]
        lfaces = faces[jnp.maximum(large, 0)]
        ov = _overlap(verts, lfaces, height, width, tile, 0.0) & (large >= 0)[None, :]
        lists = jax.vmap(lambda row: jnp.nonzero(row, size=plan.per_tile, fill_value=-1)[0])(ov)
        lists = jnp.where(lists >= 0, large[jnp.maximum(lists, 0)], -1)  # back to face ids

        def one_tile(args):
            lst, y0, x0 = args
            valid = lst >= 0
            tri = tri_all[jnp.maximum(lst, 0)]  # [K, 3, 3]
            a, b, c, area = _edge_setup(tri[None, :, :, :2])
            p = _pixels(tile, y0, x0).astype(dtype)[:, None, :]
            w = _bary(p, a, b, c, area)  # [P, K, 3]
            inside = _fold(jnp.logical_and, w >= 0) & valid[None]
            z = tri[None, :, :, 2]
            d = 1.0 / _fold(jnp.add, w / z) if perspective else _fold(jnp.add, w * z)
            d = jnp.where(inside, d, jnp.inf)
            k = jnp.argmin(d, axis=1)
            best = jnp.take_along_axis(d, k[:, None], 1)[:, 0]
            return jnp.where(jnp.isfinite(best), lst[k], -1), best

        big_id, big_depth = jax.lax.map(one_tile, (lists, ty0, tx0), batch_size=64)
        big_id = _untile(big_id, ty, tx, tile, height, width)
        big_depth = _untile(big_depth, ty, tx, tile, height, width)
        tri_id = jnp.where(big_depth < zs, big_id, tri_id)
        best = jnp.minimum(big_depth, zs)

    return tri_id, best


def _fragments(verts, faces, tri_id, best, perspective):
    """:class:`Fragments` from the z-buffer's triangle ids and depths."""
    dtype = verts.dtype
    height, width = tri_id.shape
    tri_all = verts[faces]
    a_all, b_all, c_all, area_all = _edge_setup(tri_all[:, :, :2])
    # barycentrics of the winner at every pixel: (1, 0, 0) at its first corner a,
    # plus their gradients ([F, 3] rows, gathered per pixel) times the offset from
    # a; built as [H, W, 3] directly (stacking three [H, W] planes cost more)
    hit = tri_id >= 0
    k = jnp.maximum(tri_id, 0)
    grad_x, grad_y = _bary_steps(a_all, b_all, c_all, area_all)
    dx = jnp.arange(width, dtype=dtype)[None, :] - a_all[:, 0][k]  # [H, W]
    dy = jnp.arange(height, dtype=dtype)[:, None] - a_all[:, 1][k]
    first = jnp.asarray([1.0, 0.0, 0.0], dtype)
    wb = first[None, None] + grad_x[k] * dx[..., None] + grad_y[k] * dy[..., None]
    if perspective:
        wb = wb / tri_all[:, :, 2][k]
        wb = wb / _fold(jnp.add, wb)[..., None]
    wb = jnp.where(hit[..., None], wb, 0.0)
    return Fragments(tri_id, wb, jnp.where(hit, best, jnp.inf))


@functools.partial(
    jax.jit,
    static_argnames=("height", "width", "plan", "cull_backfaces", "perspective", "sequential"),
)
def rasterize_batch(
    verts: Array,
    faces: Array,
    height: int,
    width: int,
    plan: RasterPlan,
    *,
    cull_backfaces: bool = False,
    perspective: bool = False,
    sequential: bool | None = None,
) -> Fragments:
    """:func:`rasterize` over a batch of vertex sets: float[B, V, 3] -> Fragments with a leading B.

    ``plan`` must hold every image (``raster_plan`` of the whole batch).
    ``sequential`` (default: on the CPU) loops over the images with
    ``lax.map`` instead of vmapping them: on a CPU the vmapped batch ran 1.6x
    slower per image than the loop (8.4 vs 5.3 ms for 16 views of the ICT
    face at 512 x 512, timed in one process): one image's working set stays
    in cache. Accelerators take the vmap.
    """
    if sequential is None:
        sequential = jax.default_backend() == "cpu"

    def one(v):
        return rasterize(
            v, faces, height, width, plan, cull_backfaces=cull_backfaces, perspective=perspective
        )

    return jax.lax.map(one, verts) if sequential else jax.vmap(one)(verts)


def interpolate(attributes: Array, faces: Array, frags: Fragments) -> Array:
    """Per-pixel attributes: float[V, C] -> float[H, W, C] (0 off the mesh)."""
    f = faces[jnp.maximum(frags.triangle, 0)]  # [H, W, 3]
    vals = attributes[f]  # [H, W, 3, C]
    out = _fold(jnp.add, vals * frags.bary[..., None], -2)
    return jnp.where((frags.triangle >= 0)[..., None], out, 0.0)


def sample_bilinear(image: Array, uv: Array) -> Array:
    """Bilinear lookup: image float[H, W, C] at pixel positions uv float[..., 2] (x, y); edges clamp."""
    h, w = image.shape[:2]
    x = jnp.clip(uv[..., 0], 0.0, w - 1.0)
    y = jnp.clip(uv[..., 1], 0.0, h - 1.0)
    x0 = (
        jnp.clip(jnp.floor(x), 0, w - 2).astype(jnp.int32)
        if w > 1
        else jnp.zeros_like(x, jnp.int32)
    )
    y0 = (
        jnp.clip(jnp.floor(y), 0, h - 2).astype(jnp.int32)
        if h > 1
        else jnp.zeros_like(y, jnp.int32)
    )
    fx = (x - x0.astype(x.dtype))[..., None]
    fy = (y - y0.astype(y.dtype))[..., None]
    x1 = jnp.minimum(x0 + 1, w - 1)
    y1 = jnp.minimum(y0 + 1, h - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bot = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def _keys_weights(t: Array) -> Array:
    """Catmull-Rom (Keys, a = -1/2) weights of the four taps at offsets -1, 0, 1, 2: float[..., 4]."""
    t2 = t * t
    t3 = t2 * t
    return jnp.stack(
        [
            0.5 * (-t3 + 2 * t2 - t),
            0.5 * (3 * t3 - 5 * t2 + 2),
            0.5 * (-3 * t3 + 4 * t2 + t),
            0.5 * (t3 - t2),
        ],
        -1,
    )


def sample_bicubic(image: Array, uv: Array) -> Array:
    """Bicubic (Catmull-Rom) lookup: image float[H, W, C] at uv float[..., 2] (x, y); edges clamp.

    Interpolating (integer positions give the pixel exactly) and exact for
    quadratic ramps away from the edges. At a fractional offset it keeps more
    of an image's fine detail than :func:`sample_bilinear`: shifted by half a
    pixel, a pattern of 4 pixels' period keeps 88% of its amplitude (bilinear
    71%), one of 3 pixels' period 69% (bilinear 50%); 16 taps instead of 4.
    Its negative lobes can overshoot the neighbours' range (no clipping here).
    """
    h, w = image.shape[:2]
    x = jnp.clip(uv[..., 0], 0.0, w - 1.0)
    y = jnp.clip(uv[..., 1], 0.0, h - 1.0)
    xf, yf = jnp.floor(x), jnp.floor(y)
    wx = _keys_weights(x - xf)  # [..., 4]
    wy = _keys_weights(y - yf)
    flat = image.reshape(h * w, *image.shape[2:])
    x0, y0 = xf.astype(jnp.int32), yf.astype(jnp.int32)
    cols = [jnp.clip(x0 + k, 0, w - 1) for k in range(-1, 3)]
    out = jnp.zeros(uv.shape[:-1] + image.shape[2:], image.dtype)
    tail = (None,) * (image.ndim - 2)
    for j in range(4):
        row = jnp.clip(y0 + (j - 1), 0, h - 1) * w
        acc = sum(wx[(..., k, *tail)] * flat[row + cols[k]] for k in range(4))
        out = out + wy[(..., j, *tail)] * acc
    return out


def _segment_dist2(px, py, ax, ay, bx, by):
    """Squared distance from points (px, py) to segments (a, b), coordinates as separate arrays."""
    abx, aby = bx - ax, by - ay
    t = ((px - ax) * abx + (py - ay) * aby) / jnp.maximum(abx * abx + aby * aby, 1e-12)
    t = jnp.clip(t, 0.0, 1.0)
    dx, dy = px - (ax + t * abx), py - (ay + t * aby)
    return dx * dx + dy * dy


SOFT_SIDES = (8, 10, 12, 16, 24, 32, 48, 64, 96, 128)  # soft groups: grown boxes in kx x ky px
SOFT_GROUPS = tuple((kx, ky) for ky in SOFT_SIDES for kx in SOFT_SIDES)


class SoftPlan(NamedTuple):
    """Static sizes for :func:`soft_rasterize` (hashable): from :func:`soft_plan`.

    Attributes:
        levels: capacity of each scatter group (triangles whose box, grown by
            the margin, fits in kx x ky pixels, for the (kx, ky) of
            ``SOFT_GROUPS``; 0 leaves a group out).
        spill: pixel-triangle pairs for the rest: triangles too large for a
            group, or beyond their group's capacity (a power of two, or 0).
        margin: the soft margin in pixels (from ``sigma``) the boxes are grown by.
    """

    levels: tuple[int, ...]
    spill: int
    margin: float


def _grown_boxes(verts, faces, margin):
    """First pixel centre (x, y) float[F, 2], sides float[F, 2] of the grown boxes, finite bool[F]."""
    tri = verts[faces]
    lo = jnp.ceil(_fold(jnp.minimum, tri[..., :2], 1) - margin)
    hi = jnp.floor(_fold(jnp.maximum, tri[..., :2], 1) + margin)
    ok = _finite(tri)
    return jnp.where(ok[:, None], lo, 0.0), jnp.where(ok[:, None], hi - lo + 1, 0.0), ok


def _soft_groups(ext, ok):
    """int32[F]: each triangle's scatter group (index into SOFT_GROUPS); -1 for the spill."""
    gx = _sides_index(ext[:, 0], SOFT_SIDES)
    gy = _sides_index(ext[:, 1], SOFT_SIDES)
    fits = ok & (gx < len(SOFT_SIDES)) & (gy < len(SOFT_SIDES))
    return jnp.where(fits, gy * len(SOFT_SIDES) + gx, -1).astype(jnp.int32)


def _spill_counts(lo, ext, ok, spilled, height, width):
    """Per triangle its box clipped to the image: x0, y0, columns (int32[F] each), pairs int32[F]."""
    x0 = jnp.clip(lo[:, 0], 0, width)
    y0 = jnp.clip(lo[:, 1], 0, height)
    nx = jnp.clip(lo[:, 0] + ext[:, 0], 0, width) - x0
    ny = jnp.clip(lo[:, 1] + ext[:, 1], 0, height) - y0
    nx, ny = nx.astype(jnp.int32), ny.astype(jnp.int32)
    pairs = jnp.where(spilled & ok, nx * ny, 0)
    return x0.astype(jnp.int32), y0.astype(jnp.int32), nx, pairs


@functools.partial(jax.jit, static_argnames=("height", "width"))
def _soft_counts(verts, faces, height, width, margin):
    """int[B, len(SOFT_GROUPS) + 1]: triangles per group, then spilled pairs, per image of [B, V, 3]."""

    def one(v):
        lo, ext, ok = _grown_boxes(v, faces, margin)
        group = _soft_groups(ext, ok)
        pairs = _spill_counts(lo, ext, ok, group < 0, height, width)[3]
        counts = jnp.bincount(
            jnp.where(group >= 0, group, len(SOFT_GROUPS)), length=len(SOFT_GROUPS)
        )
        return jnp.concatenate([counts.astype(jnp.int32), jnp.sum(pairs, dtype=jnp.int32)[None]])

    return jax.vmap(one)(verts)


def soft_plan(verts, faces, height: int, width: int, sigma: float = 1.0) -> SoftPlan:
    """Count on the host what :func:`soft_rasterize` must hold (for a batch [B, V, 3]: the largest).

    Group capacities are rounded up to a few sizes (quarter powers of two), so
    plans repeat and compiled code is reused.
    """
    margin = soft_margin(sigma)
    v = jnp.asarray(verts)
    vs = v if v.ndim == 3 else v[None]
    counts = np.max(np.asarray(_soft_counts(vs, jnp.asarray(faces), height, width, margin)), 0)
    levels = tuple(_quarter_pow2(int(c), 16) for c in counts[:-1])
    return SoftPlan(levels, _pow2(int(counts[-1]), 1024), margin)


def _sum_like(gs, likes):
    """Each cotangent summed over the axes its primal broadcast along (same ranks).

    One variadic reduce for all of them: as separate sums (library calls on the
    CPU) the backward pass ran 1.6x longer.
    """
    shape = jnp.broadcast_shapes(*(jnp.shape(g) for g in gs))
    axes = tuple(i for i, (a, b) in enumerate(zip(likes[0].shape, shape)) if a == 1 and b != 1)
    gs = [jnp.broadcast_to(jnp.asarray(g, likes[0].dtype), shape) for g in gs]
    if not axes:
        return gs
    zero = [jnp.zeros((), g.dtype) for g in gs]
    out = jax.lax.reduce(
        tuple(gs), tuple(zero), lambda a, b: tuple(x + y for x, y in zip(a, b)), axes
    )
    return [jnp.expand_dims(o, axes) for o in out]


_EDGE_FNS = ((1, 2), (2, 0), (0, 1))  # edge function i runs from corner o to q (opposite i)
_SEGMENTS = ((0, 1), (1, 2), (2, 0))  # the triangle's sides, corner to corner


def _soft_forward(px, py, tri, sigma):
    """One pixel-triangle pair's SoftRas terms, every argument broadcastable to the pairs' shape.

    Args:
        px, py: pixel centres.
        tri: (ax, ay, bx, by, cx, cy, inv_area, za, zb, zc, colours): corners
            in pixels, 1 / signed area (0 for a degenerate triangle), normalized
            depths of the corners, and ``colours`` a list per channel of
            (ca, cb, cc).
        sigma: sharpness in squared pixels.

    Returns:
        ((probability D, interpolated depth, list of interpolated colour
        channels), the intermediate terms the backward pass reuses).
    """
    ax, ay, bx, by, cx, cy, inv_area, za, zb, zc, colours = tri
    corner = ((ax, ay), (bx, by), (cx, cy))
    edge = [
        (corner[q][0] - corner[o][0]) * (py - corner[o][1])
        - (corner[q][1] - corner[o][1]) * (px - corner[o][0])
        for o, q in _EDGE_FNS
    ]
    w = [e * inv_area for e in edge]
    inside = (w[0] >= 0) & (w[1] >= 0) & (w[2] >= 0)
    seg = []
    for o, q in _SEGMENTS:
        (ox, oy), (qx, qy) = corner[o], corner[q]
        dx, dy = qx - ox, qy - oy
        t = ((px - ox) * dx + (py - oy) * dy) / jnp.maximum(dx * dx + dy * dy, 1e-12)
        t = jnp.clip(t, 0.0, 1.0)
        rx, ry = px - ox - t * dx, py - oy - t * dy
        seg.append((t, rx, ry, rx * rx + ry * ry))
    d2 = jnp.minimum(jnp.minimum(seg[0][3], seg[1][3]), seg[2][3])
    sign = jnp.where(inside, 1.0, -1.0)
    sg = jax.nn.sigmoid(sign * d2 / sigma)
    # below the margin's threshold a triangle does not count (as in SoftRas): else a
    # pixel far from every triangle normalizes by a vanishing sum of weights
    counts = (inv_area != 0) & (sg >= _SOFT_THRESHOLD)
    prob = jnp.where(counts, sg, 0.0)
    clipped = [jnp.clip(x, 0.0, 1.0) for x in w]
    raw = clipped[0] + clipped[1] + clipped[2]
    total = jnp.maximum(raw, 1e-12)
    wc = [x / total for x in clipped]
    z = wc[0] * za + wc[1] * zb + wc[2] * zc
    col = [wc[0] * a + wc[1] * b + wc[2] * c for a, b, c in colours]
    inner = (edge, w, seg, d2, sign, sg, counts, raw, total, wc)
    return (prob, z, col), inner


def _param_grads(px, py, tri, sigma, inner, g_prob, g_z, g_col):
    """Cotangents of a triangle's parameters, summed over its pairs, from those of (D, z, colours)."""
    ax, ay, bx, by, cx, cy, inv_area, za, zb, zc, colours = tri
    edge, w, seg, d2, sign, sg, counts, raw, total, wc = inner
    corner = ((ax, ay), (bx, by), (cx, cy))
    g_xy = [[0.0, 0.0] for _ in range(3)]  # per corner, d loss / d (x, y) per pair
    # the distance: d(d2) / d(corners) of the nearest side (t held: d2 is a minimum over t)
    g_d2 = jnp.where(counts, g_prob * sg * (1.0 - sg) * sign / sigma, 0.0)
    first = seg[0][3] <= jnp.minimum(seg[1][3], seg[2][3])
    second = ~first & (seg[1][3] <= seg[2][3])
    pick = (first, second, ~first & ~second)
    for (o, q), (t, rx, ry, _), chosen in zip(_SEGMENTS, seg, pick):
        g = jnp.where(chosen, -2.0 * g_d2, 0.0)
        g_xy[o][0] = g_xy[o][0] + g * (1.0 - t) * rx
        g_xy[o][1] = g_xy[o][1] + g * (1.0 - t) * ry
        g_xy[q][0] = g_xy[q][0] + g * t * rx
        g_xy[q][1] = g_xy[q][1] + g * t * ry
    # the weights: clipped, normalized barycentrics
    g_wc = [
        g_z * zi + sum(gc * cc[i] for gc, cc in zip(g_col, colours))
        for i, zi in enumerate((za, zb, zc))
    ]
    dot = g_wc[0] * wc[0] + g_wc[1] * wc[1] + g_wc[2] * wc[2]
    dot = jnp.where(raw > 1e-12, dot, 0.0)
    g_inv = 0.0
    for i, (o, q) in enumerate(_EDGE_FNS):
        g_w = jnp.where((w[i] > 0) & (w[i] < 1), (g_wc[i] - dot) / total, 0.0)
        g_inv = g_inv + g_w * edge[i]
        g_e = g_w * inv_area
        (ox, oy), (qx, qy) = corner[o], corner[q]
        g_xy[o][0] = g_xy[o][0] + g_e * (qy - py)
        g_xy[o][1] = g_xy[o][1] + g_e * (px - qx)
        g_xy[q][0] = g_xy[q][0] + g_e * (py - oy)
        g_xy[q][1] = g_xy[q][1] + g_e * (ox - px)
    flat = [g_xy[0][0], g_xy[0][1], g_xy[1][0], g_xy[1][1], g_xy[2][0], g_xy[2][1], g_inv]
    flat += [g_z * wc[i] for i in range(3)]
    flat += [gc * wc[i] for gc in g_col for i in range(3)]
    like = list(tri[:10]) + [cc[i] for cc in colours for i in range(3)]
    sums = _sum_like(flat, like)
    grads = sums[:10]
    g_colours = [sums[10 + 3 * c : 13 + 3 * c] for c in range(len(colours))]
    return (*grads, g_colours)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _soft_sum_terms(px, py, tri, top, sigma, gamma):
    """What each pixel sums of a pair: (e, [e * colour], log(1 - D)), e = D exp((z - top) / gamma).

    ``top``: the pixel's largest depth (a constant to the gradient); the other
    arguments as :func:`_soft_forward`. D is clipped below 1 in the log, so that
    the gradient stays finite where a pixel lies deep inside a triangle (D
    rounds to 1).

    The gradient is written out (:func:`_param_grads`): it recomputes the pair
    from its triangle's parameters and sums the cotangents over the pixels in
    one pass, where autodiff stored and revisited a dozen arrays per pair
    (forward + backward on the ICT face at 256 x 256: 132 -> 51 ms).
    """
    return _sum_forward(px, py, tri, top, sigma, gamma)[0]


def _sum_forward(px, py, tri, top, sigma, gamma):
    (prob, z, col), inner = _soft_forward(px, py, tri, sigma)
    touch = prob > 0
    scale = jnp.where(touch, jnp.exp(jnp.where(touch, z - top, 0.0) / gamma), 0.0)
    e = prob * scale
    kept = jnp.minimum(prob, 1.0 - 1e-6)
    out = (e, [e * c for c in col], jnp.log1p(-kept))
    return out, (prob, z, col, inner, scale, e)


def _soft_sum_terms_fwd(px, py, tri, top, sigma, gamma):
    return _soft_sum_terms(px, py, tri, top, sigma, gamma), (px, py, tri, top)


def _soft_sum_terms_bwd(sigma, gamma, res, cot):
    px, py, tri, top = res
    g_e, g_ec, g_log = cot
    _, (prob, z, col, inner, scale, e) = _sum_forward(px, py, tri, top, sigma, gamma)
    g_e = g_e + sum(g * c for g, c in zip(g_ec, col))
    g_prob = g_e * scale - jnp.where(prob < 1.0 - 1e-6, g_log / (1.0 - prob), 0.0)
    g_z = g_e * e / gamma
    g_col = [g * e for g in g_ec]
    grads = _param_grads(px, py, tri, sigma, inner, g_prob, g_z, g_col)
    return jnp.zeros_like(px), jnp.zeros_like(py), grads, jnp.zeros_like(top)


_soft_sum_terms.defvjp(_soft_sum_terms_fwd, _soft_sum_terms_bwd)


@functools.partial(jax.jit, static_argnames=("height", "width", "plan", "sigma", "gamma", "eps"))
def soft_rasterize(
    verts: Array,
    faces: Array,
    colors: Array,
    height: int,
    width: int,
    plan: SoftPlan,
    *,
    sigma: float = 1.0,
    gamma: float = 1e-2,
    background: Array | None = None,
    eps: float = 1e-3,
) -> tuple[Array, Array]:
    """SoftRas rendering of per-vertex colours (one image; vmap for batches).

    Every triangle scatters its terms into the pixels of its bounding box grown
    by the soft margin (``plan.margin``): the largest depth per pixel (a
    scatter-max, outside the gradient: the aggregation does not depend on it),
    then sums of softmax weights, weighted colours and log(1 - D) (scatter-adds,
    whose gradients are gathers). Triangles whose grown box fits in 128 x 128
    pixels go in groups of equal box size (their parameters broadcast over the
    box); the rest, and any beyond a group's capacity, as a flat list of
    pixel-triangle pairs (``plan.spill``).

    Args:
        verts: float[V, 3] image-space vertices (u, v, z); z is mapped to
            ``(z_far - z) / (z_far - z_near)`` over the image's vertices.
        faces: int32[F, 3].
        colors: float[V, C] per-vertex colours (interpolated inside triangles).
        height, width: image size (static).
        plan: static sizes from :func:`soft_plan` with the same ``sigma`` (static).
        sigma: sharpness in squared pixels: D = sigmoid(+-d^2 / sigma) (static).
        gamma: depth temperature of the aggregation (static).
        background: float[C] (default zeros).
        eps: the background's depth term.

    Returns:
        (float[H, W, C] colours, float[H, W] silhouette).
    """
    dtype = verts.dtype
    n_ch = colors.shape[1]
    lo, ext, ok = _grown_boxes(verts, faces, plan.margin)
    group = _soft_groups(ext, ok)
    placed = jnp.zeros(group.shape, bool)  # members a group holds (the rest spill)
    finite = jnp.isfinite(verts[:, 2])
    zmin = jnp.min(jnp.where(finite, verts[:, 2], jnp.inf))
    zmax = jnp.max(jnp.where(finite, verts[:, 2], -jnp.inf))
    zn = (zmax - verts[:, 2]) / jnp.maximum(zmax - zmin, 1e-12)  # 1 near, 0 far
    bg = jnp.zeros((n_ch,), dtype) if background is None else background.astype(dtype)

    def params(fid, keep):
        """Per-triangle terms of faces fid (any shape), zeros where not keep (no NaN reaches a gradient)."""
        f = faces[fid]
        corner = [verts[f[..., i]] for i in range(3)]
        (ax, ay), (bx, by), (cx, cy) = ((p[..., 0], p[..., 1]) for p in corner)
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        inv = jnp.where(area != 0, 1.0 / jnp.where(area != 0, area, 1.0), 0.0)
        cols = [[colors[f[..., i], ch] for i in range(3)] for ch in range(n_ch)]
        flat = [ax, ay, bx, by, cx, cy, inv] + [zn[f[..., i]] for i in range(3)]
        flat = [jnp.where(keep, t, 0.0) for t in flat]
        return (*flat, [[jnp.where(keep, t, 0.0) for t in c] for c in cols])

    chunks = []  # (flat pixel index, x, y, triangle parameters) of each group of pairs
    all_slots = _group_members(jnp.where(group >= 0, group, len(SOFT_GROUPS)), plan.levels)
    for (kx, ky), slots in zip(SOFT_GROUPS, all_slots):
        if slots is None:
            continue
        fid, member = slots
        x = lo[fid, 0, None, None].astype(jnp.int32) + jnp.arange(kx, dtype=jnp.int32)[None, None]
        y = (
            lo[fid, 1, None, None].astype(jnp.int32)
            + jnp.arange(ky, dtype=jnp.int32)[None, :, None]
        )
        keep = member[:, None, None] & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        tri = jax.tree.map(lambda t: t[:, None, None], params(fid, member))
        flat = jnp.where(keep, y * width + x, height * width)  # misses are dropped
        chunks.append((flat, x.astype(dtype), y.astype(dtype), tri))

    if plan.spill:
        held = [slots for slots in all_slots if slots is not None]
        if held:
            placed = placed.at[jnp.concatenate([h[0] for h in held])].max(
                jnp.concatenate([h[1] for h in held])
            )
        # pair p belongs to the last spilled triangle whose first pair is at or before p
        x0, y0, nx, pairs = _spill_counts(lo, ext, ok, ~placed, height, width)
        start = jnp.cumsum(pairs, dtype=jnp.int32) - pairs
        p = jnp.arange(plan.spill, dtype=jnp.int32)
        ids = jnp.where(pairs > 0, jnp.arange(faces.shape[0], dtype=jnp.int32), -1)
        marks = jnp.full((plan.spill,), -1, jnp.int32).at[start].max(ids, mode="drop")
        fid = jnp.maximum(jax.lax.cummax(marks), 0)
        valid = (p < jnp.sum(pairs, dtype=jnp.int32)) & (pairs[fid] > 0)
        off = p - start[fid]
        row = off // jnp.maximum(nx[fid], 1)
        x, y = x0[fid] + off - row * nx[fid], y0[fid] + row
        flat = jnp.where(valid, y * width + x, height * width)
        chunks.append((flat, x.astype(dtype), y.astype(dtype), params(fid, valid)))

    # softmax over the triangles at a pixel, shifted by its largest depth (a constant
    # to the gradient: the weights do not change with the shift)
    top = jnp.full((height * width,), -jnp.inf, dtype)
    for flat, x, y, tri in chunks:
        prob, z, _ = _soft_forward(x, y, jax.lax.stop_gradient(tri), sigma)[0]
        top = top.at[flat.reshape(-1)].max(
            jnp.where(prob > 0, z, -jnp.inf).reshape(-1), mode="drop"
        )
    top = jax.lax.stop_gradient(jnp.maximum(top, eps))
    # the sums: weights, weighted colours and log(1 - D) (for 1 - prod(1 - D)), one
    # scatter each (a scatter of [pairs, C + 2] rows made XLA's CPU backend build
    # the rows in a concatenation 4 times slower than the arithmetic itself)
    sums = [jnp.zeros((height * width,), dtype) for _ in range(n_ch + 2)]
    for flat, x, y, tri in chunks:
        # a dropped pixel's top is 1, above every normalized depth: finite weights
        top_p = top.at[flat].get(mode="fill", fill_value=1.0)
        e, ec, log_out = _soft_sum_terms(x, y, tri, top_p, sigma, gamma)
        terms = [e] + ec + [log_out]
        sums = [s.at[flat.reshape(-1)].add(t.reshape(-1), mode="drop") for s, t in zip(sums, terms)]
    e_bg = jnp.exp((eps - top) / gamma)
    rgb = (jnp.stack(sums[1 : 1 + n_ch], -1) + e_bg[:, None] * bg[None]) / (sums[0] + e_bg)[:, None]
    sil = 1.0 - jnp.exp(sums[-1])
    return rgb.reshape(height, width, n_ch), sil.reshape(height, width)


_SOFT_THRESHOLD = 1e-4  # probability below which a triangle does not touch a pixel


def soft_margin(sigma: float, threshold: float = _SOFT_THRESHOLD) -> float:
    """Pixels beyond which a triangle's probability is below ``threshold`` (the tile-list margin)."""
    return float(np.sqrt(sigma * np.log(1.0 / threshold)))
