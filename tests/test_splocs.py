"""The SPLOCS kernel: proximal operator, geodesics, monotonicity, recovery, padding, vmap."""

from __future__ import annotations

import functools

import _splocs_reference as ref
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from vafx.kernels.splocs import (
    SplocsParams,
    graph_distances,
    mesh_graph,
    prox_l1l2,
    splocs_fit,
    splocs_init,
    splocs_step,
)

SPHERE = trimesh.creation.icosphere(subdivisions=2, radius=10.0)  # 162 vertices
V, FACES = np.asarray(SPHERE.vertices), np.asarray(SPHERE.faces)
N = len(V)

groups = hnp.arrays(np.float64, (5, 3), elements=st.floats(-10, 10))
weights = hnp.arrays(np.float64, (5,), elements=st.floats(0, 5))


@given(groups, groups, weights, st.floats(0.01, 3))
def test_prox_is_nonexpansive_and_thresholds(x, y, lam, beta):
    with jax.enable_x64(True):
        px = np.asarray(prox_l1l2(jnp.asarray(x), jnp.asarray(lam), beta))
        py = np.asarray(prox_l1l2(jnp.asarray(y), jnp.asarray(lam), beta))
    assert np.linalg.norm(px - py) <= np.linalg.norm(x - y) + 1e-9
    norms = np.linalg.norm(x, axis=1)
    below = norms <= beta * lam
    assert (px[below] == 0).all()
    # the closed form, group by group: shrink the norm by beta * lam, keep the direction
    keep = ~below
    np.testing.assert_allclose(
        np.linalg.norm(px[keep], axis=1), norms[keep] - beta * lam[keep], rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(px, ref.prox(x, lam, beta), atol=1e-12)


def test_graph_distances_equal_dijkstra():
    g = mesh_graph(V, FACES)
    with jax.enable_x64(True):
        g = mesh_graph(V, FACES)
        got = jax.vmap(lambda s: graph_distances(g, s, N))(jnp.arange(0, N, 17))
        got_capped = jax.vmap(lambda s: graph_distances(g, s, N, 5.0))(jnp.arange(0, N, 17))
    want = ref.distances(V, FACES, np.arange(0, N, 17), np.inf)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    capped = np.asarray(got_capped)
    np.testing.assert_allclose(capped[want <= 5.0], want[want <= 5.0], rtol=1e-12)
    assert np.isinf(capped[want > 5.0]).all()


def planted(seed, frames=60, k=4, noise=0.01, width=3.0, nonneg=True):
    rng = np.random.default_rng(seed)
    centres = rng.choice(N, k, replace=False)
    d = ref.distances(V, FACES, centres, np.inf)
    comps = np.exp(-((d / width) ** 2))[:, :, None] * rng.normal(size=(k, 1, 3))
    w = rng.uniform(0 if nonneg else -1, 1, (frames, k))
    x = np.einsum("fk,knd->fnd", w, comps) + noise * rng.normal(size=(frames, N, 3))
    return x, comps


@functools.cache
def _jit_init(p):
    return jax.jit(functools.partial(splocs_init, params=p))


@functools.cache
def _jit_step(p):
    return jax.jit(functools.partial(splocs_step, params=p))


P = SplocsParams(num_components=6, num_iters=6, sparsity=0.5, support_min=2.0, support_max=8.0)


@pytest.mark.parametrize("nonneg", [True, False])
@settings(max_examples=10)
@given(seed=st.integers(0, 1000))
def test_objective_never_increases_and_constraints_hold(nonneg, seed):
    x, _ = planted(seed, frames=30, nonneg=nonneg)
    p = P._replace(nonnegative=nonneg)
    with jax.enable_x64(True):
        g = mesh_graph(V, FACES)
        mask = jnp.ones(30, bool)
        xs = jnp.asarray(x)
        s = _jit_init(p)(xs, mask, g)
        step = _jit_step(p)
        for _ in range(p.num_iters):
            s = step(xs, mask, g, s)
            w = np.asarray(s.weights)
            assert w.min() >= (0 if nonneg else -1) - 1e-12 and w.max() <= 1 + 1e-12
            used = np.abs(w).max(axis=0) > 0
            np.testing.assert_allclose(np.abs(w).max(axis=0)[used], 1.0, rtol=1e-12)
        obj = np.asarray(s.objective)
    assert (np.diff(obj) <= 1e-9 * obj[0]).all(), obj


def test_planted_components_are_recovered():
    x, comps = planted(7, frames=80, k=4, noise=0.005)
    p = P._replace(num_components=4, num_iters=30, sparsity=0.2)
    st_ = splocs_fit(jnp.asarray(x, jnp.float32), jnp.ones(80, bool), mesh_graph(V, FACES), p)
    got = np.asarray(st_.components).reshape(4, -1)
    want = comps.reshape(4, -1)
    corr = np.abs(np.corrcoef(np.concatenate([got, want]))[:4, 4:])
    assert corr.max(axis=0).min() > 0.9, corr  # every planted component has a match
    assert float(st_.residual[-1]) < 0.1  # noise 0.005 plus the l1/l2 shrinkage


def test_padded_frames_change_nothing():
    x, _ = planted(3, frames=40)
    pad = np.concatenate([x, np.random.default_rng(0).normal(size=(24, N, 3)) * 100])
    mask = np.arange(64) < 40
    g = mesh_graph(V, FACES)
    with jax.enable_x64(True):
        g = mesh_graph(V, FACES)
        a = splocs_fit(jnp.asarray(x), jnp.ones(40, bool), g, P)
        b = splocs_fit(jnp.asarray(pad), jnp.asarray(mask), g, P)
    np.testing.assert_allclose(np.asarray(b.components), np.asarray(a.components), atol=1e-10)
    np.testing.assert_allclose(np.asarray(b.weights)[:40], np.asarray(a.weights), atol=1e-10)
    assert (np.asarray(b.weights)[40:] == 0).all()
    np.testing.assert_allclose(np.asarray(b.objective), np.asarray(a.objective), rtol=1e-10)


def test_vmap_over_sets_equals_loop():
    xs = np.stack([planted(s, frames=32)[0] for s in range(3)]).astype(np.float32)
    masks = np.stack([np.arange(32) < m for m in (32, 20, 9)])
    g = mesh_graph(V, FACES)
    batched = jax.vmap(lambda x, m: splocs_fit(x, m, g, P))(jnp.asarray(xs), jnp.asarray(masks))
    for i in range(3):
        one = splocs_fit(jnp.asarray(xs[i]), jnp.asarray(masks[i]), g, P)
        np.testing.assert_allclose(batched.components[i], one.components, atol=2e-5)
        # the objective comes from Gram matrices: float32 cancellation, summation order
        np.testing.assert_allclose(batched.objective[i], one.objective, rtol=2e-4)


@pytest.mark.parametrize("nonneg", [True, False])
def test_matches_the_numpy_reference(nonneg):
    x, _ = planted(11, frames=50, nonneg=nonneg)
    mask = np.arange(50) < 45
    p = P._replace(nonnegative=nonneg, num_iters=4)
    with jax.enable_x64(True):
        got = splocs_fit(jnp.asarray(x), jnp.asarray(mask), mesh_graph(V, FACES), p)
    w, c, centres, lam, hist = ref.fit(x, V, FACES, p, mask)
    np.testing.assert_allclose(np.asarray(got.objective), hist, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(got.components), c, atol=1e-10)
    np.testing.assert_allclose(np.asarray(got.weights), w, atol=1e-10)
    np.testing.assert_array_equal(np.asarray(got.centres), centres)


def test_geodesic_table_equals_dijkstra_and_the_graph_search():
    from vafx.kernels.splocs import geodesic_table, table_distances

    geo = geodesic_table(V, FACES, 6.0)
    want = ref.distances(V, FACES, np.arange(N), 6.0)
    got = np.stack([np.asarray(table_distances(geo, jnp.int32(c), N)) for c in range(N)])
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-6)
    assert np.isinf(got[~np.isfinite(want)]).all()
    x, _ = planted(2, frames=30)
    a = splocs_fit(jnp.asarray(x, jnp.float32), jnp.ones(30, bool), mesh_graph(V, FACES), P)
    geo = geodesic_table(V, FACES, P.support_max)  # must reach support_max
    b = splocs_fit(jnp.asarray(x, jnp.float32), jnp.ones(30, bool), geo, P)
    np.testing.assert_allclose(np.asarray(b.components), np.asarray(a.components), atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.just(3)),
               elements=st.floats(-1e3, 1e3) | st.sampled_from([0.0, 1e-30, -1e-20, 1e-38])),
    st.floats(0, 3),
)  # fmt: skip
def test_prox_with_zero_threshold_is_the_identity_for_every_finite_input(dtype, x, beta):
    """Rows whose squared norm underflows (1e-30) or flushes to zero (1e-20) come back as they are."""
    with jax.enable_x64(dtype == np.float64):
        xx = jnp.asarray(x, dtype)
        out = np.asarray(prox_l1l2(xx, jnp.zeros(x.shape[0], dtype), beta))
        np.testing.assert_array_equal(out, np.asarray(xx))
        # idempotent on the zero threshold, and on any threshold once shrunk below it
        np.testing.assert_array_equal(
            np.asarray(prox_l1l2(jnp.asarray(out), jnp.zeros(x.shape[0], dtype), beta)), out
        )


