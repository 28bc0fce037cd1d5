"""Rasterizers: coverage, barycentrics, depth order, ray casting, soft -> hard, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from vafx.kernels.raster import (
    SIDES,
    SoftPlan,
    _group_members,
    _sides_index,
    interpolate,
    plan_overflow,
    raster_plan,
    rasterize,
    rasterize_batch,
    sample_bilinear,
    soft_plan,
    soft_rasterize,
)


def raster(v, f, h, w, **kw):
    v, f = np.asarray(v, np.float32), np.asarray(f, np.int32)
    return rasterize(jnp.asarray(v), jnp.asarray(f), h, w, raster_plan(v, f, h, w), **kw)


def area_perimeter(t):
    a, b, c = t[:, :2]
    area = 0.5 * abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    per = np.linalg.norm(b - a) + np.linalg.norm(c - b) + np.linalg.norm(a - c)
    return area, per


@settings(max_examples=30)
@given(st.lists(st.floats(-20, 140), min_size=6, max_size=6))
def test_coverage_equals_area(coords):
    t = np.c_[np.reshape(coords, (3, 2)), np.ones(3)].astype(np.float32)
    area, per = area_perimeter(t)
    fr = raster(t, [[0, 1, 2]], 120, 120)
    covered = float((np.asarray(fr.triangle) == 0).sum())
    # clip the triangle to the image by counting its pixel centres analytically is
    # what the rasterizer does; compare where it lies inside: otherwise the image
    # cuts it, and the count is below the area
    inside = (t[:, :2].min() >= 0) and (t[:, :2].max() <= 119)
    if inside:
        # pixel centres inside a polygon differ from its area by at most about half
        # its perimeter (a pixel's worth along the boundary)
        assert abs(covered - area) <= 0.5 * per + 1, (covered, area, per)
    else:
        assert covered <= area + 0.5 * per + 1


def test_barycentrics_sum_to_one_and_reproduce_positions():
    rng = np.random.default_rng(0)
    v = np.c_[rng.uniform(0, 63, (30, 2)), rng.uniform(1, 5, 30)].astype(np.float32)
    f = np.array([[i, i + 1, i + 2] for i in range(0, 27, 3)], np.int32)
    fr = raster(v, f, 64, 64)
    hit = np.asarray(fr.triangle) >= 0
    bary = np.asarray(fr.bary)
    np.testing.assert_allclose(bary[hit].sum(-1), 1.0, atol=1e-5)
    uv = np.asarray(interpolate(jnp.asarray(v[:, :2]), jnp.asarray(f), fr))
    yy, xx = np.nonzero(hit)
    np.testing.assert_allclose(uv[hit], np.c_[xx, yy], atol=1e-3)


def test_nearer_triangle_wins_and_large_triangles_are_not_missed():
    big = [[-500, -500, 5.0], [2000, -500, 5.0], [-500, 2000, 5.0]]
    small = [[10, 10, 1.0], [40, 10, 1.0], [10, 40, 1.0]]
    fr = raster(np.array(big + small), [[0, 1, 2], [3, 4, 5]], 256, 200)
    tri = np.asarray(fr.triangle)
    assert (tri >= 0).all()  # the huge triangle covers the whole image
    assert tri[15, 15] == 1 and tri[100, 100] == 0
    assert np.asarray(fr.depth)[15, 15] == pytest.approx(1.0)
    fr2 = raster(np.array(big + small) * [1, 1, -1] + [0, 0, 10], [[0, 1, 2], [3, 4, 5]], 256, 200)
    assert np.asarray(fr2.triangle)[15, 15] == 0  # now the big one is nearer


def test_a_plan_too_small_is_counted_and_its_own_plan_drops_nothing():
    """plan_overflow: 0 for raster_plan's plan; a capacity cut short leaves triangles out."""
    small_v, small_f = _grid(12, 6, 4, 2.0)  # 288 small triangles: the scatter groups
    big = np.array([[-500, -500, 5.0], [2000, -500, 5.0], [-500, 2000, 5.0]])  # tiled
    v = np.concatenate([small_v, big]).astype(np.float32)
    f = np.concatenate([small_f, [[len(small_v), len(small_v) + 1, len(small_v) + 2]]])
    f = f.astype(np.int32)
    plan = raster_plan(v, f, 96, 96)
    assert plan_overflow(v, f, 96, 96, plan) == 0
    full = np.asarray(rasterize(jnp.asarray(v), jnp.asarray(f), 96, 96, plan).triangle)
    g = int(np.argmax(plan.levels))  # the fullest group, cut to half its capacity
    cut = plan._replace(levels=tuple(c // 2 if i == g else c for i, c in enumerate(plan.levels)))
    lost = plan_overflow(v, f, 96, 96, cut)
    assert lost > 0
    short = np.asarray(rasterize(jnp.asarray(v), jnp.asarray(f), 96, 96, cut).triangle)
    assert (short != full).any()  # what it counts is really missing from the image
    no_tiles = plan._replace(per_tile=0)
    assert plan_overflow(v, f, 96, 96, no_tiles) >= 1  # the large triangle's tile lists
    assert plan_overflow(v[None].repeat(2, 0), f, 96, 96, cut) == lost  # a batch: the worst


def _grid(n, cell, x0, z):
    """A square grid of n x n cells of ``cell`` px from (x0, x0), two triangles a cell."""
    g = np.arange(n + 1) * cell + x0
    xx, yy = np.meshgrid(g, g)  # vertex (i, j) at index j * (n + 1) + i
    v = np.c_[xx.ravel(), yy.ravel(), np.full(xx.size, z)]
    k = (np.arange(n)[None, :] + (n + 1) * np.arange(n)[:, None]).ravel()  # cell (i, j)
    f = np.stack([np.c_[k, k + 1, k + n + 2], np.c_[k, k + n + 2, k + n + 1]], 1)
    return v, f.reshape(-1, 3)  # cell (i, j): triangles 2 (j n + i) and 2 (j n + i) + 1


def _grid_ids(n, cell, x0, x, y, first):
    i, j = (x - x0) // cell, (y - x0) // cell
    dx, dy = (x - x0) - i * cell, (y - x0) - j * cell
    return first + 2 * (j * n + i) + (dx < dy), dx == dy  # ids, and ties on the diagonal


def test_largest_image_both_paths():
    """At 2048 x 2048: 64-px cells (too large to scatter: the tiles) behind 2-px cells
    (the scatter groups) in a corner; every pixel gets the right triangle."""
    v_big, f_big = _grid(32, 64.0, -0.5, 2.0)
    v_small, f_small = _grid(64, 2.0, 1919.5, 1.0)
    v = np.r_[v_big, v_small].astype(np.float32)
    f = np.r_[f_big, f_small + len(v_big)].astype(np.int32)
    plan = raster_plan(v, f, 2048, 2048)
    assert plan.large == 2048 and sum(plan.levels) >= 8192  # both paths run
    fr = rasterize(jnp.asarray(v), jnp.asarray(f), 2048, 2048, plan)
    tri = np.asarray(fr.triangle)
    y, x = np.mgrid[0:2048, 0:2048]
    want, tie = _grid_ids(32, 64, -0.5, x + 0.0, y + 0.0, 0)
    corner = (x >= 1920) & (y >= 1920)
    want_c, tie_c = _grid_ids(64, 2, 1919.5, x + 0.0, y + 0.0, len(f_big))
    want = np.where(corner, want_c, want)
    tie = np.where(corner, tie_c, tie)
    np.testing.assert_array_equal(tri[~tie], want[~tie])
    assert (tri >= 0).all()
    uv = np.asarray(interpolate(jnp.asarray(v[:, :2]), jnp.asarray(f), fr))
    np.testing.assert_allclose(uv, np.stack([x, y], -1), atol=2e-3)


def test_backface_culling():
    cw = [
        [0, 0, 1.0],
        [0, 30, 1.0],
        [30, 0, 1.0],
    ]  # on screen (v down): counter-clockwise in (u, v)
    a = raster(np.array(cw), [[0, 1, 2]], 40, 40)
    b = raster(np.array(cw), [[0, 2, 1]], 40, 40, cull_backfaces=True)
    c = raster(np.array(cw), [[0, 1, 2]], 40, 40, cull_backfaces=True)
    assert (np.asarray(a.triangle) == 0).sum() > 0
    # (0, 0) -> (0, 30) -> (30, 0) runs counter-clockwise as seen on the screen (v down): a
    # front face, as OpenGL's counter-clockwise front faces with y up; reversed, a back face
    np.testing.assert_array_equal(np.asarray(c.triangle), np.asarray(a.triangle))  # kept
    assert (np.asarray(b.triangle) == -1).all()  # culled


def test_depth_agrees_with_trimesh_ray_casting():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=50.0)
    v = np.asarray(mesh.vertices).copy()
    img = np.c_[v[:, 0] + 64, 64 - v[:, 1], 100 - v[:, 2]].astype(np.float32)  # looking down -z
    fr = raster(img, mesh.faces, 128, 128)
    hit = np.asarray(fr.triangle) >= 0
    yy, xx = np.nonzero(hit)
    sel = np.random.default_rng(0).choice(len(yy), 200, replace=False)
    origins = np.c_[xx[sel] - 64.0, 64.0 - yy[sel], np.full(200, 1000.0)]
    dirs = np.tile([0.0, 0.0, -1.0], (200, 1))
    loc, idx, _ = trimesh.ray.ray_triangle.RayMeshIntersector(mesh).intersects_location(
        origins, dirs, multiple_hits=False
    )
    depth = np.full(200, np.nan)
    depth[idx] = 100 - loc[:, 2]
    np.testing.assert_allclose(np.asarray(fr.depth)[yy[sel], xx[sel]], depth, atol=1e-2)


def test_nearest_surface_agrees_with_ray_casting_on_the_ict_head(ict_model):
    """The full head (eyes, teeth and mouth socket inside it), turned so the nose hides
    part of a cheek: along 600 rays the z-buffer finds what trimesh's ray caster finds."""
    v = np.asarray(ict_model.mean, np.float64)
    f = np.asarray(ict_model.faces)
    c, s = np.cos(0.7), np.sin(0.7)
    v = v @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T  # yaw: a three-quarter view
    lo, hi = v.min(0), v.max(0)
    scale = 0.8 * 160 / (hi - lo)[:2].max()
    centre = (lo + hi) / 2
    # pixel (x, y) looks along -z at (x - 80, 80 - y) / scale + centre
    img = np.c_[(v[:, 0] - centre[0]) * scale + 80, 80 - (v[:, 1] - centre[1]) * scale, -v[:, 2]]
    fr = raster(img.astype(np.float32), f, 160, 160)
    rng = np.random.default_rng(1)
    covered = np.flatnonzero(np.asarray(fr.triangle) >= 0)
    # 300 pixels anywhere (misses too) and 300 where the z-buffer found the head
    pick = np.r_[rng.choice(160 * 160, 300, replace=False), rng.choice(covered, 300, replace=False)]
    yy, xx = np.divmod(pick, 160)
    origins = np.c_[
        (xx - 80) / scale + centre[0], (80 - yy) / scale + centre[1], np.full(600, hi[2] + 10)
    ]
    dirs = np.tile([0.0, 0.0, -1.0], (600, 1))
    mesh = trimesh.Trimesh(v, f, process=False)
    loc, idx, _ = trimesh.ray.ray_triangle.RayMeshIntersector(mesh).intersects_location(
        origins, dirs, multiple_hits=False
    )
    depth = np.full(600, np.inf)
    depth[idx] = -loc[:, 2]
    ours = np.asarray(fr.depth)[yy, xx]
    hit, ray_hit = np.isfinite(ours), np.isfinite(depth)
    assert 350 < hit.sum() < 550  # both hits and misses are tested
    assert (hit == ray_hit).mean() > 0.99  # disagreements only on silhouette edges
    both = hit & ray_hit
    close = np.abs(ours[both] - depth[both]) < 1e-3 * (hi[2] - lo[2])
    assert close.mean() > 0.99  # the nearest surface, not one behind it


def test_perspective_correct_barycentrics():
    # a quad in a plane slanting away: perspective-correct interpolation of 1/z-linear
    # attributes must match the plane's true depth at every pixel
    f = 100.0
    pts3 = np.array([[-1, -1, 2.0], [1, -1, 2.0], [1, 1, 6.0], [-1, 1, 6.0]])
    uv = f * pts3[:, :2] / pts3[:, 2:] + 32
    img = np.c_[uv, pts3[:, 2]].astype(np.float32)
    fr = raster(img, [[0, 1, 2], [0, 2, 3]], 64, 64, perspective=True)
    hit = np.asarray(fr.triangle) >= 0
    yv = np.nonzero(hit)[0] - 32.0
    # the plane y = (z - 4) / 2 projects to v = f y / z  =>  z = 4 f / (f - 2 v)... solve:
    z_true = 4 * f / (f - 2 * yv)
    np.testing.assert_allclose(np.asarray(fr.depth)[hit], z_true, rtol=1e-3)


def test_soft_tends_to_hard_and_gradients_pass():
    rng = np.random.default_rng(1)
    v = np.c_[rng.uniform(4, 28, (9, 2)), rng.uniform(1, 3, 9)].astype(np.float32)
    f = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], np.int32)
    col = rng.uniform(size=(9, 3)).astype(np.float32)
    hard = raster(v, f, 32, 32)
    want = np.asarray(interpolate(jnp.asarray(col), jnp.asarray(f), hard))
    cover = np.asarray(hard.triangle) >= 0
    sigma = 1e-3
    cap = soft_plan(v, f, 32, 32, sigma)
    rgb, sil = soft_rasterize(
        jnp.asarray(v), jnp.asarray(f), jnp.asarray(col), 32, 32, cap, sigma=sigma, gamma=1e-4
    )
    # away from edges (where a pixel centre is within the soft margin) soft equals hard
    far = cover == (np.asarray(sil) > 0.5)
    assert far.mean() > 0.97
    # colours: equal except at pixel centres within the soft margin of a nearer
    # triangle's edge, where the two depth orders legitimately differ
    close = np.abs(np.asarray(rgb) - want).max(-1) < 2e-2
    assert close[cover & far].mean() > 0.97
    assert (np.asarray(sil)[~cover] < 0.5).mean() > 0.97

    cap = soft_plan(v, f, 32, 32, 4.0)

    def loss(verts, colors):
        img, s = soft_rasterize(verts, jnp.asarray(f), colors, 32, 32, cap, sigma=4.0, gamma=0.1)
        return jnp.sum(img**2) + jnp.sum(s)

    with jax.enable_x64(True):
        check_grads(
            loss, (jnp.asarray(v, jnp.float64), jnp.asarray(col, jnp.float64)), order=1, modes=("rev",),
            atol=1e-2, rtol=1e-2, eps=1e-4,
        )  # fmt: skip


