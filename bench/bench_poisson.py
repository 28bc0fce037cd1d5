"""Poisson blending: vafx.seamless_clone vs OpenCV's seamlessClone, same photos and masks.

Source: scikit-image's astronaut; target: scikit-image's coffee photo, both resized to
N x N; mask: an ellipse over the face region (0.7 N tall, 0.5 N wide). OpenCV is given
the centre that puts the source at offset (0, 0), so both solve the same placement.
Reports per size both medians, the ratio, vafx's relative residual and iterations, and
the mean absolute difference of the two outputs (0..255). The two are timed in
alternation (bench/_timing.py: median_pair). Then a batch of 64 images at
256 x 256 with 64 different masks: one vafx call vs 64 OpenCV calls, with OpenCV on its
default threads and on one.

Needs opencv-python-headless (`pip install ".[bench]"`). Run: python bench/bench_poisson.py
"""

from __future__ import annotations

import os
import sys

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from skimage import data, transform

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_pair, report  # noqa: E402

import vafx  # noqa: E402

try:
    import cv2
except ImportError:  # pragma: no cover
    sys.exit("bench_poisson needs OpenCV: pip install opencv-python-headless")


def photo(img, n):
    return (transform.resize(img, (n, n), anti_aliasing=True) * 255).round().astype(np.uint8)


def ellipse(n, cy, cx, ry, rx):
    yy, xx = np.mgrid[:n, :n]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


def opencv_clone(src, dst, mask):
    ys, xs = np.nonzero(mask)
    # OpenCV centres the mask's bounding box on `center`: pick the centre that keeps offset 0
    cx = (xs.min() + xs.max() + 1) // 2
    cy = (ys.min() + ys.max() + 1) // 2
    m8 = mask.astype(np.uint8) * 255
    return cv2.seamlessClone(src, dst, m8, (int(cx), int(cy)), cv2.NORMAL_CLONE)


def exact_clone(src, dst, mask):
    """Perez et al.'s equations as a scipy sparse matrix, solved exactly in float64, per channel."""
    h, w = mask.shape
    idx = -np.ones((h, w), np.int64)
    ys, xs = np.nonzero(mask)
    idx[ys, xs] = np.arange(len(ys))
    out = dst.astype(np.float64)
    for c in range(src.shape[2]):
        s, t = src[..., c].astype(np.float64), dst[..., c].astype(np.float64)
        rows, cols, vals, b = [], [], [], np.zeros(len(ys))
        deg = np.zeros(len(ys))
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            qy, qx = ys + dy, xs + dx
            ok = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
            k, qy, qx = np.nonzero(ok)[0], qy[ok], qx[ok]
            deg[k] += 1
            b[k] += s[ys[k], xs[k]] - s[qy, qx]
            inner = mask[qy, qx]
            rows.append(k[inner]), cols.append(idx[qy[inner], qx[inner]])
            b[k[~inner]] += t[qy[~inner], qx[~inner]]
        rows, cols = (
            np.concatenate(rows + [np.arange(len(ys))]),
            np.concatenate(cols + [np.arange(len(ys))]),
        )
        vals = np.concatenate([-np.ones(len(rows) - len(ys)), deg])
        a = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(len(ys), len(ys)))
        out[ys, xs, c] = scipy.sparse.linalg.spsolve(a, b)
    return np.clip(np.rint(out), 0, 255)


def main():
    print(f"OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads; vafx {vafx.__version__}")
    astro, coffee = data.astronaut(), data.coffee()
    for n in (256, 512, 1024):
        src, dst = photo(astro, n), photo(coffee, n)
        mask = ellipse(n, 0.42 * n, 0.5 * n, 0.35 * n, 0.25 * n)
        ours_out, info = vafx.seamless_clone(src, dst, mask, full_output=True)
        cv_out = opencv_clone(src, dst, mask)
        t_ours, t_cv = median_pair(
            lambda: vafx.seamless_clone(src, dst, mask), lambda: opencv_clone(src, dst, mask)
        )
        report(f"seamless clone {n} x {n}", t_ours, t_cv, "OpenCV")
        mad = np.abs(ours_out.astype(float) - cv_out.astype(float))[mask].mean()
        print(
            f"    relative residual {info.relative_residual.max():.1e} after "
            f"{info.iterations.max()} iterations; mean |vafx - OpenCV| in the mask {mad:.2f}/255"
        )
        if n <= 512:
            exact = exact_clone(src, dst, mask)
            print(
                "    against the exact sparse solution (scipy spsolve, float64): mean |error| "
                f"vafx {np.abs(ours_out - exact)[mask].mean():.2f}/255, "
                f"OpenCV {np.abs(cv_out - exact)[mask].mean():.2f}/255; OpenCV changes "
                f"{(np.abs(cv_out.astype(int) - dst)[~mask] > 0).mean():.1%} of the pixels outside the mask"
            )
    n, b = 256, 64
    rng = np.random.default_rng(0)
    src, dst = photo(astro, n), photo(coffee, n)
    masks = np.stack(
        [
            ellipse(n, cy, cx, ry, rx)
            for cy, cx, ry, rx in zip(
                rng.uniform(100, 130, b),
                rng.uniform(110, 146, b),
                rng.uniform(70, 90, b),
                rng.uniform(50, 64, b),
            )
        ]
    )
    srcs, dsts = np.stack([src] * b), np.stack([dst] * b)
    threads = cv2.getNumThreads()
    for cv_threads in sorted({threads, 1}, reverse=True):
        # OpenCV's seamlessClone at 256 x 256 is as fast on one thread as on two; with
        # one its pool has no idle threads left spinning to slow vafx's next call
        cv2.setNumThreads(cv_threads)
        t_ours, t_cv = median_pair(
            lambda: vafx.seamless_clone_batch(srcs, dsts, masks),
            lambda: [opencv_clone(src, dst, m) for m in masks],
            repeat=7,
        )
        report(f"batch of {b} at {n} x {n}", t_ours, t_cv, f"OpenCV x64 ({cv_threads} thr)")
    cv2.setNumThreads(threads)


if __name__ == "__main__":
    main()
