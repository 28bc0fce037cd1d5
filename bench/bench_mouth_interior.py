"""The rendered mouth interior against a photo's real one (issue 37).

On photos that show their teeth, the photo's mouth interior (inside its
detected inner-lip landmarks, iBUG 60-67, eroded by one pixel) is masked: its
pixels are painted over with the skin's mean colour, and the renderer is told
to use nothing of the photo's interior (``reuse_teeth=False``: neither its
pixels nor its tooth colour). vafx then renders the face at the photo's own
fitted expression, so that the interior it synthesizes stands where the real
one stood, and the two are compared over the masked pixels that the rendering
fills with interior: mean absolute error (grey levels, all channels), SSIM
(scikit-image, over the mask), and colour statistics (the mean colour's
difference and the ratio of luma spread). Two renderers in one process on the
same input: ``interior="shaded"`` (the current renderer) and ``interior="flat"``
(the base colours of the renderer before issue 37, the baseline).

Photos: scikit-image's astronaut (an open smile), its mirror image, and both
as greyscale. matplotlib's grace_hopper shows no teeth and is not used.

    python bench/bench_mouth_interior.py [--out DIR]   # DIR: side-by-side crops
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion
from skimage import data
from skimage.draw import polygon
from skimage.metrics import structural_similarity

import vafx
from vafx._render._face import MOUTH, render_faces


def photos() -> dict[str, np.ndarray]:
    a = data.astronaut()
    grey = np.rint(a @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    g = np.repeat(grey[..., None], 3, -1)
    return {
        "astronaut": a,
        "astronaut_mirror": np.ascontiguousarray(a[:, ::-1]),
        "astronaut_grey": g,
        "astronaut_grey_mirror": np.ascontiguousarray(g[:, ::-1]),
    }


def interior_mask(shape, landmarks) -> np.ndarray:
    """bool[H, W]: inside the inner lips (iBUG 60-67), eroded by one pixel."""
    lips = np.asarray(landmarks)[60:68]
    rr, cc = polygon(lips[:, 1], lips[:, 0], shape[:2])
    m = np.zeros(shape[:2], bool)
    m[rr, cc] = True
    return binary_erosion(m)


def compare(real: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> dict:
    """Error of ``rendered`` against ``real`` (uint8[H, W, 3]) over ``mask``."""
    a, b = real.astype(np.float64), rendered.astype(np.float64)
    _, ssim = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
    luma = np.array([0.299, 0.587, 0.114])
    la, lb = (a @ luma)[mask], (b @ luma)[mask]
    return dict(
        mae=float(np.abs(a - b)[mask].mean()),
        ssim=float(ssim.mean(-1)[mask].mean()),
        mean_diff=float(np.linalg.norm(a[mask].mean(0) - b[mask].mean(0))),
        spread_ratio=float(lb.std() / max(la.std(), 1e-9)),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ict")
    ap.add_argument("--out", type=Path, help="write side-by-side mouth crops here")
    args = ap.parse_args(argv)
    model = vafx.load_model(args.model)
    worst = 0.0
    print(f"{'photo':24s} {'px':>5s} {'renderer':8s} {'MAE':>6s} {'SSIM':>6s} "
          f"{'mean dC':>8s} {'spread':>7s}")  # fmt: skip
    for name, img in photos().items():
        lm = vafx.detect_landmarks(img, name=name)
        mask = interior_mask(img.shape, lm)
        fit = vafx.fit_landmarks(model, lm[None], img.shape[:2])
        masked = img.copy()
        ring = (
            binary_erosion(~mask, np.ones((9, 9), bool), border_value=1) ^ ~mask
        )  # a band just outside it
        masked[mask] = np.rint(img[ring].mean(0)).astype(np.uint8)
        results, crops = {}, []
        for interior in ("flat", "shaded"):
            r = render_faces(masked[None], model, fit, interior=interior, reuse_teeth=False)
            out = np.clip(np.rint(r.image[0, 0] * 255), 0, 255).astype(np.uint8)
            judged = mask & (r.source[0, 0] == MOUTH)
            results[interior] = (compare(img, out, judged), int(judged.sum()))
            crops.append(out)
        for interior, (m, n) in results.items():
            print(f"{name:24s} {n:5d} {interior:8s} {m['mae']:6.2f} {m['ssim']:6.3f} "
                  f"{m['mean_diff']:8.2f} {m['spread_ratio']:7.2f}")  # fmt: skip
        ratio = results["shaded"][0]["mae"] / results["flat"][0]["mae"]
        worst = max(worst, ratio)
        print(f"{name:24s} error ratio shaded / flat {ratio:.2f} "
              f"(of the mask's {int(mask.sum())} px, {results['shaded'][1]} rendered as interior)")  # fmt: skip
        if args.out:
            import imageio.v3 as iio

            args.out.mkdir(parents=True, exist_ok=True)
            ys, xs = np.nonzero(mask)
            box = (slice(ys.min() - 12, ys.max() + 13), slice(xs.min() - 16, xs.max() + 17))
            row = np.concatenate([img[box], crops[0][box], crops[1][box]], 1)
            iio.imwrite(args.out / f"{name}.png", np.repeat(np.repeat(row, 4, 0), 4, 1))
    print(f"worst error ratio shaded / flat: {worst:.2f} (goal: at most 0.5)")
    return 0 if worst <= 0.5 else 1


if __name__ == "__main__":
    if "JAX_PLATFORMS" not in os.environ:
        os.environ["JAX_PLATFORMS"] = "cpu"
    sys.exit(main())