def dense_softras(v, f, col, h, w, sigma, gamma, eps, bg):
    """SoftRas over every pixel-triangle pair, in float64 numpy (the definition, no culling)."""
    yy, xx = np.mgrid[0:h, 0:w]
    px, py = xx.reshape(-1, 1).astype(float), yy.reshape(-1, 1).astype(float)
    t = v[f].astype(float)  # [F, 3, 3]
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    def edge(o, q):
        return ((q[:, 0] - o[:, 0]) * (py - o[:, 1]) - (q[:, 1] - o[:, 1]) * (px - o[:, 0])) / area

    def seg(o, q):
        d = q[:, :2] - o[:, :2]
        s = ((px - o[:, 0]) * d[:, 0] + (py - o[:, 1]) * d[:, 1]) / (d**2).sum(1)
        s = np.clip(s, 0, 1)
        return (px - o[:, 0] - s * d[:, 0]) ** 2 + (py - o[:, 1] - s * d[:, 1]) ** 2

    wts = np.stack([edge(b, c), edge(c, a), edge(a, b)])  # [3, P, F]
    d2 = np.minimum(np.minimum(seg(a, b), seg(b, c)), seg(c, a))
    inside = (wts >= 0).all(0)
    prob = 0.5 * (1 + np.tanh(np.where(inside, d2, -d2) / (2 * sigma)))  # sigmoid
    prob = np.where(prob >= 1e-4, prob, 0.0)
    wc = np.clip(wts, 0, 1)
    wc = wc / np.maximum(wc.sum(0), 1e-12)
    zn = (v[:, 2].max() - v[:, 2]) / (v[:, 2].max() - v[:, 2].min())
    z = np.einsum("ipf,fi->pf", wc, zn[f])
    cols = np.einsum("ipf,fic->pfc", wc, col[f])
    top = np.maximum(np.where(prob > 0, z, -np.inf).max(1, keepdims=True), eps)
    e = np.where(prob > 0, prob * np.exp((z - top) / gamma), 0.0)
    e_bg = np.exp((eps - top) / gamma)
    rgb = (np.einsum("pf,pfc->pc", e, cols) + e_bg * bg) / (e.sum(1, keepdims=True) + e_bg)
    sil = 1 - np.prod(1 - np.minimum(prob, 1 - 1e-6), axis=1)
    return rgb.reshape(h, w, -1), sil.reshape(h, w)


