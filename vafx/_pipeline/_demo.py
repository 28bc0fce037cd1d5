"""The embedded demo: what ``vafx demo`` runs on the default model.

End to end on data vafx makes itself: the default bin models of the face
model (built once from the default synthetic 4D gallery, docs/gallery.md, and
cached; :func:`vafx.default_bin_models`), the paper's Fig. 3 (the V-A
histogram of that gallery with the mean shapes of bins around it), and
scikit-image's astronaut synthesized over a 5 x 5 grid of V-A targets, written
as a Fig. 5 contact sheet on valence and arousal axes with a JSON sidecar per
cell. Landmarks come from dlib when vafx[detect] is installed, else from the
astronaut's landmarks shipped with vafx (detected once with dlib).
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import jax
import numpy as np

from .._io._atomic import atomic_write_text


def _astronaut_landmarks(img) -> tuple[np.ndarray, str]:
    from .._fit._landmarks import detect_landmarks
    from .._io._pts import read_pts

    try:
        return detect_landmarks(img, name="astronaut"), "detected with dlib"
    except ImportError:
        with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
            return read_pts(p), "shipped with vafx (dlib, detected once)"


def write_bins_csv(models, path: str | os.PathLike) -> Path:
    """One row per bin: number, V-A range, frames, label (median V-A), status."""
    from .._expression._bins import STATUS_NAMES

    grid = models.grid
    bounds = np.asarray(grid.bounds())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["bin", "valence_low", "valence_high", "arousal_low", "arousal_high", "frames",
                "label_valence", "label_arousal", "status"])  # fmt: skip
    for b in range(models.num_bins):
        (v0, v1), (a0, a1) = bounds[b].round(3).tolist()
        lab = models.labels[b]
        w.writerow([b, v0, v1, a0, a1, int(models.counts[b]), f"{lab[0]:.4f}", f"{lab[1]:.4f}",
                    STATUS_NAMES[models.status[b]]])  # fmt: skip
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def write_fig3(models, model, path: str | os.PathLike) -> Path:
    """Fig. 3: the bin models' V-A histogram with the mean shapes of bins around it."""
    from .._model._template import template_from_model
    from ._figures import fig3_figure, ring_bins, shape_thumbnails

    t = template_from_model(model, models.meta.get("region") or None)
    bins = ring_bins(models.grid, models.counts)
    thumbs = shape_thumbnails(t.vertices, t.faces, models.means[bins])
    return fig3_figure(models.counts, models.grid, path, thumbnails=thumbs, bins=bins,
                       labels=models.labels)  # fmt: skip


def run_demo(
    out_dir: str | os.PathLike,
    model: str = "ict",
    *,
    grid: int = 5,
    report: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Run the demo, yielding one line of report per step.

    Args:
        out_dir: output folder.
        model: face model name or path.
        grid: V-A targets per axis of the contact sheet (from -0.8 to 0.8).
        report: called with the steps of a first-use build of the default
            bin models (see :func:`vafx.default_bin_models`).
    """
    from skimage import data

    from .._expression._defaults import default_bin_models
    from .._fit._fitting import fit_landmarks
    from .._model._resolve import load_model
    from ._figures import face_box, va_sheet_figure
    from ._synthesis import synthesize_batch
    from ._synthesize_files import grid_targets

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = load_model(model)
    yield m.summary()
    img = data.astronaut()

    def fit_photo():
        pts, how = _astronaut_landmarks(img)
        return fit_landmarks(m, pts, img.shape[:2]), how

    # the photo's landmarks and fit (compiling, on the other core) while the bins are built
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fitting = pool.submit(fit_photo)
        models = default_bin_models(m, report=report)
        fit, how = fitting.result()
    yield f"default bin models: {models.summary()[-1]} ({time.perf_counter() - t0:.0f} s)"
    write_fig3(models, m, out / "fig3_histogram.png")
    write_bins_csv(models, out / "bins.csv")
    yield f"wrote {out / 'fig3_histogram.png'} and {out / 'bins.csv'}"

    yield f"astronaut: landmarks {how}; fit mean error {np.nanmean(np.asarray(fit.residuals)):.2f} px"
    targets, levels_v, levels_a = grid_targets(grid)
    fits = jax.tree.map(lambda x: np.asarray(x)[None], fit)
    res = synthesize_batch(img[None], targets, models, m, fits=fits, names=["astronaut"])
    crop = face_box(np.asarray(fit.landmarks), img.shape[:2])
    cells = [[res.images[0, r * grid + c][crop] for c in range(grid)] for r in range(grid)]
    caps = [[f"bin {int(res.bins[r * grid + c])} "
             f"({res.labels[r * grid + c][0]:+.2f}, {res.labels[r * grid + c][1]:+.2f})"
             for c in range(grid)] for r in range(grid)]  # fmt: skip
    va_sheet_figure(img[crop], cells, levels_v, levels_a, out / "contact_sheet.png", captions=caps,
                    title="astronaut: each cell's target bin and its label (median V-A)")  # fmt: skip
    atomic_write_text(out / "contact_sheet.json", json.dumps(
        dict(layout="rows: arousal from high (top) to low; columns: valence from low to high; "
             "the input photo on the left", valence=levels_v, arousal=levels_a,
             cells=res.sidecars[0]), indent=1))  # fmt: skip
    yield (
        f"wrote {out / 'contact_sheet.png'} ({grid} x {grid} V-A grid) and its sidecar "
        f"({time.perf_counter() - t0:.0f} s)"
    )
