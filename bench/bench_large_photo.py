"""A 6000 x 4000 photo with a 1,500-px face: time and peak memory of one synthesis.

The photo is scikit-image's astronaut, its face's neighbourhood (the top-left
250 x 375 pixels) upscaled 16x (bilinear) into a 6000 x 4000 grey canvas, so
that the face (jaw landmarks 0-16) is 1,488 px wide; its landmarks are the
astronaut's shipped ones, scaled. Each figure is a fresh process:
``vafx.synthesize`` at (0.7, 0.4) on the large photo, against the same
synthesis on the 512 x 512 astronaut itself (the anchor: what a face costs
when the photo is small). Peak memory is the process's own high-water mark
(``VmHWM``; ``ru_maxrss`` would include the parent's, which made the photo,
over the fork). Inside each process the synthesis runs three times; the first (compilation
included) and the median of the other two are printed.

Before the work followed the face (crop, then a working resolution of at most
1024 px), this photo had produced nothing after 10 minutes and 8 GB.

Run: python bench/bench_large_photo.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _timing import data_dir  # noqa: E402

CHILD = """
import json, resource, statistics, sys, time
import numpy as np
import vafx

def peak_mb():
    # VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's over fork)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

model = vafx.load_model("ict")
bins = vafx.default_bin_models(model)
img = vafx.read_photo(sys.argv[1]); pts = vafx.read_pts(sys.argv[2])
base = peak_mb()
times = []
for _ in range(3):
    t = time.perf_counter()
    r = vafx.synthesize(img, (0.7, 0.4), bins, model, landmarks=pts)
    times.append(time.perf_counter() - t)
changed = float((r.image != img).any(-1).mean())
print(json.dumps(dict(first=times[0], warm=statistics.median(times[1:]), peak_mb=peak_mb(),
                      before_mb=base, changed=changed, shape=list(img.shape))))
"""


def make_photos(folder: Path) -> dict:
    import numpy as np
    from skimage import data
    from skimage.transform import rescale

    import vafx

    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = vafx.read_pts(p)
    src = data.astronaut()
    s = 16.0
    big = (rescale(src[:250, :375], s, order=1, channel_axis=2) * 255).astype(np.uint8)
    canvas = np.full((4000, 6000, 3), 128, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big[:4000, :6000]
    import imageio.v3 as iio

    iio.imwrite(folder / "large.png", canvas)
    vafx.write_pts(folder / "large.pts", pts * s + (s - 1) / 2)
    iio.imwrite(folder / "small.png", src)
    vafx.write_pts(folder / "small.pts", pts)
    return dict(face_px=float(np.ptp(pts[:17, 0]) * s))


def run(folder: Path, name: str) -> dict:
    env = {**os.environ, "VAFX_DATA": os.environ.get("VAFX_DATA") or data_dir()}
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder / f"{name}.png"), str(folder / f"{name}.pts")],
        cwd=folder, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        info = make_photos(folder)
        small = run(folder, "small")
        large = run(folder, "large")
    print(f"face {info['face_px']:.0f} px wide in a 6000 x 4000 photo")
    for name, r in (("512 x 512 astronaut (anchor)", small), ("6000 x 4000, 1,500-px face", large)):
        print(
            f"{name:<30s} first {r['first']:6.1f} s   warm {r['warm']:6.2f} s   "
            f"peak {r['peak_mb']:6.0f} MB (after loading {r['before_mb']:5.0f} MB)"
        )
    print(f"ratio (large / small), warm: {large['warm'] / small['warm']:.2f}x")


if __name__ == "__main__":
    main()
