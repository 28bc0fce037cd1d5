"""Dense photometric refinement through the soft rasterizer (given the face's colours)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from vafx.kernels.camera import rotation_from_euler
from vafx.kernels.raster import interpolate, raster_plan, rasterize

import vafx
from vafx._fit._refine import RefineConfig, refine_photometric
from vafx._model._morphable import region_faces


def _synthetic_photo(model, rng, size=128):
    """A textured face rendered (hard rasterizer) with known geometry, and its colours."""
    alpha = np.zeros(model.num_identity, np.float32)
    alpha[:20] = rng.normal(0, 0.7, 20)
    beta = np.zeros(model.num_expressions, np.float32)
    beta[rng.choice(model.num_expressions, 2, replace=False)] = rng.uniform(0.2, 0.6, 2)
    v = np.asarray(vafx.model_shape(model, alpha, beta))
    rot = rotation_from_euler(
        np.radians(rng.uniform(-25, 25)), np.radians(rng.uniform(-10, 10)), 0.0
    )
    vr = v @ np.asarray(rot).T
    s = 0.75 * size / np.ptp(vr[:, :2], axis=0).max()
    c = (vr.max(0) + vr.min(0)) / 2
    img_v = np.c_[
        (vr[:, 0] - c[0]) * s + size / 2, size / 2 - (vr[:, 1] - c[1]) * s, -vr[:, 2] * s
    ].astype(np.float32)
    mean = np.asarray(model.mean)
    k = 2 * np.pi * 3.0 / np.ptp(mean[:, 0])  # three colour cycles across the face
    col = 0.5 + 0.3 * np.stack(
        [
            np.sin(k * mean[:, 0] + 1),
            np.sin(k * mean[:, 1] + 2),
            np.sin(0.7 * k * (mean[:, 0] + mean[:, 1])),
        ],
        1,
    )
    faces = region_faces(model, "face")
    fr = rasterize(jnp.asarray(img_v), jnp.asarray(faces), size, size,
                   raster_plan(img_v, faces, size, size))  # fmt: skip
    face_px = np.asarray(interpolate(jnp.asarray(col, jnp.float32), jnp.asarray(faces), fr))
    photo = np.where((np.asarray(fr.triangle) >= 0)[..., None], face_px, np.float32(0.35))
    return photo.astype(np.float32), img_v, col.astype(np.float32), np.unique(faces)


@pytest.mark.slow
def test_refinement_with_known_colours_beats_the_landmark_fit(sfm_model):
    rng = np.random.default_rng(0)
    photo, truth, colours, used = _synthetic_photo(sfm_model, rng)
    lm = np.asarray(sfm_model.landmarks)
    noisy = np.where((lm >= 0)[:, None], truth[np.maximum(lm, 0), :2], np.nan)
    noisy = (noisy + rng.normal(0, 1.5, noisy.shape)).astype(np.float32)
    fit = vafx.fit_landmarks(sfm_model, noisy, photo.shape[:2], vafx.FitConfig(contour=False))

    def error(f):  # mean image-space distance of the face's vertices to the truth, pixels
        v = vafx.model_shape(sfm_model, f.identity, f.expression)
        p = np.asarray(vafx.image_vertices(v, f))[used, :2]
        return np.linalg.norm(p - truth[used, :2], axis=1).mean()

    refined = refine_photometric(photo, sfm_model, fit, colours, noisy)
    cost = np.asarray(refined.cost)
    assert np.isfinite(cost).all() and cost[-1] < 0.8 * cost[0]
    # measured: 1.48 px after the landmark fit, 0.99 px refined
    assert error(refined) < 0.85 * error(fit), (error(fit), error(refined))
    assert np.asarray(refined.expression).min() >= 0 and np.asarray(refined.expression).max() <= 1


def test_refinement_checks_its_input(sfm_model):
    pts = np.asarray(sfm_model.mean)[np.maximum(np.asarray(sfm_model.landmarks), 0), :2]
    fit = vafx.fit_landmarks(sfm_model, pts * [0.5, -0.5] + 64, (128, 128))
    photo = np.zeros((128, 128, 3), np.uint8)
    with pytest.raises(ValueError, match="per-vertex colours"):
        refine_photometric(photo, sfm_model, fit, np.zeros((5, 3)), fit.landmarks)
    with pytest.raises(ValueError, match="no region"):
        refine_photometric(photo, sfm_model, fit, np.zeros((sfm_model.mean.shape[0], 3)),
                           fit.landmarks, config=RefineConfig(region="teeth"))  # fmt: skip
    with pytest.raises(ValueError, match="steps"):
        RefineConfig(steps=0)
