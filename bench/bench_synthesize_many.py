"""Four photos x a 3 x 3 V-A grid: one `vafx synthesize` command against 36 separate commands.

The photos: scikit-image's astronaut, its mirror image, matplotlib's
grace_hopper sample and a crop of it (three sizes, so three compiled sizes).
Landmarks are detected with dlib (vafx[detect]) once beforehand and passed to
every command as a folder of .pts files, so both sides do the same work. Both
sides share a warm compilation cache and the default bin models (built and
the cache warmed by a first, untimed run of the one command). Prints both
times, their ratio, and how far the 36 images of the two ways differ (a batch equals single calls
up to rounding).

Run: python bench/bench_synthesize_many.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
from _timing import data_dir as shared_data_dir  # noqa: E402
from _timing import run_seconds  # noqa: E402


def main():
    import imageio.v3 as iio
    from matplotlib import cbook
    from skimage import data

    import vafx

    data_dir = shared_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = data.astronaut()
        g = np.asarray(iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
        photos = {"astronaut": a, "astronaut_mirror": a[:, ::-1].copy(), "grace_hopper": g,
                  "grace_crop": g[40:480, 30:400].copy()}  # fmt: skip
        (tmp / "lm").mkdir()
        for name, img in photos.items():
            iio.imwrite(tmp / f"{name}.png", img)
            vafx.write_pts(tmp / "lm" / f"{name}.pts", vafx.detect_landmarks(img, name=name))
        env = dict(os.environ, VAFX_DATA=data_dir, VAFX_CACHE=str(tmp / "cache"))
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        base = [sys.executable, "-m", "vafx", "synthesize"]
        one = base + [f"{n}.png" for n in photos] + ["--grid", "3", "--landmarks", "lm",
                                                      "--sheet", "-o", "one"]  # fmt: skip
        print(
            f"first run (builds the default models, fills the caches): {run_seconds(one, tmp, env):.1f} s"
        )
        levels = (-0.8, 0.0, 0.8)

        def separate(n, v, ar):
            out = f"sep/{n}__v{v:+.2f}_a{ar:+.2f}.png"
            return run_seconds(base + [f"{n}.png", "--valence", str(v), "--arousal", str(ar),
                                "--landmarks", f"lm/{n}.pts", "-o", out], tmp, env)  # fmt: skip

        # warm the cache for one target per call too (another shape), untimed
        for n in photos:
            separate(n, 0.0, 0.0)
        t_one = run_seconds(one, tmp, env)
        t_sep = sum(separate(n, v, ar) for n in photos for ar in reversed(levels) for v in levels)
        # a batch equals single calls up to rounding (docs/synthesis.md): the share of
        # pixels more than one grey level apart, worst image
        worst = max(
            (np.abs(iio.imread(tmp / "one" / p.name).astype(int) - iio.imread(p)) > 1).mean()
            for p in sorted((tmp / "sep").glob("*.png"))
        )
        n_one = len(list((tmp / "one").glob("*__v*.png")))
        print(f"one command, 4 photos x 9 targets: {t_one:.1f} s for {n_one} images and sidecars "
              f"+ {len(list((tmp / 'one').glob('*__sheet.png')))} contact sheets")  # fmt: skip
        print(f"36 separate commands: {t_sep:.1f} s ({t_sep / 36:.1f} s each)")
        print(f"ratio (separate / one): {t_sep / t_one:.1f}x; pixels > 1 level apart between "
              f"the two, worst image: {worst:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
