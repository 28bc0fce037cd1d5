"""Virtual CPU devices: bins and a batch of photos on 1 against 4 devices of one 2-core CPU.

Runs itself in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
(4 virtual devices sharing the machine's cores), so it measures the overhead of
the sharding machinery, not a speed-up: the cores are the same. Per figure: the
median of 3 after a warm-up (compilation excluded).

- ``fit_bins`` on a small synthetic gallery (2 subjects, SPLOCS K = 8, 4
  iterations), chunks of bins split over the devices (``NamedSharding``);
- ``synthesize_batch`` of 4 astronaut photos x 4 targets, photos split over the
  devices (a thread per device).

Run: python bench/bench_devices.py
"""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _timing import data_dir  # noqa: E402

CHILD = """
import statistics, sys, tempfile, time
from importlib import resources
import jax, numpy as np, vafx
from skimage import data
from vafx.kernels.splocs import SplocsParams

def median(fn, n=3):
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)

model = vafx.load_model("ict")
devs = jax.devices()
with tempfile.TemporaryDirectory() as tmp:
    g = vafx.synthesize_gallery(tmp + "/g", model, vafx.SynthConfig(subjects=2, frames=8))
    p = SplocsParams(num_components=8, num_iters=4)
    one = median(lambda: vafx.fit_bins(g, p, min_frames=5, devices=devs[:1]))
    four = median(lambda: vafx.fit_bins(g, p, min_frames=5, devices=devs))
    print(f"fit_bins            1 device {one:7.2f} s   {len(devs)} devices {four:7.2f} s   "
          f"ratio (1 / {len(devs)}) {one / four:5.2f}x")
    bins = vafx.fit_bins(g, min_frames=3, splocs=False)
img = data.astronaut()
with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as f:
    pts = vafx.read_pts(f)
photos = np.stack([img] * 4)
lms = np.stack([pts + k for k in range(4)])
targets = [(0.7, 0.4), (-0.5, 0.3), (0.2, -0.6), (-0.7, -0.4)]
run = lambda d: vafx.synthesize_batch(photos, targets, bins, model, landmarks=lms, devices=d)
one = median(lambda: run(devs[:1]))
four = median(lambda: run(devs))
print(f"synthesize_batch    1 device {one:7.2f} s   {len(devs)} devices {four:7.2f} s   "
      f"ratio (1 / {len(devs)}) {one / four:5.2f}x")
"""


def main() -> None:
    env = {**os.environ, "VAFX_DATA": os.environ.get("VAFX_DATA") or data_dir(),
           "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}  # fmt: skip
    print(f"{os.cpu_count()} CPU cores shared by 4 virtual devices")
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True)


if __name__ == "__main__":
    main()
