"""Time to the first image in a fresh process, and `import vafx`, with cold and warm caches.

Each figure is a fresh Python process (subprocess), timed from its start to its
exit, on scikit-image's astronaut (512 x 512) with its shipped landmarks:

- `import vafx` (median of 5);
- `vafx synthesize astro.png --valence 0.7 --arousal 0.4 -o out.png` with the
  default bin models already built and an empty compilation cache (cold), then
  with the cache that run left (warm, median of 3);
- the same from Python: `fit_landmarks` + `synthesize` in a fresh process (warm);
- the split of a warm first image into its parts, measured inside one process.

The default bin models are built first (into the same temporary VAFX_CACHE) and
that build is timed too (the README's "first use" figure). There is no anchor:
this is vafx against itself, cold against warm.

Run: python bench/bench_first_image.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _timing import data_dir as shared_data_dir  # noqa: E402
from _timing import run_seconds  # noqa: E402

PY_FIRST = """
import time; t0 = time.perf_counter()
import vafx; t1 = time.perf_counter()
m = vafx.load_model("ict"); t2 = time.perf_counter()
b = vafx.default_bin_models(m); t3 = time.perf_counter()
img = vafx.read_photo("astro.png"); pts = vafx.read_pts("astro.pts")
fit = vafx.fit_landmarks(m, pts, img.shape[:2]); fit.scale.block_until_ready(); t4 = time.perf_counter()
r = vafx.synthesize(img, (0.7, 0.4), b, m, fit=fit); t5 = time.perf_counter()
print(f"import {t1 - t0:.2f} s, model {t2 - t1:.2f} s, bin models {t3 - t2:.2f} s, "
      f"fit {t4 - t3:.2f} s, synthesize {t5 - t4:.2f} s")
"""


def main():
    import imageio.v3 as iio
    from skimage import data

    import vafx

    data_dir = shared_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        iio.imwrite(tmp / "astro.png", data.astronaut())
        with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
            vafx.write_pts(tmp / "astro.pts", vafx.read_pts(p))
        env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION")}
        env.update(VAFX_DATA=data_dir, VAFX_CACHE=str(tmp / "cache"))
        py = [sys.executable, "-c"]
        imp = [run_seconds(py + ["import vafx"], tmp, env) for _ in range(5)]
        print(f"import vafx: median {statistics.median(imp):.2f} s (min {min(imp):.2f})")
        build = run_seconds([sys.executable, "-m", "vafx", "bins", "default"], tmp, env)
        print(f"default bin models, first use (build, empty caches): {build:.1f} s")
        cmd = [sys.executable, "-m", "vafx", "synthesize", "astro.png", "--valence", "0.7",
               "--arousal", "0.4", "--landmarks", "astro.pts", "-o", "out.png"]  # fmt: skip
        for d in ("jax",):
            import shutil

            shutil.rmtree(tmp / "cache" / d, ignore_errors=True)
        cold = run_seconds(cmd, tmp, env)
        warm = [run_seconds(cmd, tmp, env) for _ in range(3)]
        print(f"vafx synthesize, first image, empty compilation cache: {cold:.1f} s")
        print(f"vafx synthesize, first image, warm cache: median {statistics.median(warm):.1f} s "
              f"(runs {', '.join(f'{w:.1f}' for w in warm)})")  # fmt: skip
        lib = [run_seconds(py + [PY_FIRST], tmp, env) for _ in range(3)]
        print(f"library, fit_landmarks + synthesize in a fresh process, warm: median "
              f"{statistics.median(lib):.1f} s")  # fmt: skip
        p = subprocess.run(py + [PY_FIRST], cwd=tmp, env=env, capture_output=True, text=True)
        print(f"  its parts: {p.stdout.strip()}")
        off = dict(env, VAFX_JAX_CACHE="0")
        print(
            f"vafx synthesize with VAFX_JAX_CACHE=0 (no persistent cache): {run_seconds(cmd, tmp, off):.1f} s"
        )


if __name__ == "__main__":
    main()