@pytest.mark.slow
def test_soft_equals_dense_definition_whatever_the_plan():
    # small and large triangles (some partly off the image), and two larger than any
    # group (mostly off the image): group and spill paths
    rng = np.random.default_rng(5)
    n = 24
    centre = rng.uniform(-4, 44, (n, 1, 2))
    size = np.where(rng.uniform(size=(n, 1, 1)) < 0.7, 3.0, 30.0)
    size[:2] = 150.0
    uv = centre + rng.uniform(-1, 1, (n, 3, 2)) * size
    v = np.c_[uv.reshape(-1, 2), rng.uniform(1, 3, 3 * n)].astype(np.float32)
    f = np.arange(3 * n, dtype=np.int32).reshape(n, 3)
    col = rng.uniform(size=(3 * n, 3)).astype(np.float32)
    bg = np.array([0.2, 0.5, 0.9], np.float32)
    sigma, gamma, eps = 2.0, 0.05, 1e-3
    want_rgb, want_sil = dense_softras(v, f, col, 40, 48, sigma, gamma, eps, bg)
    plan = soft_plan(v, f, 40, 48, sigma)
    assert plan.spill > 0 and any(plan.levels)  # both paths run
    every = SoftPlan(plan.levels, 1 << 16, plan.margin)
    spill_only = SoftPlan((0,) * len(plan.levels), 1 << 16, plan.margin)
    full_groups = SoftPlan(tuple(min(c, 2) for c in plan.levels), 1 << 16, plan.margin)
    for p in (plan, every, spill_only, full_groups):
        rgb, sil = soft_rasterize(
            jnp.asarray(v), jnp.asarray(f), jnp.asarray(col), 40, 48, p,
            sigma=sigma, gamma=gamma, background=jnp.asarray(bg), eps=eps,
        )  # fmt: skip
        np.testing.assert_allclose(np.asarray(rgb), want_rgb, atol=2e-4)
        np.testing.assert_allclose(np.asarray(sil), want_sil, atol=2e-5)
    # a batch by vmap, the plan of the whole batch: each image as alone
    vs = np.stack([v, v + np.float32([3.5, -2.0, 0.0])])
    plan = soft_plan(vs, f, 40, 48, sigma)
    batch = jax.vmap(
        lambda x: soft_rasterize(
            x, jnp.asarray(f), jnp.asarray(col), 40, 48, plan, sigma=sigma, gamma=gamma, eps=eps
        )
    )(jnp.asarray(vs))
    for i in range(2):
        one = soft_rasterize(
            jnp.asarray(vs[i]), jnp.asarray(f), jnp.asarray(col), 40, 48, plan,
            sigma=sigma, gamma=gamma, eps=eps,
        )  # fmt: skip
        np.testing.assert_allclose(batch[0][i], one[0], atol=1e-6)
        np.testing.assert_allclose(batch[1][i], one[1], atol=1e-6)


