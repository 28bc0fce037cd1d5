"""Landmark fitting: recovery of planted faces and poses, monotone cost, batching, .pts I/O, detection."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vafx.kernels.camera import (
    affine_camera,
    euler_angles,
    project_orthographic,
    project_perspective,
    rotation_from_euler,
    so3_exp,
)

import vafx
from vafx._fit._fitting import FitConfig, fit_landmarks, fitted_vertices, image_vertices
from vafx._fit._landmarks import NoFaceError
from vafx._io._pts import read_pts, write_pts


def test_so3_exp_is_a_rotation_and_euler_round_trips():
    rng = np.random.default_rng(0)
    for w in rng.normal(0, 1.5, (20, 3)):
        r = np.asarray(so3_exp(jnp.asarray(w, jnp.float32)))
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
    angles = np.radians([35.0, -12.0, 7.0])
    r = rotation_from_euler(*angles)
    np.testing.assert_allclose(np.asarray(euler_angles(r)), angles, atol=1e-5)
    np.testing.assert_allclose(np.asarray(so3_exp(jnp.zeros(3))), np.eye(3))


def test_affine_camera_recovers_an_exact_pose():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 5, (30, 3)).astype(np.float32)
    r = rotation_from_euler(0.4, -0.2, 0.1)
    uv = project_orthographic(jnp.asarray(x), r, jnp.array([200.0, 150.0]), 7.0)
    r2, t2, s2 = affine_camera(jnp.asarray(x), uv)
    np.testing.assert_allclose(np.asarray(r2), np.asarray(r), atol=1e-4)
    np.testing.assert_allclose(np.asarray(t2), [200.0, 150.0], atol=1e-2)
    assert float(s2) == pytest.approx(7.0, rel=1e-4)


def planted(model, seed, yaw, camera="orthographic", noise=0.5):
    """Landmarks of a random face: contour landmarks on the model's contour chains."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(0, 1, model.num_identity).astype(np.float32)
    beta = np.zeros(model.num_expressions, np.float32)
    if model.num_expressions:
        beta[rng.choice(model.num_expressions, 3, replace=False)] = rng.uniform(0, 0.5, 3)
    v = jnp.asarray(vafx.model_shape(model, alpha, beta))
    pitch, roll = np.radians(rng.uniform(-15, 15)), np.radians(rng.uniform(-10, 10))
    r = rotation_from_euler(np.radians(yaw), pitch, roll)
    size = float(np.ptp(np.asarray(model.mean)[:, 0]))
    s = 250.0 / size  # the face spans about 250 pixels of a 512 x 512 image
    if camera == "perspective":
        f = 1.5 * 512
        t = jnp.array([0.0, 0.0, -f / s], jnp.float32)
        uv = project_perspective(v, r, t, f, jnp.array([255.5, 255.5]))[0]
    else:
        uv = project_orthographic(v, r, jnp.array([256.0, 256.0]), s)
    lm = np.asarray(model.landmarks).copy()
    cr, cl = np.asarray(model.contour_right), np.asarray(model.contour_left)
    lm[0:8] = cr[np.linspace(0, len(cr) - 1, 8).round().astype(int)]
    lm[9:17] = cl[np.linspace(0, len(cl) - 1, 8).round().astype(int)]
    pts = np.asarray(uv)[np.maximum(lm, 0)] + rng.normal(0, noise, (68, 2))
    pts[lm < 0] = np.nan
    return pts.astype(np.float32), np.array([np.radians(yaw), pitch, roll])


def check_recovery(model, seed, yaw, camera="orthographic"):
    pts, angles = planted(model, seed, yaw, camera)
    fit = fit_landmarks(model, pts, (512, 512), FitConfig(camera=camera))
    # noise sd 0.5 px per axis: its mean distance is 0.63 px; the priors keep the
    # fit from chasing all of it: at most twice that
    assert np.nanmean(np.asarray(fit.residuals)) < 1.25
    err = np.degrees(np.abs(np.asarray(euler_angles(fit.rotation)) - angles))
    # degrees (yaw, pitch, roll); from 68 landmarks pitch trades off against the
    # face's vertical proportions (identity), so it gets the widest tolerance
    assert (err < [4.0, 6.0, 3.0]).all(), err
    cost = np.asarray(fit.cost)
    assert (np.diff(cost) <= 1e-6 * cost[0]).all()
    return fit


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000), yaw=st.floats(-60, 60))
def test_recovers_ict_faces_and_poses(ict_model, seed, yaw):
    check_recovery(ict_model, seed, yaw)


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000), yaw=st.floats(-60, 60))
def test_recovers_sfm_faces_and_poses(sfm_model, seed, yaw):
    check_recovery(sfm_model, seed, yaw)


