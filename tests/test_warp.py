"""Resampling the photo without losing its grain, and the face's motion carried around it."""

from __future__ import annotations

import jax
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


# compiled once per shape (called eagerly, its pyramid's many small operations each
# dispatched and compiled apart cost seconds a call)
_extend = jax.jit(extend_motion, static_argnames=("reach", "levels"))


def _membrane(disp, known, reach):
    """The harmonic extension by a direct sparse solve (scipy): zero beyond the reach."""
    sp = pytest.importorskip("scipy.sparse")
    spla = pytest.importorskip("scipy.sparse.linalg")
    ndi = pytest.importorskip("scipy.ndimage")
    band = ndi.binary_dilation(known, np.ones((2 * reach + 1,) * 2, bool)) & ~known
    idx = -np.ones(known.shape, int)
    idx[band] = np.arange(band.sum())
    rows, cols, vals = [], [], []
    rhs = np.zeros((band.sum(), 2))
    h, w = known.shape
    for y, x in zip(*np.nonzero(band)):
        i = idx[y, x]
        rows.append(i), cols.append(i), vals.append(4.0)
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            q = (y + dy, x + dx)
            if not (0 <= q[0] < h and 0 <= q[1] < w):
                continue
            if idx[q] >= 0:
                rows.append(i), cols.append(idx[q]), vals.append(-1.0)
            elif known[q]:
                rhs[i] += disp[q]
    a = sp.csr_matrix((vals, (rows, cols)), shape=(len(rhs), len(rhs)))
    out = np.zeros_like(disp, np.float64)
    out[known] = disp[known]
    out[band] = np.stack([spla.spsolve(a, rhs[:, k]) for k in range(2)], -1)
    return out, band


def _jaw(h, w):
    """A face-like ellipse whose lower half moves down (up to 3 px) and slightly sideways."""
    yy, xx = np.mgrid[:h, :w]
    known = ((yy - h * 0.45) / (h * 0.3)) ** 2 + ((xx - w / 2) / (w * 0.25)) ** 2 < 1
    down = 3.0 * np.clip((yy - h * 0.45) / (h * 0.3), 0, 1) ** 2
    disp = np.stack([0.02 * (xx - w / 2), down], -1).astype(np.float32)
    return np.where(known[..., None], disp, 0).astype(np.float32), known


def test_motion_extension_is_close_to_the_membrane_and_never_overshoots():
    """Against the harmonic membrane (a direct scipy solve) with the same boundary values."""
    disp, known = _jaw(120, 100)
    reach = 12
    out = np.asarray(_extend(jnp.asarray(disp), jnp.asarray(known), reach=reach))
    ref, band = _membrane(disp, known, reach)
    np.testing.assert_array_equal(out[known], disp[known])
    assert not out[~known & ~band].any()  # zero beyond the reach
    err = np.abs(out - ref)[band]
    assert err.max() < 0.15 * np.abs(disp).max() and err.mean() < 0.1, (err.max(), err.mean())
    # a weighted mean of the known values and zeros: within their range, per component
    for k in range(2):
        lo, hi = min(disp[known, k].min(), 0), max(disp[known, k].max(), 0)
        assert lo - 1e-5 <= out[band, k].min() and out[band, k].max() <= hi + 1e-5
    # continuous across the outline: a step from a face pixel to its outside neighbour
    # is no larger than the membrane's own
    step = np.abs(np.diff(out[..., 1], axis=0)).max()
    assert step <= 1.5 * np.abs(np.diff(ref[..., 1], axis=0)).max(), step


@pytest.mark.parametrize("shift", [(0, 0), (5, 11), (32, 64), (-7, 3)])
def test_motion_extension_belongs_to_the_face_not_the_crop(shift):
    """The same face in a small crop and in a larger one (a batch's), placed anywhere:
    with the crops' corners given relative to the face, the same motion, to rounding."""
    disp, known = _jaw(64, 56)
    small = np.asarray(_extend(jnp.asarray(disp), jnp.asarray(known), jnp.array([3, 9]), reach=8))
    oy, ox = 40 + shift[0], 40 + shift[1]
    big_known = np.zeros((160, 180), bool)
    big_known[oy : oy + 64, ox : ox + 56] = known
    big_disp = np.zeros((160, 180, 2), np.float32)
    big_disp[oy : oy + 64, ox : ox + 56] = disp
    corner = jnp.array([3 - oy, 9 - ox])
    big = np.asarray(_extend(jnp.asarray(big_disp), jnp.asarray(big_known), corner, reach=8))
    np.testing.assert_allclose(big[oy : oy + 64, ox : ox + 56], small, atol=1e-5)
    rest = big.copy()
    rest[oy : oy + 64, ox : ox + 56] = 0
    assert not rest.any()  # zero beyond the reach
    assert np.abs(small[52, 28]).max() > 0.5  # within it, moved


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
