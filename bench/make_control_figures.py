"""The figures of docs/controls.md: categories both ways, an AU sweep, frames of a clip.

Writes docs/figures/controls_categories_bins.png, controls_categories_prototype.png,
controls_aus.png and controls_clip.png from scikit-image's astronaut and
matplotlib's grace_hopper with the default bin models.

Run: python bench/make_control_figures.py
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import data_dir  # noqa: E402

os.environ.setdefault("VAFX_DATA", data_dir())
OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"


def main() -> None:
    import matplotlib.cbook as cb
    from skimage import data

    import vafx
    from vafx._pipeline._figures import face_box, table_sheet_figure
    from vafx._pipeline._synthesize_files import _header

    OUT.mkdir(parents=True, exist_ok=True)
    model = vafx.load_model("ict")
    bins = vafx.default_bin_models(model)
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        astro_pts = vafx.read_pts(p)
    grace = vafx.read_photo(cb.get_sample_data("grace_hopper.jpg", asfileobj=False))
    photos = [("astronaut", data.astronaut(), astro_pts),
              ("grace_hopper", grace, vafx.detect_landmarks(grace))]  # fmt: skip
    basic = [e.name for e in vafx.emotions()[:7]]

    def sheet(targets, path, names=None):
        rows, crops, labels = [], [], []
        for name, img, pts in photos:
            res = vafx.synthesize_batch(img[None], targets, bins, model, landmarks=pts[None])
            box = face_box(np.asarray(res.fits.landmarks)[0], img.shape[:2])
            crops.append(img[box])
            rows.append([res.images[0, j][box] for j in range(len(targets))])
            labels.append(name)
        table_sheet_figure(crops, rows, np.zeros((len(targets), 2)), path, names=labels,
                           headers=names or [_header(t.checked()) for t in targets])  # fmt: skip
        print(path)

    sheet([vafx.Target(emotion=e) for e in basic], OUT / "controls_categories_bins.png")
    sheet([vafx.Target(emotion=e, via="prototype") for e in basic],
          OUT / "controls_categories_prototype.png", names=basic)  # fmt: skip
    aus = [
        ["12=0"],
        ["12=0.5"],
        ["12=1"],
        ["12R=1"],
        ["12L=1"],
        ["26=1"],
        ["1=1", "2=1"],
        ["4=1", "7=1"],
    ]
    sheet([vafx.Target(aus=a) for a in aus], OUT / "controls_aus.png")

    name, img, pts = photos[0]
    clip = vafx.animate(img, vafx.linear_path((-0.6, -0.3), (0.7, 0.5), 4.0), bins, model,
                        fps=25, landmarks=pts)  # fmt: skip
    box = face_box(np.asarray(clip.fit.landmarks), img.shape[:2])
    pick = list(range(0, len(clip.frames), 20))
    table_sheet_figure(
        [img[box]], [[clip.frames[k][box] for k in pick]], clip.va[pick], OUT / "controls_clip.png",
        names=[name], headers=[f"t {clip.times[k]:.1f} s\nV {clip.va[k][0]:+.2f} A {clip.va[k][1]:+.2f}"
                               for k in pick],
    )  # fmt: skip
    print(OUT / "controls_clip.png")


if __name__ == "__main__":
    main()
