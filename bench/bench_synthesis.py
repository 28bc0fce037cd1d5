"""End-to-end synthesis speed: one photo and one target V-A per call (landmarks given).

Uses the demo's bin models (run `vafx demo -o demo_out` first, or pass --bins) and
scikit-image's astronaut at 256 x 256 and 512 x 512 with its shipped landmarks scaled.
Reports the first call in a fresh process (compilation included; the persistent cache
of the CLI is not used here) and the warm median, per size. No anchor exists for the
whole pipeline; the per-stage anchors are in the other bench scripts.

Run: python bench/bench_synthesis.py [--bins demo_out/bins.npz]
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
    ap.add_argument("--bins", type=Path, default=Path("demo_out/bins.npz"))
    args = ap.parse_args()
    data_dir = Path(
        os.environ.get("VAFX_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    model = vafx.load_model(str(data_dir / "ict"))
    models = vafx.load_bin_models(args.bins)
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts512 = vafx.read_pts(p)
    for size in (512, 256):
        img = (transform.resize(data.astronaut(), (size, size)) * 255).round().astype(np.uint8)
        pts = pts512 * size / 512
        t0 = time.perf_counter()
        vafx.synthesize(img, (0.7, 0.4), models, model, landmarks=pts)
        first = time.perf_counter() - t0
        warm = median_seconds(
            lambda: vafx.synthesize(img, (0.7, 0.4), models, model, landmarks=pts), repeat=5
        )
        fit = vafx.fit_landmarks(model, pts, img.shape[:2])
        reuse = median_seconds(
            lambda: vafx.synthesize(img, (-0.5, 0.5), models, model, fit=fit), repeat=5
        )
        print(
            f"{size} x {size}: first call {first:.2f} s; warm {warm * 1e3:.0f} ms per image "
            f"({1 / warm:.1f} images/s); another bin for an already fitted photo {reuse * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
