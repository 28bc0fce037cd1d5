"""End-to-end synthesis speed (landmarks given): single calls, batches, and the CLI's start-up.

Uses the default bin models (built on first use; or pass --bins) and
scikit-image's astronaut at 256 x 256 and 512 x 512 with its shipped landmarks scaled.
Per size: the first call in this process (compilation included), the warm median of
`vafx.synthesize` (one photo, one target), and `vafx.synthesize_batch` for B photos x T
targets (fitting, rendering and blending included). The time to the first image in a
fresh process is bench/bench_first_image.py's. No anchor exists for the whole pipeline; the per-stage anchors are
in the other bench scripts.

Run: python bench/bench_synthesis.py [--bins bins.npz]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
from skimage import data, transform

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_seconds  # noqa: E402

import vafx  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bins", type=Path, help="bin models (default: the default bin models)")
    args = ap.parse_args()
    data_dir = Path(
        os.environ.get("VAFX_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    model = vafx.load_model(str(data_dir / "ict"))
    models = vafx.load_bin_models(args.bins) if args.bins else vafx.default_bin_models(model)
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts512 = vafx.read_pts(p)
    targets = models.labels[np.nonzero(models.status != 2)[0][::4][:8]]  # bins with data
    for size in (256, 512):
        img = (transform.resize(data.astronaut(), (size, size)) * 255).round().astype(np.uint8)
        pts = pts512 * size / 512
        t0 = time.perf_counter()
        vafx.synthesize(img, (0.7, 0.4), models, model, landmarks=pts)
        first = time.perf_counter() - t0
        warm = median_seconds(
            lambda: vafx.synthesize(img, (0.7, 0.4), models, model, landmarks=pts), repeat=5
        )
        print(
            f"{size} x {size}: first call {first:.2f} s; warm single {warm * 1e3:.0f} ms "
            f"({1 / warm:.1f} images/s)"
        )
        for b, t in ((8, 1), (1, 8), (8, 8)):
            photos = np.stack([img] * b)
            lms = np.stack([pts] * b)
            sec = median_seconds(
                lambda: vafx.synthesize_batch(photos, targets[:t], models, model, landmarks=lms),
                repeat=3,
            )
            print(
                f"{size} x {size}: batch of {b} photos x {t} targets: {sec * 1e3:.0f} ms "
                f"({b * t / sec:.1f} images/s)"
            )


if __name__ == "__main__":
    main()
