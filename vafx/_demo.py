"""The embedded demo: what ``vafx demo`` runs on the default model.

End to end on data vafx makes itself: a synthetic 4D gallery from the ICT
model (docs/gallery.md), its Fig. 3 style V-A histogram, the per-bin
models (their means; SPLOCS with ``splocs=True``), and scikit-image's astronaut synthesized over a 5 x 5 grid of V-A
targets, written as a contact sheet (the neutral photo beside the grid, as the
paper's Fig. 5) with a JSON sidecar per cell. Landmarks come from dlib when
vafx[detect] is installed, else from the astronaut's landmarks shipped with
vafx (detected once with dlib). Re-running resumes: finished steps are kept.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import jax
import numpy as np

from ._atomic import atomic_path, atomic_write_text


def _astronaut_landmarks(img) -> tuple[np.ndarray, str]:
    from ._landmarks import detect_landmarks, read_pts

    try:
        return detect_landmarks(img, name="astronaut"), "detected with dlib"
    except ImportError:
        with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
            return read_pts(p), "shipped with vafx (dlib, detected once)"


def _write_png(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def contact_sheet(neutral: np.ndarray, cells: list[list[np.ndarray]], gap: int = 6) -> np.ndarray:
    """The neutral photo on the left, the grid of results (arousal up, valence right) beside it."""
    h, w = cells[0][0].shape[:2]
    rows, cols = len(cells), len(cells[0])
    grid_h, grid_w = rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap
    sheet = np.full((grid_h, w + 3 * gap + grid_w, 3), 255, np.uint8)
    top = (grid_h - h) // 2
    sheet[top : top + h, :w] = neutral
    for r in range(rows):
        for c in range(cols):
            y, x = r * (h + gap), w + 3 * gap + c * (w + gap)
            sheet[y : y + h, x : x + w] = cells[r][c]
    return sheet


def run_demo(
    out_dir: str | os.PathLike,
    model: str = "ict",
    seed: int = 0,
    *,
    subjects: int = 8,
    grid: int = 5,
    components: int = 8,
    iters: int = 10,
    splocs: bool = False,
) -> Iterator[str]:
    """Run the demo, yielding one line of report per step.

    Args:
        out_dir: output folder (re-running resumes: the gallery and the bin
            models are kept).
        model: face model name or path.
        seed: seed of the synthetic gallery.
        subjects: synthetic subjects.
        grid: V-A targets per axis of the contact sheet (from -0.8 to 0.8).
        components: SPLOCS components per bin.
        iters: SPLOCS iterations.
        splocs: also fit the bins' SPLOCS blendshape models (minutes; the
            contact sheet uses the bins' means either way).
    """
    levels = np.linspace(-0.8, 0.8, grid).round(3).tolist()
    from skimage import data

    from ._bins import fit_bins, load_bin_models, save_bin_models
    from ._fitting import fit_landmarks
    from ._gallery._stats import bin_table, write_histogram_png, write_table_csv
    from ._gallery._synth import SynthConfig, synthesize_gallery
    from ._model._resolve import load_model
    from ._synthesis import synthesize_batch
    from .kernels.splocs import SplocsParams

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = load_model(model)
    yield m.summary()
    g = synthesize_gallery(out / "gallery", m, SynthConfig(subjects=subjects, frames=10, seed=seed))
    yield f"synthetic gallery: {g} ({time.perf_counter() - t0:.0f} s)"
    write_histogram_png(g, out / "fig3_histogram.png")
    write_table_csv(bin_table(g), out / "bins.csv")
    yield f"wrote {out / 'fig3_histogram.png'} and {out / 'bins.csv'}"
    bins_path = out / "bins.npz"
    if bins_path.exists():
        models = load_bin_models(bins_path)
    else:
        # synthesis from the bins' means needs no SPLOCS blendshapes (`vafx bins fit`
        # adds them, for --sample); the means take seconds, the blendshapes minutes
        params = SplocsParams(num_components=components, num_iters=iters)
        models = fit_bins(g, params, min_frames=5, splocs=splocs)
        save_bin_models(bins_path, models)
    yield f"per-bin models: {models.summary()[-1]} -> {bins_path} ({time.perf_counter() - t0:.0f} s)"

    img = data.astronaut()
    pts, how = _astronaut_landmarks(img)
    fit = fit_landmarks(m, pts, img.shape[:2])
    yield f"astronaut: landmarks {how}; fit mean error {np.nanmean(np.asarray(fit.residuals)):.2f} px"
    crop = (slice(20, 276), slice(100, 356))  # 256 x 256 around the face
    targets = [(v, a) for a in reversed(levels) for v in levels]  # top row: high arousal
    fits = jax.tree.map(lambda x: x[None], fit)
    res = synthesize_batch(img[None], targets, models, m, fits=fits, names=["astronaut"])
    cells = [[res.images[0, r * grid + c][crop] for c in range(grid)] for r in range(grid)]
    sidecars = res.sidecars[0]
    sheet = contact_sheet(img[crop], cells)
    _write_png(out / "contact_sheet.png", sheet)
    atomic_write_text(out / "contact_sheet.json", json.dumps(
        dict(layout="rows: arousal from high (top) to low; columns: valence from low to high; "
             "the neutral photo on the left", levels=levels, cells=sidecars), indent=1))  # fmt: skip
    yield (
        f"wrote {out / 'contact_sheet.png'} ({grid} x {grid} V-A grid) and its sidecar "
        f"({time.perf_counter() - t0:.0f} s)"
    )