def test_prox_of_tiny_rows_keeps_them():
    for v in (1e-30, 1e-20, 1e-38):
        x = jnp.full((2, 3), v, jnp.float32)
        assert (np.asarray(prox_l1l2(x, jnp.zeros(2, jnp.float32), 1.0)) == np.float32(v)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prox_gradient_at_a_zero_row_is_defined(dtype):
    with jax.enable_x64(dtype == np.float64):
        x = jnp.zeros((1, 3), dtype)
        for lam, want in ((1.0, np.zeros((3, 3))), (0.0, np.eye(3))):
            jac = jax.jacobian(lambda z: prox_l1l2(z, jnp.full(1, lam, dtype), 0.5)[0])(x)[:, 0]
            assert np.isfinite(np.asarray(jac)).all()
            np.testing.assert_array_equal(np.asarray(jac), want)
        # and away from zero it is the closed form's derivative (finite differences)
        z = jnp.asarray([[0.3, -0.4, 1.2]], dtype)
        f = lambda z: jnp.sum(prox_l1l2(z, jnp.ones(1, dtype), 0.2) ** 2)  # noqa: E731
        g = np.asarray(jax.grad(f)(z), np.float64)
        h = 1e-6 if dtype == np.float64 else 1e-2
        fd = np.array([
            (float(f(z + h * e)) - float(f(z - h * e))) / (2 * h)
            for e in np.eye(3, dtype=dtype)[:, None, :]
        ])  # fmt: skip
        assert np.abs(g).max() > 0.1  # a row the prox keeps: the derivative is not zero
        np.testing.assert_allclose(g[0], fd, rtol=1e-6 if dtype == np.float64 else 2e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(groups, groups, weights, st.floats(0.0, 3))
def test_prox_is_nonexpansive_in_both_dtypes(dtype, x, y, lam, beta):
    with jax.enable_x64(dtype == np.float64):
        px = np.asarray(prox_l1l2(jnp.asarray(x, dtype), jnp.asarray(lam, dtype), beta), np.float64)
        py = np.asarray(prox_l1l2(jnp.asarray(y, dtype), jnp.asarray(lam, dtype), beta), np.float64)
    tol = 1e-9 if dtype == np.float64 else 1e-4 * (1 + np.abs(x).max() + np.abs(y).max())
    xd = np.asarray(x, dtype).astype(np.float64) - np.asarray(y, dtype).astype(np.float64)
    assert np.linalg.norm(px - py) <= np.linalg.norm(xd) + tol


def test_geodesic_distances_are_within_a_few_percent_of_the_surface_distance():
    """Great circles on an icosphere: the unfolded edges cut the edge-path error (+8%) to ~2%."""
    from vafx.kernels.splocs import geodesic_table, table_distances

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)  # 642 vertices
    v, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    sources = np.arange(0, len(v), 31)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    truth = 10.0 * np.arccos(np.clip(unit[sources] @ unit.T, -1.0, 1.0))
    band = (truth > 2.0) & (truth < 12.0)  # support-sized distances, past the first ring
    geo = geodesic_table(v, faces, 14.0)
    got = np.stack([np.asarray(table_distances(geo, jnp.int32(s), len(v))) for s in sources])
    ratio = got[band] / truth[band]
    assert 0.99 < ratio.mean() < 1.025 and np.percentile(ratio, 95) < 1.05, ratio.mean()
    # the plain edge paths (vafx before, and the bound this test could fail by)
    plain = ref.edge_distances(v, faces, sources)[band] / truth[band]
    assert plain.mean() > 1.05
    # Neumann et al.'s heat method, for the record: short by a few percent
    heat = ref.HeatGeodesics(v, faces)
    h = np.stack([heat(s) for s in sources])[band] / truth[band]
    assert 0.9 < h.mean() < 0.99


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(-5, 5)),
    st.floats(0.01, 10.0),
    st.floats(0.0, 20.0),
    st.booleans(),
)
def test_weight_column_with_scale_is_the_exact_minimizer(t, gkk, group, nonneg):
    """min over u of gkk/2 ||u - t||^2 + group max|u| (u >= 0 when non-negative), u = s w."""
    from vafx.kernels.splocs import _column_and_scale

    with jax.enable_x64(True):
        w, s = _column_and_scale(jnp.asarray(t), jnp.float64(gkk), jnp.float64(group), nonneg)
    w, s = np.asarray(w), float(s)
    u = s * w
    assert s >= 0 and (s == 0 or np.isclose(np.abs(w).max(), 1.0))
    if nonneg:
        assert (w >= 0).all()

    def h(u):
        return 0.5 * gkk * np.sum((u - t) ** 2) + group * np.abs(u).max()

    # the level of the independent bisection, and no feasible point does better
    a = np.maximum(t, 0) if nonneg else np.abs(t)
    tau = ref._clip_level(a, group / gkk)
    assert np.isclose(s, tau, rtol=1e-9, atol=1e-12)
    rng = np.random.default_rng(len(t))
    for _ in range(50):
        v = u + rng.normal(scale=0.3, size=u.shape)
        v = np.maximum(v, 0) if nonneg else v
        assert h(u) <= h(v) + 1e-9 * (1 + h(v))


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_reaches_a_lower_objective_than_the_published_algorithm(seed):
    """Same data, same distances, E = ||X - W C||^2 + group term after 10 iterations."""
    x, _ = planted(seed, frames=60, k=5, noise=0.02)
    x = x / np.sqrt((x**2).mean())
    p = P._replace(num_components=8, num_iters=10)
    with jax.enable_x64(True):
        got = splocs_fit(jnp.asarray(x), jnp.ones(60, bool), mesh_graph(V, FACES), p)
    ours = ref.energy(x, np.asarray(got.weights), np.asarray(got.components), np.asarray(got.lam))
    _, _, _, published, _ = ref.fit_published(x, lambda s: ref.distances(V, FACES, s, np.inf)[0], p)
    assert ours <= published[-1], (ours, published)


