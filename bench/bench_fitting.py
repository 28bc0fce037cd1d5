"""Landmark fitting: vafx vs eos (eos-py) with the Surrey Face Model, same landmarks.

Input: N synthetic faces of the SFM (random identity, 3 random expression blendshapes,
yaw in [-50, 50] degrees, pitch and roll within 15 and 10 degrees), their 68 iBUG
landmarks projected into 512 x 512 images with 0.5 px noise; the contour landmarks lie
on the SFM's contour chains. Both fit identity (all 63 modes), the 6 expression
blendshapes and a scaled orthographic pose, eos with `fit_shape_and_pose` and the SFM
side files from ../shared/data/sfm. Reported: mean landmark error over the 49 inner
landmarks (iBUG 18-68 less the two inner mouth corners the SFM lacks) for both, per-image
time, and vafx's batched throughput for batches of 1, 64 and 1024.

Needs eos-py (`pip install eos-py`) and the SFM. Run: python bench/bench_fitting.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _timing import median_seconds  # noqa: E402
from test_fitting import planted  # noqa: E402

import vafx  # noqa: E402

try:
    import eos
except ImportError:  # pragma: no cover
    sys.exit("bench_fitting needs eos: pip install eos-py")


def eos_setup(sfm: Path):
    model = eos.morphablemodel.load_model(str(sfm / "sfm_shape_3448.bin"))
    blend = eos.morphablemodel.load_blendshapes(str(sfm / "expression_blendshapes_3448.bin"))
    mm = eos.morphablemodel.MorphableModel(
        model.get_shape_model(), blend, color_model=eos.morphablemodel.PcaModel(),
        vertex_definitions=None, texture_coordinates=model.get_texture_coordinates(),
    )  # fmt: skip
    return dict(
        model=mm,
        mapper=eos.core.LandmarkMapper(str(sfm / "ibug_to_sfm.txt")),
        edges=eos.morphablemodel.load_edge_topology(str(sfm / "sfm_3448_edge_topology.json")),
        contour_lms=eos.fitting.ContourLandmarks.load(str(sfm / "ibug_to_sfm.txt")),
        contour=eos.fitting.ModelContour.load(str(sfm / "sfm_model_contours.json")),
    )


def eos_fit(e, pts, iters):
    lms = [eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(pts)]
    mesh, pose, shape, blend = eos.fitting.fit_shape_and_pose(
        e["model"], lms, e["mapper"], 512, 512, e["edges"], e["contour_lms"], e["contour"],
        num_iterations=iters,
    )  # fmt: skip
    v = np.asarray(mesh.vertices)
    mv, proj = np.asarray(pose.get_modelview()), np.asarray(pose.get_projection())
    clip = (proj @ mv @ np.c_[v, np.ones(len(v))].T).T
    u = (clip[:, 0] + 1) * 512 / 2  # eos's viewport (this convention gives eos its lowest error)
    w = (1 - clip[:, 1]) * 512 / 2
    return np.stack([u, w], 1)


def main():
    data = Path(os.environ.get("VAFX_DATA") or HERE.parents[1] / "shared" / "data")
    sfm_dir = data / "sfm"
    model = vafx.load_sfm(sfm_dir)
    e = eos_setup(sfm_dir)
    n = 64
    rng = np.random.default_rng(0)
    sets = [
        planted(model, int(s), float(y))
        for s, y in zip(rng.integers(0, 10**6, n), rng.uniform(-50, 50, n))
    ]
    pts = np.stack([p for p, _ in sets])
    lm = np.asarray(model.landmarks)
    inner = np.array([i for i in range(17, 68) if lm[i] >= 0])

    fits = vafx.fit_landmarks(model, pts, (512, 512))
    ours = np.asarray(fits.landmarks)[:, inner]
    err_ours = np.linalg.norm(ours - pts[:, inner], axis=2).mean()
    for iters in (5, 50):
        t0 = time.perf_counter()
        proj = [eos_fit(e, p, iters) for p in pts]
        t_eos = (time.perf_counter() - t0) / n
        err_eos = np.mean(
            [np.linalg.norm(pr[lm[inner]] - p[inner], axis=1).mean() for pr, p in zip(proj, pts)]
        )
        print(
            f"eos {iters:2d} iterations: mean inner-landmark error {err_eos:.3f} px, {t_eos * 1e3:.1f} ms per image"
        )
    print(
        f"vafx ({vafx.FitConfig().iters} Gauss-Newton iterations): mean inner-landmark error {err_ours:.3f} px"
    )
    one = pts[0]
    t1 = median_seconds(lambda: vafx.fit_landmarks(model, one, (512, 512)), repeat=20)
    print(f"vafx single image: {t1 * 1e3:.1f} ms per image ({1 / t1:.0f} images/s)")
    for b in (64, 1024):
        batch = np.concatenate([pts] * (b // n))
        tb = median_seconds(lambda: vafx.fit_landmarks(model, batch, (512, 512)), repeat=3)
        print(f"vafx batch of {b}: {tb / b * 1e3:.2f} ms per image ({b / tb:.0f} images/s)")
    print(f"(jax {jax.__version__}, eos-py; same process, same landmarks)")


if __name__ == "__main__":
    main()
