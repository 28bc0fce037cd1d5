"""The embedded demo: what ``vafx demo`` runs on the default model.

At this stage of vafx it exercises the foundation: it loads the default face
model, writes the mean face and a few expressive faces as textured OBJ files,
and writes the V-A grid (bins, bounds, centres) as CSV.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from ._atomic import atomic_write_text
from ._mesh_io import export_mesh
from ._model._morphable import model_shape, sample_coefficients
from ._model._resolve import load_model
from ._va_space import VAGrid

#: Expression recipes over ARKit-named shapes (ICT): name -> {shape: weight}.
DEMO_EXPRESSIONS = {
    "happy": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "cheekSquint_L": 0.6, "cheekSquint_R": 0.6},
    "surprised": {"jawOpen": 0.6, "browInnerUp_L": 1.0, "browInnerUp_R": 1.0,
                  "browOuterUp_L": 1.0, "browOuterUp_R": 1.0, "eyeWide_L": 0.8, "eyeWide_R": 0.8},
    "sad": {"mouthFrown_L": 0.9, "mouthFrown_R": 0.9, "browInnerUp_L": 0.8, "browInnerUp_R": 0.8},
}  # fmt: skip


def run_demo(out_dir: str | os.PathLike, model: str = "ict", seed: int = 0) -> Iterator[str]:
    """Run the demo, yielding one line of report per step."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = load_model(model)
    yield m.summary()
    alpha, _ = sample_coefficients(jax.random.key(seed), m, 0.8)
    faces = {"mean": model_shape(m), "identity": model_shape(m, alpha)}
    for label, recipe in DEMO_EXPRESSIONS.items():
        w = np.zeros(m.num_expressions, np.float32)
        usable = {k: v for k, v in recipe.items() if k in m.expression_names}
        for k, v in usable.items():
            w[m.expression_index(k)] = v
        if usable:
            faces[label] = model_shape(m, alpha, w)
    for label, v in faces.items():
        path = export_mesh(out / f"{label}.obj", v, m.faces, m.uv, m.faces_uv)
        yield f"wrote {path}"
    grid = VAGrid(10)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["bin", "valence_index", "arousal_index", "valence_lo", "valence_hi",
                "arousal_lo", "arousal_hi", "valence_centre", "arousal_centre"])  # fmt: skip
    b, c = np.asarray(grid.bounds()), np.asarray(grid.centres())
    for k in range(grid.num_bins):
        w.writerow([k, k // grid.n, k % grid.n, *np.round(b[k].ravel(), 6), *np.round(c[k], 6)])
    atomic_write_text(out / "va_grid.csv", buf.getvalue())
    yield f"wrote {out / 'va_grid.csv'} ({grid.num_bins} bins of {grid.width:g} x {grid.width:g})"