def test_vafx_surface_graph_equals_the_references_own():
    """vafx's mesh-plus-unfolded-edges graph against the test reference's, built apart."""
    from vafx.kernels.splocs import surface_edges

    # the sphere, and a bumpy grid jittered into obtuse triangles (where an unfolded segment
    # can miss its edge and is left out)
    rng = np.random.default_rng(4)
    g = np.stack(np.meshgrid(np.arange(12.0), np.arange(12.0)), -1).reshape(-1, 2)
    g = g + rng.uniform(-0.45, 0.45, g.shape)
    grid_v = np.c_[g, 0.3 * rng.normal(size=len(g))]
    k = (np.arange(11)[None, :] + 12 * np.arange(11)[:, None]).ravel()
    grid_f = np.concatenate([np.c_[k, k + 1, k + 13], np.c_[k, k + 13, k + 12]])
    for v, f in ((V, FACES), (grid_v, grid_f)):
        src, dst, length = surface_edges(v, f)
        got = {(min(a, b), max(a, b)): d for a, b, d in zip(src.tolist(), dst.tolist(), length)}
        want = ref.unfolded_edges(v, f)
        mesh_edges = {tuple(sorted(e)) for t in np.asarray(f).tolist()
                      for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}  # fmt: skip
        assert len(want) > 1.3 * len(mesh_edges)
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-12)
    halves = np.sort(np.concatenate([grid_f[:, [0, 1]], grid_f[:, [1, 2]], grid_f[:, [2, 0]]]), 1)
    interior = int((np.unique(halves, axis=0, return_counts=True)[1] == 2).sum())
    assert len(want) - len(mesh_edges) < interior  # on the grid, some segments miss their edge
