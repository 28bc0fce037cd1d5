"""Synthesis judged on the photos the dependencies ship (issue 17's acceptance).

Photos: scikit-image's astronaut (smiling), matplotlib's grace_hopper (not
smiling), grace_hopper in greyscale, and the mirror image of each. Targets: a 3 x 3 grid of V-A (-0.6, 0,
0.6 on each axis) plus (-0.6, -0.3), (0.7, 0.3) and (0.4, 0.7). Every output
is written with its sidecar under OUT, then ``vafx evaluate synthesis`` judges
the folder (identity by dlib, re-detected landmark cues, blend correction).
Printed: per photo and target the identity distance, the change of the mouth
corners, of the mouth opening and of the brows (inter-ocular distances), the
blend's mean correction and largest halo blob, and the skin's brightness change
and detail ratio (issue 37); then the acceptance checks. With ``--crops``, one
PNG per photo: the input's face and the open-mouth targets' faces side by side
at 2x (to look at).

    python bench/judge_photos.py -o judged/                        # the default bin models
    python bench/judge_photos.py --gallery GALLERY -o judged/      # bin means from a gallery
    python bench/judge_photos.py --bins bins.npz -o judged/

Needs vafx[detect] and matplotlib (for grace_hopper).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np

import vafx
from vafx._evaluate._judges import (
    BRIGHTNESS_LIMIT,
    DETAIL_LIMIT,
    HALO_BLOB_LIMIT,
    HALO_MEAN_LIMIT,
    IDENTITY_LIMIT,
    evaluate_synthesis,
)
from vafx._pipeline._synthesis import SynthesisConfig, synthesize_batch

GRID = [(v, a) for a in (0.6, 0.0, -0.6) for v in (-0.6, 0.0, 0.6)]
CHECKS = [(-0.6, -0.3), (0.7, 0.3), (0.4, 0.7)]


def photos() -> dict[str, tuple[np.ndarray, bool]]:
    """name -> (uint8 photo, smiling)."""
    import matplotlib.cbook as cbook
    from skimage import data

    a = data.astronaut()
    g = iio.imread(cbook.get_sample_data("grace_hopper.jpg"))[..., :3]
    grey = np.repeat(np.rint(g @ np.array([0.299, 0.587, 0.114]))[..., None], 3, -1)
    grey = grey.astype(np.uint8)
    return {
        "astronaut": (a, True),
        "astronaut_mirror": (np.ascontiguousarray(a[:, ::-1]), True),
        "grace_hopper": (g, False),
        "grace_hopper_mirror": (np.ascontiguousarray(g[:, ::-1]), False),
        "grace_grey": (grey, False),
        "grace_grey_mirror": (np.ascontiguousarray(grey[:, ::-1]), False),
    }


def face_crops(img, outs, pts, scale=2):
    """The face of the input and of each output side by side, enlarged (nearest) ``scale`` times."""
    lo = np.floor(pts.min(0)).astype(int) - 12
    hi = np.ceil(pts.max(0)).astype(int) + 12
    lo = np.maximum(lo, 0)
    crops = [x[lo[1] : hi[1], lo[0] : hi[0]] for x in (img, *outs)]
    row = np.concatenate(crops, axis=1)
    return np.repeat(np.repeat(row, scale, 0), scale, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--bins", type=Path, help="bin models (.npz)")
    src.add_argument("--gallery", type=Path, help="a gallery: use its bin means")
    ap.add_argument("--model", default="ict")
    ap.add_argument("--expression", default="replace", choices=["replace", "add"])
    ap.add_argument("--no-shade", action="store_true")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--crops", action="store_true", help="write face crops at 2x per photo")
    args = ap.parse_args(argv)

    model = vafx.load_model(args.model)
    if args.bins:
        models = vafx.load_bin_models(args.bins)
    elif args.gallery:
        models = vafx.fit_bins(vafx.open_gallery(args.gallery), splocs=False)
    else:
        models = vafx.default_bin_models(model)
    cfg = SynthesisConfig(expression=args.expression, shade=not args.no_shade)
    out = args.output
    (out / "photos").mkdir(parents=True, exist_ok=True)
    targets = GRID + CHECKS
    t0 = time.perf_counter()
    for name, (img, _) in photos().items():
        src_path = out / "photos" / f"{name}.png"
        iio.imwrite(src_path, img)
        pts = vafx.detect_landmarks(img, name=name)
        res = synthesize_batch(img[None], targets, models, model, landmarks=pts[None],
                               config=cfg, names=[str(src_path)])  # fmt: skip
        for j, (v, a) in enumerate(targets):
            stem = f"{name}__v{v:+.1f}_a{a:+.1f}"
            iio.imwrite(out / f"{stem}.png", res.images[0, j])
            (out / f"{stem}.json").write_text(json.dumps(res.sidecars[0][j]))
        if args.crops:  # the open-mouth targets: the top row of the grid and (0.4, 0.7)
            picks = [j for j, (v, a) in enumerate(targets) if a >= 0.6]
            iio.imwrite(out / f"crops_{name}.png", face_crops(img, res.images[0, picks], pts))
    print(f"synthesized {len(targets) * 4} images in {time.perf_counter() - t0:.1f} s")
    summary = evaluate_synthesis(out, out=out)
    rows = list(csv.DictReader(open(out / "judges.csv")))
    print(f"{'image':44s} {'ident':>6s} {'corner':>7s} {'open':>7s} {'brows':>7s} "
          f"{'halo':>6s} {'blob':>7s} {'bright':>7s} {'detail':>6s}")  # fmt: skip
    for r in rows:
        print(f"{Path(r['image']).name:44s} {float(r['identity']):6.3f} "
              f"{float(r['d_corner_lift']):+7.3f} {float(r['d_mouth_open']):+7.3f} "
              f"{float(r['d_brow_height']):+7.3f} {float(r['halo_mean']):6.2f} "
              f"{float(r['halo_blob']):7.4f} {float(r['skin_brightness']):+7.2f} "
              f"{float(r['skin_detail']):6.3f}")  # fmt: skip
    ok = True

    def check(what, good):
        nonlocal ok
        ok &= bool(good)
        print(f"[{'ok' if good else 'FAIL'}] {what}")

    smiling = {n: s for n, (_, s) in photos().items()}
    ident = np.array([float(r["identity"]) for r in rows])
    check(f"identity within {IDENTITY_LIMIT}: max {np.nanmax(ident):.3f}, mean {np.nanmean(ident):.3f}",
          np.all(ident <= IDENTITY_LIMIT))  # fmt: skip

    def rows_at(v, a, smile):
        tag = f"__v{v:+.1f}_a{a:+.1f}"
        return [r for r in rows
                if tag in r["image"] and smiling[Path(r["image"]).name.split("__")[0]] == smile]  # fmt: skip

    drops = [float(r["d_corner_lift"]) for r in rows_at(-0.6, -0.3, True)]
    check(f"smiling photo at (-0.6, -0.3): corners drop >= 0.03 IOD: {np.round(drops, 3)}",
          all(d <= -0.03 for d in drops))  # fmt: skip
    rises = [float(r["d_corner_lift"]) for r in rows_at(0.7, 0.3, False)]
    check(f"non-smiling photo at (0.7, 0.3): corners rise >= 0.03 IOD: {np.round(rises, 3)}",
          all(d >= 0.03 for d in rises))  # fmt: skip
    opens = [(float(r["d_mouth_open"]), float(r["d_brow_height"]))
             for smile in (True, False) for r in rows_at(0.4, 0.7, smile)]  # fmt: skip
    check(f"(0.4, 0.7): mouth opens >= 0.05 IOD and brows rise: {np.round(opens, 3).tolist()}",
          all(o >= 0.05 and b > 0 for o, b in opens))  # fmt: skip
    grid = [r for r in rows if any(f"__v{v:+.1f}_a{a:+.1f}" in r["image"] for v, a in GRID)]
    hm = np.array([float(r["halo_mean"]) for r in grid])
    hb = np.array([float(r["halo_blob"]) for r in grid])
    check(f"no halo on the 3 x 3 grid: mean correction max {hm.max():.3f} (< {HALO_MEAN_LIMIT}), "
          f"largest blob {hb.max():.4f} of the face (< {HALO_BLOB_LIMIT})",
          hm.max() < HALO_MEAN_LIMIT and hb.max() < HALO_BLOB_LIMIT)  # fmt: skip
    bright = np.array([float(r["skin_brightness"]) for r in grid])
    detail = np.array([float(r["skin_detail"]) for r in grid])
    check(f"skin on the 3 x 3 grid: brightness change {bright.min():+.2f}..{bright.max():+.2f} "
          f"(within {BRIGHTNESS_LIMIT}), detail ratio min {detail.min():.3f} (>= {DETAIL_LIMIT})",
          np.abs(bright).max() <= BRIGHTNESS_LIMIT and detail.min() >= DETAIL_LIMIT)  # fmt: skip
    print(f"judges flagged {len(summary['failed'])} image(s); figure {out / 'judges.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    sys.exit(main())
