"""The Poisson kernel (vafx.kernels.poisson) against scipy's sparse direct solver."""

import functools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
from hypothesis import given
from hypothesis import strategies as st
from vafx.kernels.poisson import mask_stencil, num_levels, poisson_operator, solve_poisson

NEIGHBOURS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def reference(s, t, m, mixed=False):
    """Perez et al.'s equations assembled as a scipy sparse matrix, solved in float64."""
    h, w = m.shape
    idx = -np.ones((h, w), int)
    ys, xs = np.nonzero(m)
    idx[ys, xs] = np.arange(len(ys))
    rows, cols, vals = [], [], []
    b = np.zeros(len(ys))
    for k, (y, x) in enumerate(zip(ys, xs)):
        deg = 0
        for dy, dx in NEIGHBOURS:
            qy, qx = y + dy, x + dx
            if not (0 <= qy < h and 0 <= qx < w):
                continue
            deg += 1
            gs, gt = float(s[y, x]) - float(s[qy, qx]), float(t[y, x]) - float(t[qy, qx])
            b[k] += (gs if abs(gs) > abs(gt) else gt) if mixed else gs
            if m[qy, qx]:
                rows.append(k), cols.append(idx[qy, qx]), vals.append(-1.0)
            else:
                b[k] += t[qy, qx]
        rows.append(k), cols.append(k), vals.append(float(deg))
    a = sp.csr_matrix((vals, (rows, cols)), shape=(len(ys), len(ys)))
    f = t.astype(np.float64).copy()
    f[ys, xs] = spl.spsolve(a, b)
    return f


# 16 x 16 grids have multigrid levels; 12 x 10 ends on a coarse grid that is
# not square; 9 x 7 has odd sides and a single level (dense direct solve).
SHAPES = [(16, 16), (12, 10), (9, 7)]


@functools.cache
def _solver(mixed):
    return jax.jit(functools.partial(solve_poisson, mixed=mixed, rtol=1e-6, max_iters=100))


def masks(shape):
    """Random masks: scattered pixels with holes, blocks, single pixels, border contact."""
    return hnp.arrays(bool, shape, elements=st.booleans()).filter(lambda m: 0 < m.sum() < m.size)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mixed", [False, True])
