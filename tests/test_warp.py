"""Resampling the photo without losing its grain, and the face's motion carried around it."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vafx.kernels.raster import sample_bicubic, sample_bilinear

from vafx._render._face import _normalized_ratio
from vafx._render._warp import detail_layers, extend_motion, feather, pixel_noise, sample_photo


def _keys(t):
    """Catmull-Rom kernel (Keys, a = -1/2) at distance t, float64 (written from the formula)."""
    t = np.abs(t)
    return np.where(
        t <= 1,
        1.5 * t**3 - 2.5 * t**2 + 1,
        np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0),
    )


def _bicubic_reference(img, x, y):
    """Sum over the 4 x 4 nearest pixels of kernel(x - i) kernel(y - j) img[j, i], indices clamped."""
    h, w = img.shape[:2]
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    out = np.zeros(img.shape[2:])
    for j in range(int(np.floor(y)) - 1, int(np.floor(y)) + 3):
        for i in range(int(np.floor(x)) - 1, int(np.floor(x)) + 3):
            wgt = _keys(x - i) * _keys(y - j)
            out = out + wgt * img[min(max(j, 0), h - 1), min(max(i, 0), w - 1)]
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(1, 1), (1, 7), (5, 1), (6, 9), (17, 4)]),
)
def test_bicubic_equals_the_kernel_sum(seed, shape):
    rng = np.random.default_rng(seed)
    img = rng.random((*shape, 3))
    uv = rng.uniform(-2, np.array(shape[::-1]) + 1, (40, 2))
    ours = np.asarray(sample_bicubic(jnp.asarray(img, jnp.float32), jnp.asarray(uv, jnp.float32)))
    ref = np.stack([_bicubic_reference(img, x, y) for x, y in uv])
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_bicubic_is_interpolating_and_exact_on_quadratic_ramps():
    y, x = np.mgrid[0:12, 0:14].astype(np.float64)
    img = (0.01 * x**2 + 0.3 * y - 0.02 * x * y)[..., None]
    grid = jnp.asarray(np.stack([x, y], -1), jnp.float32)
    np.testing.assert_array_equal(np.asarray(sample_bicubic(jnp.asarray(img, jnp.float32), grid)),
                                  img.astype(np.float32))  # fmt: skip
    # away from the clamped border, the cubic reproduces a quadratic surface exactly
    uv = np.random.default_rng(0).uniform(2, 9, (50, 2))
    got = np.asarray(sample_bicubic(jnp.asarray(img, jnp.float32), jnp.asarray(uv, jnp.float32)))
    want = 0.01 * uv[:, 0] ** 2 + 0.3 * uv[:, 1] - 0.02 * uv[:, 0] * uv[:, 1]
    np.testing.assert_allclose(got[:, 0], want, atol=1e-4)


def _lap_var(g):
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return lap[4:-4, 4:-4].var()


def test_sampling_keeps_the_grain_that_interpolation_washes_out():
    rng = np.random.default_rng(1)
    # a photo-like image: smooth shading plus fine grain
    y, x = np.mgrid[0:96, 0:96].astype(np.float32)
    img = 0.5 + 0.2 * np.sin(x / 9) * np.cos(y / 13) + 0.05 * rng.standard_normal((96, 96))
    img = jnp.asarray(img[..., None], jnp.float32)
    smooth, detail = detail_layers(img)
    np.testing.assert_allclose(np.asarray(smooth + detail), np.asarray(img), atol=1e-6)
    grid = jnp.stack([jnp.asarray(x), jnp.asarray(y)], -1)
    # integer positions: the photo exactly
    np.testing.assert_allclose(np.asarray(sample_photo(smooth, detail, grid)), img, atol=1e-6)
    # shifted by fractions of a pixel: bilinear loses most of the grain's energy, the
    # split keeps nearly all of it
    base = _lap_var(np.asarray(img)[..., 0])
    for s in (0.3, 0.45):
        uv = grid + jnp.asarray([[[s, 0.7 * s]]], jnp.float32)
        ours = _lap_var(np.asarray(sample_photo(smooth, detail, uv))[..., 0]) / base
        lin = _lap_var(np.asarray(sample_bilinear(img, uv))[..., 0]) / base
        assert ours > 0.85 and lin < 0.6, (s, ours, lin)


def test_motion_extension_is_the_membrane():
    """Against a direct sparse solve (scipy) of the discrete Laplace equation."""
    sp = pytest.importorskip("scipy.sparse")
    spla = pytest.importorskip("scipy.sparse.linalg")
    h, w = 20, 24
    known = np.zeros((h, w), bool)
    known[6:13, 8:15] = True
    rng = np.random.default_rng(2)
    disp = np.zeros((h, w, 2), np.float32)
    disp[known] = rng.uniform(-3, 3, (known.sum(), 2))
    out = np.asarray(extend_motion(jnp.asarray(disp), jnp.asarray(known), max_iters=200))
    np.testing.assert_array_equal(out[known], disp[known])
    unknown = ~known
    unknown[[0, -1], :] = unknown[:, [0, -1]] = False
    assert not out[0].any() and not out[-1].any() and not out[:, 0].any() and not out[:, -1].any()
    idx = -np.ones((h, w), int)
    idx[unknown] = np.arange(unknown.sum())
    rows, cols, vals = [], [], []
    rhs = np.zeros((unknown.sum(), 2))
    for y, x in zip(*np.nonzero(unknown)):
        i = idx[y, x]
        rows.append(i), cols.append(i), vals.append(4.0)
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            q = (y + dy, x + dx)
            if idx[q] >= 0:
                rows.append(i), cols.append(idx[q]), vals.append(-1.0)
            elif known[q]:
                rhs[i] += disp[q]
    a = sp.csr_matrix((vals, (rows, cols)), shape=(len(rhs), len(rhs)))
    ref = np.stack([spla.spsolve(a, rhs[:, k]) for k in range(2)], -1)
    got = out[unknown]
    small = np.linalg.norm(ref, axis=1) < 0.05  # set to zero by design
    np.testing.assert_allclose(got[~small], ref[~small], atol=2e-3)
    assert np.abs(got[small]).max() <= 0.05


def test_motion_extension_stops_at_its_reach_whatever_the_grid():
    """The same face in a small crop and in a larger one (a batch's) moves the same pixels."""
    rng = np.random.default_rng(3)
    known = np.zeros((30, 40), bool)
    known[10:20, 12:28] = True
    disp = np.zeros((30, 40, 2), np.float32)
    disp[known] = rng.uniform(-4, 4, (known.sum(), 2))
    small = np.asarray(extend_motion(jnp.asarray(disp), jnp.asarray(known), reach=6))
    big_known = np.zeros((64, 80), bool)
    big_known[17:47, 23:63] = known
    big_disp = np.zeros((64, 80, 2), np.float32)
    big_disp[17:47, 23:63] = disp
    big = np.asarray(extend_motion(jnp.asarray(big_disp), jnp.asarray(big_known), reach=6))
    np.testing.assert_allclose(big[17:47, 23:63], small, atol=1e-2)  # the solve's rtol 1e-3
    assert not big[:20].any() and not big[:, :28].any()  # zero beyond the reach
    assert np.abs(big[25, 40]).max() > 0.05  # within it, moved


def test_feather_is_zero_off_the_mask_and_one_deep_inside():
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    f = np.asarray(feather(jnp.asarray(m), 3))
    assert (f[~m] == 0).all() and (f[9:21, 9:21] == 1).all()
    assert 0 < f[5, 15] < 0.5 and f[5, 15] < f[6, 15] < f[8, 15] <= 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_reshading_keeps_the_brightness_and_the_unturned_pixels(seed):
    rng = np.random.default_rng(seed)
    # within [0.8, 1.25] a normalized ratio cannot reach the clip at [0.5, 1.6]
    ratio = np.where(rng.random((16, 16)) < 0.5, 1.0, rng.uniform(0.8, 1.25, (16, 16)))
    where = rng.random((16, 16)) < 0.8
    weight = rng.uniform(0.1, 1.0, (16, 16))
    out = np.asarray(
        _normalized_ratio(jnp.asarray(ratio, jnp.float32), jnp.asarray(where), jnp.asarray(weight, jnp.float32))
    )  # fmt: skip
    # no change where the surface did not turn, nor off the face
    assert (out[(ratio == 1) | ~where] == 1).all()
    # the brightness-weighted change over the face sums to zero
    d = (out - 1)[where] * weight[where]
    assert abs(d.sum()) <= 1e-4 * np.abs(d).sum() + 1e-5
    assert (out > 0).all()


def test_grain_pattern_belongs_to_the_photo_not_the_crop():
    big = np.asarray(pixel_noise(120, 150, jnp.asarray([10, 20], jnp.int32)))
    crop = np.asarray(pixel_noise(40, 50, jnp.asarray([40, 65], jnp.int32)))
    np.testing.assert_array_equal(crop, big[30:70, 45:95])
    # standard normal: 18,000 samples
    assert abs(big.mean()) < 0.03 and abs(big.std() - 1) < 0.03
    assert abs(np.mean(np.abs(big) > 1.96) - 0.05) < 0.01
    # neighbours are independent
    assert abs(np.corrcoef(big[:, :-1].ravel(), big[:, 1:].ravel())[0, 1]) < 0.03
