"""vafx.seamless_clone and seamless_clone_batch: placement, dtypes, errors."""

import jax
import numpy as np
import pytest
from skimage import data

import vafx
from vafx._render import _blend


def ellipse(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


@pytest.fixture(scope="module")
def photos():
    astro = data.astronaut()[::4, ::4]  # 128 x 128 x 3 uint8
    coffee = data.coffee()[:128, :128]
    return astro, coffee


def test_outside_mask_is_target_and_uint8_round_trip(photos):
    astro, coffee = photos
    m = ellipse(128, 128, 60, 64, 30, 22)
    out, info = vafx.seamless_clone(astro, coffee, m, full_output=True)
    assert out.dtype == np.uint8 and out.shape == coffee.shape
    np.testing.assert_array_equal(out[~m], coffee[~m])
    assert info.converged.all() and info.relative_residual.shape == (3,)
    # the blend keeps the source's detail: its gradients inside the mask (float
    # images: no clipping to 0..255)
    f = vafx.seamless_clone(astro / 255.0, coffee / 255.0, m, rtol=1e-5) * 255
    inner = ellipse(128, 128, 60, 64, 26, 18)
    g_out = np.diff(f, axis=1)[inner[:, 1:]]
    g_src = np.diff(astro.astype(float), axis=1)[inner[:, 1:]]
    assert np.corrcoef(g_out.ravel(), g_src.ravel())[0, 1] > 0.99


def test_offset_equals_pre_shifted_source(photos):
    astro, coffee = photos
    m = ellipse(128, 128, 40, 40, 20, 15)
    shifted = np.roll(astro, (10, 25), axis=(0, 1))
    ms = np.roll(m, (10, 25), axis=(0, 1))
    a = vafx.seamless_clone(astro, coffee, m, offset=(10, 25), dtype=np.float32)
    b = vafx.seamless_clone(shifted, coffee, ms)
    np.testing.assert_array_equal(a, b)


def test_float_images_grey_and_mixed(photos):
    astro, coffee = photos
    src = astro[..., 0].astype(np.float32) / 255
    tgt = coffee[..., 1].astype(np.float32) / 255
    m = ellipse(128, 128, 64, 64, 30, 30)
    for mode in ("normal", "mixed"):
        out = vafx.seamless_clone(src, tgt, m, mode=mode, rtol=1e-5)
        assert out.dtype == np.float32 and out.shape == tgt.shape
        np.testing.assert_array_equal(out[~m], tgt[~m])
    same = vafx.seamless_clone(tgt, tgt, m)
    np.testing.assert_array_equal(same, tgt)


def test_batch_equals_single_calls(photos, monkeypatch):
    astro, coffee = photos
    # different sizes and places: each image is solved on its own crop
    masks = np.stack(
        [
            ellipse(128, 128, cy, cx, r, r - 4)
            for cy, cx, r in ((64, 64, 20), (30, 90, 24), (90, 40, 36))
        ]
    )
    src = np.stack([astro] * 3)
    tgt = np.stack([coffee] * 3)
    out, info = vafx.seamless_clone_batch(src, tgt, masks, rtol=1e-5)
    assert info.iterations.shape == (3, 3)
    for i in range(3):
        one = vafx.seamless_clone(astro, coffee, masks[i], rtol=1e-5)
        assert np.abs(out[i].astype(int) - one.astype(int)).max() <= 1  # rounding
    # on the CPU the batch runs in one chunk per core (the last padded): bit for bit the same
    for workers in (1, 2, 3):
        monkeypatch.setattr(_blend, "_cpu_workers", lambda n=workers: n)
        again, _ = vafx.seamless_clone_batch(src, tgt, masks, rtol=1e-5)
        np.testing.assert_array_equal(again, out)


def test_one_image_channels_apart_equal_them_together(monkeypatch):
    """A large single image's channels solved on their own threads: the same blend."""
    astro, coffee = data.astronaut()[:320, :320], data.coffee()[:320, :320]
    m = ellipse(320, 320, 160, 150, 110, 90)  # a 222 x 182 crop: over _SPLIT_CHANNELS
    monkeypatch.setattr(_blend, "_cpu_workers", lambda: 2)
    apart, info = vafx.seamless_clone(astro, coffee, m, rtol=1e-5, full_output=True)
    monkeypatch.setattr(_blend, "_cpu_workers", lambda: 1)
    together, info1 = vafx.seamless_clone(astro, coffee, m, rtol=1e-5, full_output=True)
    assert info.converged.all() and info1.converged.all()
    assert info.iterations.shape == (3,)
    assert np.abs(apart.astype(int) - together.astype(int)).max() <= 1  # rounding
    np.testing.assert_array_equal(apart[~m], coffee[~m])
    # each channel apart stops at its own iteration count; together they share the largest
    if jax.default_backend() == "cpu":
        assert (info1.iterations == info1.iterations.max()).all()


def test_float64_needs_x64(photos):
    astro, coffee = photos
    m = ellipse(128, 128, 64, 64, 20, 20)
    with pytest.raises(ValueError, match="x64"):
        vafx.seamless_clone(astro, coffee, m, dtype=np.float64)
    with jax.enable_x64(True):
        out = vafx.seamless_clone(
            astro.astype(np.float64), coffee.astype(np.float64), m, dtype=np.float64, rtol=1e-10
        )
        assert out.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mask=np.zeros((128, 128), bool)), "empty"),
        (dict(mask=np.ones((64, 64), bool)), "mask shape"),
        (dict(offset=(120, 0)), "outside the target"),
        (dict(offset=(-50, 0)), "outside the target"),
        (dict(mode="blend"), "mode"),
        (dict(source=np.zeros((128, 128), np.uint8)), "channels"),
        (dict(source=np.full((128, 128, 3), np.nan, np.float32)), "NaN"),
        (dict(mask=np.ones((128, 128), bool)), "whole target"),
    ],
)
def test_clear_errors(photos, kwargs, match):
    astro, coffee = photos
    args = dict(source=astro, target=coffee, mask=ellipse(128, 128, 64, 64, 40, 30))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        vafx.seamless_clone(**args)


def _poisson_residual(out, src, tgt, m):
    """||b - A u|| / ||b|| of the masked Poisson system ("normal" guidance), numpy, float64."""
    u, s, t = (np.asarray(a, np.float64) for a in (out, src, tgt))
    b, au = np.zeros_like(u), np.zeros_like(u)
    ys, xs = np.nonzero(m)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        qy, qx = ys + dy, xs + dx
        inside = m[qy, qx]
        au[ys, xs] += u[ys, xs] - np.where(inside, u[qy, qx], 0)
        b[ys, xs] += np.where(inside, 0, t[qy, qx]) + (s[ys, xs] - s[qy, qx])
    return np.linalg.norm((b - au)[m]) / np.linalg.norm(b[m])


@pytest.mark.parametrize("rtol", [1e-3, 1e-5])
def test_blend_info_reports_the_residual_it_reached(photos, rtol):
    """BlendInfo (and so the sidecar's blend.solve) against the residual computed apart."""
    astro, coffee = photos
    m = ellipse(128, 128, 60, 64, 30, 22)
    out, info = vafx.seamless_clone(astro / 255.0, coffee / 255.0, m, rtol=rtol, full_output=True)
    for c in range(3):
        got = _poisson_residual(out[..., c], astro[..., c] / 255.0, coffee[..., c] / 255.0, m)
        assert got <= rtol * 1.2
        np.testing.assert_allclose(info.relative_residual[c], got, rtol=0.25)
    assert info.converged.all() and (info.iterations >= 1).all()
