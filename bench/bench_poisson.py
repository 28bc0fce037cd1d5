"""Poisson blending over a family of masks: vafx.seamless_clone vs OpenCV's seamlessClone.

Every case is one source, one target and one mask, blended by both in one
process, timed in alternation (bench/_timing.py: median_pair), the ratio
(OpenCV / vafx: above 1, vafx is faster) printed per case, then per size class
(the longer side) the median and the worst ratio.

The synthetic family: longer side 64, 128, 256, 512 and 1024 px; aspect
(height : width) 1:2, 1:1 and 2:1; five masks on each: ``centre`` (an ellipse
of half the image's sides at the centre), ``off-centre`` (a smaller ellipse
towards a corner), ``border`` (an ellipse cut by the image's left and top
edges), ``holes`` (the centre ellipse with three holes the target keeps) and
``blob`` (a smoothed random blob, one connected piece). Source: scikit-image's
astronaut, target: its coffee photo, both resized to the case's size.

The face cases: the blend masks ``vafx.synthesize`` produces (its render's
crop, the rendered face as the source, the photo under it as the target),
captured on scikit-image's astronaut at 256, 512 and 1024 px and on
matplotlib's grace_hopper sample, for one target (V-A 0.8, 0.5). They need the
ICT model and dlib (vafx[detect]); ``--no-faces`` leaves them out.

OpenCV is given the centre that keeps the source at offset (0, 0), so both
solve the same placement. ``--exact`` adds, for cases up to 512 px, the mean
error of both against the exact sparse solution (scipy spsolve, float64).
Then a batch of 64 images at 256 x 256 with 64 different masks: one vafx call
against 64 OpenCV calls.

Needs opencv-python-headless (`pip install ".[bench]"`). Run:
    python bench/bench_poisson.py [--no-faces] [--exact] [--sizes 256 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
from skimage import data, transform

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_pair  # noqa: E402

import vafx  # noqa: E402

try:
    import cv2
except ImportError:  # pragma: no cover
    sys.exit("bench_poisson needs OpenCV: pip install opencv-python-headless")

SIZES = (64, 128, 256, 512, 1024)
ASPECTS = ((1, 2), (1, 1), (2, 1))
MASKS = ("centre", "off-centre", "border", "holes", "blob")


def photo(img, h, w):
    return (transform.resize(img, (h, w), anti_aliasing=True) * 255).round().astype(np.uint8)


def ellipse(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


def make_mask(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """bool[h, w], one of MASKS; none reaches the right or bottom edge."""
    if kind == "centre":
        return ellipse(h, w, h / 2, w / 2, h / 4, w / 4)
    if kind == "off-centre":
        return ellipse(h, w, 0.3 * h, 0.68 * w, 0.18 * h, 0.2 * w)
    if kind == "border":
        return ellipse(h, w, 0.25 * h, 0.2 * w, 0.4 * h, 0.35 * w)
    if kind == "holes":
        m = ellipse(h, w, h / 2, w / 2, h / 4, w / 4)
        for cy, cx in ((0.45, 0.42), (0.5, 0.6), (0.62, 0.5)):
            m &= ~ellipse(h, w, cy * h, cx * w, 0.04 * h + 1, 0.04 * w + 1)
        return m
    rng = np.random.default_rng(seed)
    noise = scipy.ndimage.gaussian_filter(rng.standard_normal((h, w)), 0.08 * min(h, w))
    noise *= ellipse(h, w, h / 2, w / 2, 0.42 * h, 0.42 * w)
    m = noise > np.quantile(noise, 0.8)
    lab, n = scipy.ndimage.label(m)
    sizes = scipy.ndimage.sum(m, lab, range(1, n + 1))
    return lab == 1 + int(np.argmax(sizes))


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
        rows, cols, b = [], [], np.zeros(len(ys))
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
        rows = np.concatenate(rows + [np.arange(len(ys))])
        cols = np.concatenate(cols + [np.arange(len(ys))])
        vals = np.concatenate([-np.ones(len(rows) - len(ys)), deg])
        a = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(len(ys), len(ys)))
        out[ys, xs, c] = scipy.sparse.linalg.spsolve(a, b)
    return np.clip(np.rint(out), 0, 255)


def synthetic_cases(sizes):
    astro, coffee = data.astronaut(), data.coffee()
    for n in sizes:
        for ah, aw in ASPECTS:
            h, w = (n * ah) // max(ah, aw), (n * aw) // max(ah, aw)
            src, dst = photo(astro, h, w), photo(coffee, h, w)
            for i, kind in enumerate(MASKS):
                yield n, f"{h}x{w} {kind}", src, dst, make_mask(kind, h, w, seed=n + i)


def face_cases():
    """(class, name, source, target, mask) of synthesize's blends on the shipped photos."""
    import imageio.v3 as iio
    from matplotlib import cbook

    from vafx._pipeline import _synthesis

    model = vafx.load_model("ict")
    bins = vafx.default_bin_models(model)
    a = data.astronaut()
    g = np.asarray(iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    photos = {f"astronaut {n}": photo(a, n, n) if n != 512 else a for n in (256, 512, 1024)}
    photos["grace_hopper"] = g
    captured = []
    real = _synthesis.seamless_clone_batch

    def spy(src, dst, masks, **kw):
        captured.append((src.copy(), dst.copy(), masks.copy()))
        return real(src, dst, masks, **kw)

    _synthesis.seamless_clone_batch = spy
    try:
        for name, img in photos.items():
            captured.clear()
            vafx.synthesize(img, (0.8, 0.5), bins, model, name=name)
            src, dst, masks = captured[-1]
            n = max(img.shape[:2])
            yield n, f"face {name} ({src.shape[1]}x{src.shape[2]} crop)", src[0], dst[0], masks[0]
    finally:
        _synthesis.seamless_clone_batch = real


def size_class(n: int) -> int:
    return min(SIZES, key=lambda s: abs(np.log(n / s)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--no-faces", action="store_true")
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--no-batch", action="store_true")
    args = ap.parse_args()
    print(f"OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads; vafx {vafx.__version__}")
    cases = list(synthetic_cases(args.sizes))
    if not args.no_faces:
        cases += list(face_cases())
    ratios: dict[int, list[tuple[float, str]]] = {}
    print(f"{'case':<44s} {'vafx ms':>9s} {'OpenCV ms':>10s} {'ratio':>7s}")
    for n, name, src, dst, mask in cases:
        repeat = 25 if n <= 256 else 11 if n <= 512 else 7
        t_ours, t_cv = median_pair(
            lambda: vafx.seamless_clone(src, dst, mask),
            lambda: opencv_clone(src, dst, mask),
            repeat=repeat,
        )
        r = t_cv / t_ours
        ratios.setdefault(size_class(n), []).append((r, name))
        line = f"{name:<44s} {t_ours * 1e3:9.2f} {t_cv * 1e3:10.2f} {r:6.2f}x"
        if args.exact and n <= 512:
            exact = exact_clone(src, dst, mask)
            ours = vafx.seamless_clone(src, dst, mask)
            cv = opencv_clone(src, dst, mask)
            line += (f"   |error| vafx {np.abs(ours - exact)[mask].mean():.2f}/255, "
                     f"OpenCV {np.abs(cv - exact)[mask].mean():.2f}/255")  # fmt: skip
        print(line, flush=True)
    print("\nper size class (longer side): ratio OpenCV / vafx")
    for n in sorted(ratios):
        rs = ratios[n]
        worst = min(rs)
        print(f"  {n:5d} px  {len(rs):3d} cases  median {statistics.median(r for r, _ in rs):5.2f}x"
              f"  worst {worst[0]:5.2f}x ({worst[1]})")  # fmt: skip
    if args.no_batch:
        return
    n, b = 256, 64
    rng = np.random.default_rng(0)
    src, dst = photo(data.astronaut(), n, n), photo(data.coffee(), n, n)
    masks = np.stack(
        [
            ellipse(n, n, cy, cx, ry, rx)
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
        cv2.setNumThreads(cv_threads)
        t_ours, t_cv = median_pair(
            lambda: vafx.seamless_clone_batch(srcs, dsts, masks),
            lambda: [opencv_clone(src, dst, m) for m in masks],
            repeat=7,
        )
        print(f"batch of {b} at {n} x {n}: vafx {t_ours * 1e3:.1f} ms, OpenCV x{b} "
              f"({cv_threads} thr) {t_cv * 1e3:.1f} ms, ratio {t_cv / t_ours:.2f}x")  # fmt: skip
    cv2.setNumThreads(threads)


if __name__ == "__main__":
    main()
