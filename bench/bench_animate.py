"""A 4-second clip at 25 fps on the astronaut: vafx.animate against one synthesize per frame.

The path runs straight from V-A (-0.6, -0.3) to (0.7, 0.5) in 4 s: 101 frames
at 512 x 512, the default bin models, the astronaut's shipped landmarks, one
fit. vafx renders the frames in batches of 25 per compiled call; the anchor
calls ``vafx.synthesize`` (the same fit, continuous control) once per frame.
Both run in this process after a warm-up (compilation excluded); medians of 3.
Also printed: the clip's smoothness figures (``vafx.smoothness``).

Run: python bench/bench_animate.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from importlib import resources

sys.path.insert(0, os.path.dirname(__file__))
from _timing import data_dir  # noqa: E402

os.environ.setdefault("VAFX_DATA", data_dir())


def main() -> None:
    from skimage import data

    import vafx

    model = vafx.load_model("ict")
    bins = vafx.default_bin_models(model)
    img = data.astronaut()
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = vafx.read_pts(p)
    fit = vafx.fit_landmarks(model, pts, img.shape[:2])
    path = vafx.linear_path((-0.6, -0.3), (0.7, 0.5), 4.0)
    cfg = vafx.SynthesisConfig(continuous=True)

    def ours():
        return vafx.animate(img, path, bins, model, fps=25, fit=fit)

    clip = ours()  # warm-up: compiles

    def anchor():
        return [vafx.synthesize(img, v, bins, model, fit=fit, config=cfg).image for v in clip.va]

    anchor()
    times = {"vafx": [], "anchor": []}
    for _ in range(3):
        for name, fn in (("vafx", ours), ("anchor", anchor)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    a, b = statistics.median(times["vafx"]), statistics.median(times["anchor"])
    print(f"4 s clip, 25 fps ({len(clip.frames)} frames, 512 x 512)")
    print(f"vafx.animate {a:6.2f} s   one synthesize per frame {b:6.2f} s   ratio {b / a:5.2f}x")
    sm = vafx.smoothness(clip)
    print("smoothness: " + ", ".join(f"{k} {v:.3f}" for k, v in sm.items()))


if __name__ == "__main__":
    main()