def test_perspective_camera(ict_model):
    fit = check_recovery(ict_model, 5, 25.0, camera="perspective")
    iv = np.asarray(image_vertices(fitted_vertices(ict_model, fit), fit, "perspective"))
    lm = np.asarray(ict_model.landmarks)[17:]
    np.testing.assert_allclose(iv[lm, :2], np.asarray(fit.landmarks)[17:], atol=1e-2)
    assert (iv[:, 2] > 0).all()  # in front of the camera


def test_batch_equals_single(sfm_model):
    pts = np.stack([planted(sfm_model, s, y)[0] for s, y in ((1, -40), (2, 0), (3, 35))])
    batch = fit_landmarks(sfm_model, pts, (512, 512))
    for i in range(3):
        one = fit_landmarks(sfm_model, pts[i], (512, 512))
        np.testing.assert_allclose(batch.landmarks[i], one.landmarks, atol=1e-2)
        np.testing.assert_allclose(batch.identity[i], one.identity, atol=1e-3)


def test_missing_landmarks_and_bad_input(sfm_model):
    pts, _ = planted(sfm_model, 4, 10)
    pts[30:40] = np.nan
    fit = fit_landmarks(sfm_model, pts, (512, 512))
    assert np.isnan(np.asarray(fit.residuals)[30:40]).all()
    assert np.nanmean(np.asarray(fit.residuals)) < 1.0
    with pytest.raises(ValueError, match="68, 2"):
        fit_landmarks(sfm_model, pts[:60], (512, 512))
    few = np.full((68, 2), np.nan, np.float32)
    few[36:40] = pts[36:40]
    with pytest.raises(ValueError, match="usable landmarks"):
        fit_landmarks(sfm_model, few, (512, 512))
    with pytest.raises(ValueError, match="camera"):
        FitConfig(camera="fisheye")


def test_pts_round_trip_and_errors(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 500, (68, 2)).astype(np.float32)
    write_pts(tmp_path / "a.pts", pts)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), pts, atol=1e-3)
    assert "n_points: 68" in (tmp_path / "a.pts").read_text()
    (tmp_path / "b.pts").write_text("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n")
    with pytest.raises(vafx.DataFileError, match="declares 3 points but holds 2"):
        read_pts(tmp_path / "b.pts")
    (tmp_path / "c.pts").write_text("hello")
    with pytest.raises(vafx.DataFileError, match="c.pts.*not a .pts"):
        read_pts(tmp_path / "c.pts")


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("dlib", reason="landmark detection needs vafx[detect] (dlib-bin)")
    pytest.importorskip("face_recognition_models", reason="needs face-recognition-models")
    from vafx._fit._landmarks import detect_landmarks

    return detect_landmarks


def test_astronaut_detected_landmarks_are_fitted_closely(detector, ict_model):
    from skimage import data

    img = data.astronaut()
    pts = detector(img, name="astronaut")
    fit = fit_landmarks(ict_model, pts, img.shape[:2])
    iod = np.linalg.norm(pts[36:42].mean(0) - pts[42:48].mean(0))
    err = np.nanmean(np.asarray(fit.residuals)) / iod
    assert err < 0.03, err


def test_no_face_is_a_clear_error(detector):
    with pytest.raises(NoFaceError, match="blank.png: no face found"):
        detector(np.full((200, 200, 3), 128, np.uint8), name="blank.png")


def test_cli_landmarks_and_fit(tmp_path, detector, ict_dir):
    import subprocess
    import sys

    import imageio.v3 as iio
    from skimage import data

    iio.imwrite(tmp_path / "astro.png", data.astronaut())
    iio.imwrite(tmp_path / "blank.png", np.full((120, 120, 3), 200, np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    env = {**__import__("os").environ, "VAFX_DATA": str(ict_dir.parent)}
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "landmarks", "astro.png", "blank.png", "broken.png", "-o", "lm"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lm" / "astro.pts").exists()
    skipped = (tmp_path / "lm" / "skipped.txt").read_text()
    assert "blank.png: no face found" in skipped and "broken.png" in skipped
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "fit", "astro.png", "--landmarks", "lm/astro.pts", "-o", "astro.obj"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "astro.obj").exists() and (tmp_path / "astro.json").exists()