def test_soft_sum_terms_written_vjp_equals_autodiff():
    # per-triangle parameters [G, 1, 1] broadcast over pixels [G, ky, kx], as the groups do;
    # corners in general position (on exact ties, such as a pixel centre on a side, the
    # two pick different but equally valid one-sided derivatives)
    from vafx.kernels.raster import _soft_sum_terms, _sum_forward

    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        g, ky, kx = 40, 5, 6
        ax, ay, bx, by, cx, cy = (jnp.asarray(c) for c in rng.uniform(0, 6, (6, g, 1, 1)))
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        inv = jnp.where(area != 0, 1.0 / jnp.where(area != 0, area, 1.0), 0.0)
        depth = [jnp.asarray(rng.uniform(0, 1, (g, 1, 1))) for _ in range(3)]
        colours = [[jnp.asarray(rng.uniform(0, 1, (g, 1, 1))) for _ in range(3)] for _ in range(2)]
        tri = (ax, ay, bx, by, cx, cy, inv, *depth, colours)
        px = jnp.broadcast_to(jnp.arange(kx, dtype=jnp.float64)[None, None], (g, ky, kx))
        py = jnp.broadcast_to(jnp.arange(ky, dtype=jnp.float64)[None, :, None], (g, ky, kx))
        top = jnp.asarray(rng.uniform(0.9, 1.0, (g, ky, kx)))
        cot = (
            jnp.asarray(rng.normal(size=(g, ky, kx))),
            [jnp.asarray(rng.normal(size=(g, ky, kx))) for _ in range(2)],
            jnp.asarray(rng.normal(size=(g, ky, kx))),
        )
        # the forward is _sum_forward itself (tested against the dense SoftRas definition in
        # test_soft_equals_dense_definition_whatever_the_plan); what is tested here is the
        # written backward pass against autodiff through that forward
        out, vjp = jax.vjp(lambda t: _soft_sum_terms(px, py, t, top, 2.0, 0.1), tri)
        _, ref_vjp = jax.vjp(lambda t: _sum_forward(px, py, t, top, 2.0, 0.1)[0], tri)
        assert np.mean(np.asarray(out[0]) > 0) > 0.3  # many pairs count
        got, want = jax.tree.leaves(vjp(cot)), jax.tree.leaves(ref_vjp(cot))
        assert len(got) == len(want) == 16
        for a, b in zip(got, want):
            assert a.shape == (g, 1, 1)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_vmap_equals_loop_and_bilinear():
    rng = np.random.default_rng(2)
    vs = np.stack(
        [np.c_[rng.uniform(0, 47, (12, 2)), rng.uniform(1, 3, 12)] for _ in range(3)]
    ).astype(np.float32)
    f = jnp.asarray(np.arange(12).reshape(4, 3), jnp.int32)
    plan = raster_plan(vs, f, 48, 48)
    batch = jax.vmap(lambda v: rasterize(v, f, 48, 48, plan))(jnp.asarray(vs))
    looped = rasterize_batch(jnp.asarray(vs), f, 48, 48, plan, sequential=True)
    for i in range(3):
        one = rasterize(jnp.asarray(vs[i]), f, 48, 48, plan)
        np.testing.assert_array_equal(batch.triangle[i], one.triangle)
        np.testing.assert_array_equal(looped.triangle[i], one.triangle)
        np.testing.assert_array_equal(looped.bary[i], one.bary)
    img = jnp.asarray(rng.uniform(size=(5, 7, 2)), jnp.float32)
    np.testing.assert_allclose(
        sample_bilinear(img, jnp.array([[3.0, 2.0]]))[0], img[2, 3], atol=1e-6
    )
    mid = sample_bilinear(img, jnp.array([[3.5, 2.0]]))[0]
    np.testing.assert_allclose(mid, (img[2, 3] + img[2, 4]) / 2, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=60),
    st.lists(st.integers(0, 12), min_size=4, max_size=4),
)
def test_group_members_match_nonzero(groups, caps):
    """One sort gives each group's first `cap` members, in order, as nonzero does."""
    group = np.asarray(groups, np.int32)  # 4 groups, 4 means none
    slots = _group_members(jnp.asarray(group), tuple(caps))
    for g, (cap, got) in enumerate(zip(caps, slots)):
        if cap == 0:
            assert got is None
            continue
        want = np.flatnonzero(group == g)[:cap]
        ids, member = (np.asarray(x) for x in got)
        np.testing.assert_array_equal(member, np.arange(cap) < len(want))
        np.testing.assert_array_equal(ids[member], want)
        np.testing.assert_array_equal(ids[~member], 0)


def test_sides_index_is_searchsorted():
    ext = np.asarray([0.0, 1.0, 2.0, 2.5, 4.0, 15.0, 16.0, 16.5, np.inf], np.float32)
    want = np.searchsorted(np.asarray(SIDES, np.float32), ext)
    np.testing.assert_array_equal(np.asarray(_sides_index(jnp.asarray(ext), SIDES)), want)


@pytest.mark.parametrize("shape", [(13, 17), (1, 9), (6, 1)])
def test_sample_bilinear_equals_scipy(shape):
    """Against scipy's map_coordinates (order 1, edges extended), points inside and outside."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(3)
    h, w = shape
    img = rng.uniform(size=(h, w, 3))
    uv = np.c_[rng.uniform(-3, w + 2, 500), rng.uniform(-3, h + 2, 500)]
    ours = np.asarray(sample_bilinear(jnp.asarray(img, jnp.float32), jnp.asarray(uv, jnp.float32)))
    want = np.stack(
        [
            map_coordinates(img[..., c], [uv[:, 1], uv[:, 0]], order=1, mode="nearest")
            for c in range(3)
        ],
        -1,
    )
    np.testing.assert_allclose(ours, want, atol=1e-5)
