"""Face images rendered from a gallery: data with known V-A for the evaluation protocols.

Each chosen frame of a gallery (on a model region's template) is rendered with
the hard rasterizer as a shaded face (Lambert shading of a skin tone, a light
from the upper front, a plain background), frontal with a small random yaw,
into ``size`` x ``size`` pixels; its 68 landmarks (the model's landmark
vertices on the template) are written as a .pts file beside it, so that
``vafx augment`` can run on the images without a detector. These are
renderings, not photos: use them to exercise the protocols, never to claim
accuracy.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._io._atomic import atomic_path, atomic_write_text
from .._io._pts import write_pts
from .._render._face import vertex_normals
from ..kernels.camera import rotation_from_euler
from ..kernels.raster import interpolate, raster_plan, rasterize

__all__ = ["render_gallery_faces"]


def render_gallery_faces(
    gallery, model, out: str | os.PathLike, *, size: int = 128, per_sequence: int = 2, seed: int = 0
) -> Path:
    """Render the apex and ``per_sequence - 1`` other frames of every sequence.

    Writes ``OUT/images/*.png``, ``OUT/landmarks/*.pts`` and ``OUT/dataset.csv``
    (image, subject, valence, arousal, sequence, frame). Returns the CSV path.
    """
    import imageio.v3 as iio

    out = Path(out)
    t = gallery.template
    if t.vertex_ids is None:
        raise ValueError("the gallery's template is not cut from a model: no landmarks to place")
    pos = -np.ones(int(np.max(t.vertex_ids)) + 1, np.int64)
    pos[t.vertex_ids] = np.arange(t.num_vertices)
    lm_model = np.asarray(model.landmarks)
    lm = np.where(
        (lm_model >= 0) & (lm_model < len(pos)), pos[np.clip(lm_model, 0, len(pos) - 1)], -1
    )
    rng = np.random.default_rng(seed)
    e = gallery.expression_frames
    chosen = []
    apex = {int(r["sequence"]): int(r["frame"]) for r in gallery.apex_frames()}
    for s in np.unique(e["sequence"]):
        recs = e[e["sequence"] == s]
        pick = [apex[int(s)]]
        others = [int(f) for f in recs["frame"] if int(f) != pick[0]]
        pick += [
            int(f) for f in rng.choice(others, min(per_sequence - 1, len(others)), replace=False)
        ]
        chosen += [r for r in recs if int(r["frame"]) in pick]
    faces = np.asarray(t.faces, np.int32)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "landmarks").mkdir(parents=True, exist_ok=True)
    rows = []
    skin = np.array([0.80, 0.62, 0.52], np.float32) * rng.uniform(0.8, 1.1)
    for r in chosen:
        v = gallery.vertices(r)[0]
        yaw = np.radians(rng.uniform(-15, 15))
        rot = np.asarray(rotation_from_euler(yaw, 0.0, 0.0))
        vr = v @ rot.T
        c = (vr.max(0) + vr.min(0)) / 2
        scale = 0.8 * size / np.ptp(vr[:, :2], axis=0).max()
        img_v = np.c_[
            (vr[:, 0] - c[0]) * scale + size / 2,
            size / 2 - (vr[:, 1] - c[1]) * scale,
            -vr[:, 2] * scale,
        ].astype(np.float32)
        fr = rasterize(
            jnp.asarray(img_v),
            jnp.asarray(faces),
            size,
            size,
            raster_plan(img_v, faces, size, size),
        )
        n = np.asarray(vertex_normals(jnp.asarray(vr, jnp.float32), jnp.asarray(faces)))
        light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
        shade = (0.3 + 0.7 * np.clip(n @ light, 0, 1)).astype(np.float32)
        col = np.asarray(
            interpolate(jnp.asarray(shade[:, None] * skin[None]), jnp.asarray(faces), fr)
        )
        hit = np.asarray(fr.triangle) >= 0
        img = np.where(hit[..., None], col, np.float32(0.25))
        name = f"{gallery.subjects[r['subject']]}_s{int(r['sequence']):05d}_f{int(r['frame_number']):03d}"
        buf = io.BytesIO()
        iio.imwrite(buf, (np.clip(img, 0, 1) * 255).astype(np.uint8), extension=".png")
        with atomic_path(out / "images" / f"{name}.png") as tmp:
            tmp.write_bytes(buf.getvalue())
        pts = np.where((lm >= 0)[:, None], img_v[np.maximum(lm, 0), :2], np.nan)
        write_pts(out / "landmarks" / f"{name}.pts", np.nan_to_num(pts, nan=-1.0))
        rows.append(
            [
                f"images/{name}.png",
                gallery.subjects[r["subject"]],
                float(r["valence"]),
                float(r["arousal"]),
                int(r["sequence"]),
                int(r["frame_number"]),
            ]
        )
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["image", "subject", "valence", "arousal", "video", "frame"])
    w.writerows(rows)
    atomic_write_text(out / "dataset.csv", text.getvalue())
    return out / "dataset.csv"
