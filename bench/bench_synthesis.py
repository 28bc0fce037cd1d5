"""End-to-end synthesis speed (landmarks given): single calls, batches, and the CLI's start-up.

Uses the demo's bin models (run `vafx demo -o demo_out` first, or pass --bins) and
scikit-image's astronaut at 256 x 256 and 512 x 512 with its shipped landmarks scaled.
Per size: the first call in this process (compilation included), the warm median of
`vafx.synthesize` (one photo, one target), and `vafx.synthesize_batch` for B photos x T
targets (fitting, rendering and blending included). Then the time to the first image
of the command `vafx synthesize` in a fresh process, with an empty and with a warm
compilation cache. No anchor exists for the whole pipeline; the per-stage anchors are
in the other bench scripts.

Run: python bench/bench_synthesis.py [--bins demo_out/bins.npz]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
from skimage import data, transform

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_seconds  # noqa: E402

import vafx  # noqa: E402


def _cli_first_image(bins: Path, data_dir: Path) -> None:
    import imageio.v3 as iio

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        iio.imwrite(tmp / "astro.png", data.astronaut())
        with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
            vafx.write_pts(tmp / "astro.pts", vafx.read_pts(p))
        env = {**os.environ, "VAFX_DATA": str(data_dir), "VAFX_CACHE": str(tmp / "cache")}
        cmd = [sys.executable, "-m", "vafx", "synthesize", "astro.png", "--valence", "0.7",
               "--arousal", "0.4", "--bins", str(bins.resolve()), "--landmarks", "astro.pts",
               "-o", "out.png"]  # fmt: skip
        for label in ("empty compilation cache", "warm compilation cache"):
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=tmp, env=env, check=True, capture_output=True)
            print(f"vafx synthesize (512 x 512), {label}: {time.perf_counter() - t0:.1f} s")


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
    _cli_first_image(args.bins, data_dir)


if __name__ == "__main__":
    main()
