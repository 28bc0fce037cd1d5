"""Re-rendering a fitted face into its photo."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import vafx
from vafx._render._face import FILLED, MOUTH, PHOTO, render_face
from vafx._render._interior import LUMA, lip_shadow, mouth_polygon_mask, photo_teeth_colour


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
    # every pixel of the face within one grey level (not a mean over the face)
    err = np.abs(np.rint(r.image * 255) - img)[r.coverage].max()
    assert err <= 1, err
    assert (r.motion[r.coverage] < 1e-3).all()
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
    assert (r.source == PHOTO).sum() > 10 * (r.source == FILLED).sum()
    assert np.isfinite(r.image).all() and r.image.min() >= 0 and r.image.max() <= 1
    # the astronaut shows her teeth: where the opened mouth shows what the photo showed,
    # the photo's pixels are used, and only the rest is synthesized
    d = np.asarray(v1) - np.asarray(v0)
    own = render_face(img, ict_model, fit, d, reuse_teeth=False)
    assert (own.source == MOUTH).sum() > 200  # the lips part: the interior shows
    # its synthesized teeth are lit as the face's front is, not as its mean skin (shaded
    # cheeks included): their brightest tenth near the photo's real teeth (p90 0.71 of the
    # real teeth's 0.92; 0.62 when matched to the mean skin)
    teeth, _ = photo_teeth_colour(jnp.asarray(img, jnp.float32) / 255,
                                  mouth_polygon_mask(jnp.asarray(fit.landmarks)[60:68], *img.shape[:2]),
                                  jnp.zeros(3))  # fmt: skip
    luma = own.image @ np.asarray(LUMA, np.float32)
    assert np.percentile(luma[own.source == MOUTH], 90) > 0.72 * float(np.asarray(teeth) @ LUMA)
    # in the lips' shadow the hue moves toward the corridor's warm one, not a darkened tooth
    # grey (a bluish band beside the lips): red over blue 1.5-1.6 where the shadow is 0.6 to
    # 0.95 (1.26 with the teeth only darkened)
    shadow = np.asarray(lip_shadow(jnp.asarray(own.source == MOUTH)))
    px = own.image[(own.source == MOUTH) & (shadow >= 0.6) & (shadow < 0.95)]
    assert len(px) > 50 and px[:, 0].mean() / px[:, 2].mean() > 1.4
    # the same fit, with no inner-lip outline: nothing is known to show teeth, and the teeth
    # the fitted lips covered are synthesized (only the interior the fit itself shows is
    # the photo's)
    blind = fit._replace(landmarks=np.asarray(fit.landmarks).copy())
    blind.landmarks[60:68] = np.nan
    unseen = render_face(img, ict_model, blind, d)
    assert (unseen.source == MOUTH).sum() > mouth.sum() + 20
    assert (unseen.source == PHOTO).sum() < (r.source == PHOTO).sum() - 20


def _jaw_open(model, fit, amount=0.8):
    names = model.expression_names
    beta = np.zeros(model.num_expressions, np.float32)
    beta[names.index("jawOpen")] = amount
    v0 = vafx.model_shape(model, fit.identity, fit.expression)
    v1 = vafx.model_shape(model, fit.identity, np.asarray(fit.expression) + beta)
    return np.asarray(v1) - np.asarray(v0)


def test_greyscale_photo_gets_a_grey_mouth_interior(ict_model, astronaut_fit):
    img, fit = astronaut_fit
    grey = np.repeat(
        np.rint(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None], 3, -1
    )
    r = render_face(grey, ict_model, fit, _jaw_open(ict_model, fit), reuse_teeth=False)
    mouth = r.source == MOUTH
    assert mouth.sum() > 200
    px = np.rint(r.image[mouth] * 255)
    assert np.abs(px[:, 0] - px[:, 1]).max() <= 1 and np.abs(px[:, 1] - px[:, 2]).max() <= 1
    # and teeth brighter than the grey skin (the interior is not a dark slab)
    assert np.percentile(px[:, 0], 90) > np.rint(r.image[r.source == PHOTO] * 255).mean()


def test_motion_is_carried_past_the_outline(ict_model, astronaut_fit):
    img, fit = astronaut_fit
    d = _jaw_open(ict_model, fit)
    r = render_face(img, ict_model, fit, d)
    flat = render_face(img, ict_model, fit, d, warp=False)
    px = np.rint(r.image * 255)
    outside = ~r.coverage
    moved = outside & (r.motion > 0)
    # the neck below the opened jaw moves with it (the photo's outline, not a hard edge)
    assert moved.sum() > 500
    far = outside & (r.motion >= 1)
    assert far.sum() > 200 and (px[far] != img[far]).any(axis=-1).mean() > 0.5
    # what did not move is the photo, exactly; without the warp nothing outside moves
    np.testing.assert_array_equal(px[outside & (r.motion == 0)], img[outside & (r.motion == 0)])
    np.testing.assert_array_equal(np.rint(flat.image * 255)[outside], img[outside])
    # the face region and the motion agree at the outline: no step at the silhouette
    assert np.isfinite(r.motion).all() and r.motion[moved].max() < 2 * r.motion[r.coverage].max()


@pytest.mark.slow  # 27 s: two meshes' renders compiled (fast subset < 3 min)
def test_only_teeth_carry_the_photos_mouth_pixels(ict_model, astronaut_fit):
    """The astronaut shows her teeth; her jaw dropped, no socket or tongue point carries
    her photo's pixels to a new place (they carried her teeth: a pale rim inside the
    opening). With the teeth left out of the model, every interior pixel taken from the
    photo lies where its point was (under half a pixel of motion)."""
    import dataclasses

    img, fit = astronaut_fit
    d = _jaw_open(ict_model, fit)
    regions = {k: v for k, v in ict_model.regions.items() if k != "teeth"}
    toothless = dataclasses.replace(ict_model, regions=regions)
    r = render_face(img, toothless, fit, d)
    never = render_face(img, toothless, fit, d, reuse_teeth=False)
    assert (never.source == MOUTH).sum() > 200
    taken = (never.source == MOUTH) & (r.source == PHOTO)
    assert (r.motion[taken] < 0.5).all(), np.sort(r.motion[taken])[-5:]
    # and the teeth still do: the full model takes the photo's teeth where they moved
    full = render_face(img, ict_model, fit, d)
    moved = (full.source == PHOTO) & (render_face(img, ict_model, fit, d, reuse_teeth=False)
                                      .source == MOUTH) & (full.motion > 1.0)  # fmt: skip
    assert moved.sum() > 20


def test_a_toothless_opening_gives_the_teeth_none_of_its_pixels(ict_model, astronaut_fit):
    """The photo's parted lips show a dark opening (no teeth found): its pixels are not
    taken for teeth, which are synthesized as if the photo showed nothing."""
    from scipy.ndimage import binary_dilation

    img, fit = astronaut_fit
    lips = np.asarray(fit.landmarks)[60:68]
    opening = np.asarray(mouth_polygon_mask(jnp.asarray(lips, jnp.float32), *img.shape[:2]))
    dark = img.copy()
    dark[binary_dilation(opening, iterations=2)] = (70, 30, 35)  # a dark, toothless mouth
    d = _jaw_open(ict_model, fit)
    r = render_face(dark, ict_model, fit, d)
    teeth, found = photo_teeth_colour(jnp.asarray(dark, jnp.float32) / 255,
                                      jnp.asarray(opening), jnp.full(3, 0.6))  # fmt: skip
    assert not bool(found)
    # the teeth inside the opening are synthesized, as on the real photo with no lips known
    # (where its own teeth were reused, fewer)
    blind = fit._replace(landmarks=np.asarray(fit.landmarks).copy())
    blind.landmarks[60:68] = np.nan
    unseen = render_face(dark, ict_model, blind, d)
    real = render_face(img, ict_model, fit, d)
    n = [(x.source == MOUTH).sum() for x in (r, unseen, real)]
    assert n[0] > n[2] + 20, n
    # exactly: no interior point takes the opening's pixels, not even one that passes the
    # depth test there (on grace_hopper in grey: dark blocks beside the front teeth)
    never = render_face(dark, ict_model, fit, d, reuse_teeth=False)  # the interior never seen
    for x in (unseen, never):
        np.testing.assert_array_equal(r.source, x.source)
        np.testing.assert_array_equal(r.image, x.image)


def test_reshading_leaves_alone_what_the_photo_saw_edge_on(ict_model):
    """Where the photo saw the fitted surface edge-on, the shading ratio is exactly 1."""
    from _photos import astronaut_pts
    from skimage import data

    from vafx._expression._controls import au_deformation
    from vafx._model._morphable import model_shape
    from vafx._render._face import EDGE_ON, _render_cropped, render_mesh, vertex_normals

    img, pts = data.astronaut(), astronaut_pts()
    fits = vafx.fit_landmarks(ict_model, pts[None], img.shape[:2])
    # brows up: the upper lids' creases, which the photo sees edge-on, turn to the light
    d = au_deformation(ict_model, {1: 1.0, 2: 1.0})
    _, _, working = _render_cropped(
        img[None], ict_model, fits, d[None, None], camera="orthographic",
        depth_tolerance=1.5, diffusion_steps=32, shade=True, max_side=128,
    )  # fmt: skip
    assert working is not None  # the working maps hold each pixel's ratio and triangle
    tri, ratio = working.maps.triangle[0, 0], working.maps.ratio[0, 0]
    mesh = render_mesh(ict_model)
    v0 = model_shape(ict_model, fits.identity[0], fits.expression[0])
    facing = np.asarray(vertex_normals(v0, mesh.faces) @ fits.rotation[0][2])
    corners = facing[np.asarray(mesh.faces)][np.maximum(tri, 0)]  # [h, w, 3]
    # (half the threshold: a pixel's interpolated normal then faces at most a little more)
    away = (tri >= 0) & np.all(corners < EDGE_ON / 2, axis=-1)
    front = (tri >= 0) & np.all(corners > 2 * EDGE_ON, axis=-1)
    assert away.sum() >= 20
    np.testing.assert_array_equal(ratio[away], 1.0)
    assert np.mean(ratio[front] != 1.0) > 0.1  # and re-shading is at work on the rest