@given(data=st.data())
def test_matches_spsolve(shape, mixed, data):
    m = data.draw(masks(shape), label="mask")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 1, shape).astype(np.float32)
    t = rng.uniform(0, 1, shape).astype(np.float32)
    out = _solver(mixed)(jnp.asarray(s), jnp.asarray(t), jnp.asarray(m))
    assert bool(out.converged), float(out.relative_residual)
    # the intensity range is 1: the bound is 1e-3 of it; float32 CG to
    # 1e-6 relative residual lands far inside it
    np.testing.assert_allclose(np.asarray(out.value), reference(s, t, m, mixed), atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@given(data=st.data())
def test_boundary_is_target_and_same_images_give_target(shape, data):
    m = data.draw(masks(shape), label="mask")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    s = rng.uniform(0, 1, shape).astype(np.float32)
    t = rng.uniform(0, 1, shape).astype(np.float32)
    out = _solver(False)(jnp.asarray(s), jnp.asarray(t), jnp.asarray(m))
    np.testing.assert_array_equal(np.asarray(out.value)[~m], t[~m])  # exactly
    same = _solver(False)(jnp.asarray(t), jnp.asarray(t), jnp.asarray(m))
    np.testing.assert_array_equal(np.asarray(same.value), t)
    assert float(same.relative_residual) == 0.0


@given(data=st.data())
def test_zero_guidance_gives_the_harmonic_interpolation(data):
    shape = (16, 16)
    m = data.draw(masks(shape), label="mask")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    t = rng.uniform(0, 1, shape).astype(np.float32)
    out = _solver(False)(jnp.full(shape, 0.3, jnp.float32), jnp.asarray(t), jnp.asarray(m))
    f = np.asarray(out.value, np.float64)
    # discrete Laplacian over in-image neighbours vanishes on every mask pixel
    for y, x in zip(*np.nonzero(m)):
        nb = [f[y + dy, x + dx] for dy, dx in NEIGHBOURS if 0 <= y + dy < 16 and 0 <= x + dx < 16]
        assert abs(len(nb) * f[y, x] - sum(nb)) < 1e-4


def test_channels_and_vmap_equal_single_solves():
    rng = np.random.default_rng(3)
    s = rng.uniform(size=(4, 3, 32, 32)).astype(np.float32)
    t = rng.uniform(size=(4, 3, 32, 32)).astype(np.float32)
    yy, xx = np.mgrid[:32, :32]
    m = np.stack([(yy - 16) ** 2 + (xx - 16) ** 2 < r * r for r in (5, 8, 11, 14)])
    solve = jax.jit(functools.partial(solve_poisson, rtol=1e-6))
    batched = jax.vmap(solve)(jnp.asarray(s), jnp.asarray(t), jnp.asarray(m))
    for i in range(4):
        for c in range(3):
            one = solve(jnp.asarray(s[i, c]), jnp.asarray(t[i, c]), jnp.asarray(m[i]))
            np.testing.assert_allclose(batched.value[i, c], one.value, atol=2e-5)
            assert bool(batched.converged[i, c])


def test_mask_touching_padding_sees_no_neighbour_there():
    """Pixels marked outside the image behave like the image border."""
    rng = np.random.default_rng(4)
    s = rng.uniform(size=(12, 12)).astype(np.float32)
    t = rng.uniform(size=(12, 12)).astype(np.float32)
    m = np.zeros((12, 12), bool)
    m[2:12, 3:9] = True  # touches the bottom border
    ref = _solver(False)(jnp.asarray(s), jnp.asarray(t), jnp.asarray(m))
    pad = lambda a: jnp.asarray(np.pad(a, ((0, 4), (0, 4))))  # noqa: E731
    inside = np.pad(np.ones((12, 12), bool), ((0, 4), (0, 4)))
    out = _solver(False)(pad(s), pad(t), pad(m), jnp.asarray(inside))
    np.testing.assert_allclose(np.asarray(out.value)[:12, :12], ref.value, atol=1e-5)


def test_stencil_is_symmetric():
    rng = np.random.default_rng(5)
    m = rng.uniform(size=(8, 8)) < 0.5
    s = mask_stencil(jnp.asarray(m), jnp.ones((8, 8), bool))
    from vafx.kernels.poisson import apply_stencil

    eye = np.eye(64, dtype=np.float32).reshape(64, 8, 8)
    a = np.stack([np.asarray(apply_stencil(s, jnp.asarray(e))).ravel() for e in eye])
    np.testing.assert_array_equal(a, a.T)


def test_num_levels():
    assert num_levels(512, 512) == 7  # 8 x 8 coarsest
    assert num_levels(384, 288) == 7  # 6 x 5 coarsest
    assert num_levels(46, 34) == 4  # odd sides halve rounding up: 23 x 17, 12 x 9, then 6 x 5
    assert num_levels(9, 7) == 1
    assert num_levels(512, 512, coarsest=256) == 6  # 16 x 16


def test_odd_sides_and_shared_operator():
    """Odd sides are padded per level; one operator serves every image over its mask."""
    rng = np.random.default_rng(7)
    m = rng.uniform(size=(46, 34)) < 0.8
    op = poisson_operator(jnp.asarray(m))
    assert [lv[1].shape for lv in op.levels] == [(46, 34), (23, 17), (12, 9), (6, 5)]
    for seed in range(2):
        s, t = (rng.uniform(size=(46, 34)).astype(np.float32) for _ in range(2))
        args = (jnp.asarray(s), jnp.asarray(t), jnp.asarray(m))
        shared = solve_poisson(*args, operator=op, rtol=1e-6, max_iters=100)
        own = solve_poisson(*args, rtol=1e-6, max_iters=100)
        assert bool(shared.converged) and int(shared.iterations) < 15
        np.testing.assert_array_equal(np.asarray(shared.value), np.asarray(own.value))
        np.testing.assert_allclose(np.asarray(shared.value), reference(s, t, m), atol=1e-4)


def test_float64_on_request():
    rng = np.random.default_rng(6)
    m = rng.uniform(size=(16, 16)) < 0.6
    s = rng.uniform(size=(16, 16))
    t = rng.uniform(size=(16, 16))
    with jax.enable_x64(True):
        out = solve_poisson(jnp.asarray(s), jnp.asarray(t), jnp.asarray(m), rtol=1e-12)
        assert out.value.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(out.value), reference(s, t, m), atol=1e-10)


def test_second_call_does_not_recompile():
    f = jax.jit(solve_poisson)
    args = [jnp.zeros((16, 16), jnp.float32)] * 2 + [jnp.eye(16, dtype=bool)]
    f(*args)
    before = f._cache_size()
    f(args[0] + 1, args[1], ~args[2])
    assert f._cache_size() == before


@given(st.integers(0, 15), st.integers(0, 15))
def test_single_pixel_mask_is_the_mean_of_neighbours_plus_guidance(y, x):
    rng = np.random.default_rng(y * 16 + x)
    s = rng.uniform(size=(16, 16)).astype(np.float32)
    t = rng.uniform(size=(16, 16)).astype(np.float32)
    m = np.zeros((16, 16), bool)
    m[y, x] = True
    out = _solver(False)(jnp.asarray(s), jnp.asarray(t), jnp.asarray(m))
    nb = [(y + dy, x + dx) for dy, dx in NEIGHBOURS if 0 <= y + dy < 16 and 0 <= x + dx < 16]
    want = sum(t[q] + s[y, x] - s[q] for q in nb) / len(nb)
    assert abs(float(out.value[y, x]) - want) < 1e-5
