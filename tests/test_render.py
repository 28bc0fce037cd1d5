"""Re-rendering a fitted face into its photo."""

from __future__ import annotations

import numpy as np
import pytest

import vafx
from vafx._render._face import FILLED, MOUTH, PHOTO, render_face


@pytest.fixture(scope="module")
def astronaut_fit(ict_model):
    pytest.importorskip("dlib", reason="landmark detection needs vafx[detect] (dlib-bin)")
    pytest.importorskip("face_recognition_models", reason="needs face-recognition-models")
    from skimage import data

    img = data.astronaut()
    pts = vafx.detect_landmarks(img, name="astronaut")
    return img, vafx.fit_landmarks(ict_model, pts, img.shape[:2])


def test_no_deformation_gives_back_the_photo(ict_model, astronaut_fit):
    img, fit = astronaut_fit
    r = render_face(img, ict_model, fit)
    # the blend mask is what the render changed, a small part of the face here
    assert r.coverage.sum() > 5000 and r.blend_mask.sum() < 0.2 * r.coverage.sum()
    assert not (r.blend_mask & ~r.coverage).any()
    err = np.abs(r.image - img / 255.0)[r.coverage].mean()
    assert err < 2 / 255, err
    # a closed neutral mouth shows at most a sliver of the interior between the lips
    assert (r.source[r.coverage] == MOUTH).mean() < 0.02
    np.testing.assert_array_equal(r.image[~r.coverage], img[~r.coverage] / np.float32(255))


def test_open_mouth_shows_a_shaded_interior_and_stays_plausible(ict_model, astronaut_fit):
    img, fit = astronaut_fit
    names = ict_model.expression_names
    beta = np.zeros(ict_model.num_expressions, np.float32)
    beta[names.index("jawOpen")] = 0.8
    v0 = vafx.model_shape(ict_model, fit.identity, fit.expression)
    v1 = vafx.model_shape(ict_model, fit.identity, np.asarray(fit.expression) + beta)
    r = render_face(img, ict_model, fit, np.asarray(v1) - np.asarray(v0))
    mouth = r.source == MOUTH
    assert mouth.sum() > 200  # the lips part: the interior shows
    assert (r.source == PHOTO).sum() > 10 * (r.source == FILLED).sum()
    assert np.isfinite(r.image).all() and r.image.min() >= 0 and r.image.max() <= 1
    # the interior is darker than the skin around it, never garbage colours
    skin = r.image[r.source == PHOTO].mean()
    assert r.image[mouth].mean() < skin
