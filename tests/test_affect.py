"""Synthesis that shows the target affect: replacement, blending, shading, coverage, judges."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage import data

import vafx
from vafx._evaluate._judges import affect_cues, evaluate_synthesis, halo_measure
from vafx._gallery import _facs
from vafx._gallery._synth import SynthConfig, gallery_labels, sequence_labels
from vafx._pipeline._synthesis import SynthesisConfig, fitted_expression, synthesize_batch
from vafx._render._face import render_faces
from vafx._render._shading import RATIO_RANGE, estimate_lighting, sh_basis, shading_ratio


@pytest.fixture(scope="module")
def astro(ict_model):
    img = data.astronaut()
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = vafx.read_pts(p)
    return img, vafx.fit_landmarks(ict_model, pts, img.shape[:2])


@pytest.fixture(scope="module")
def means(ict_model, tmp_path_factory):
    """Bin means of a small gallery of the default generator (every prototype, 2 subjects)."""
    g = vafx.synthesize_gallery(tmp_path_factory.mktemp("g") / "g", ict_model,
                                SynthConfig(subjects=2, frames=8))  # fmt: skip
    return vafx.fit_bins(g, splocs=False)


def _batched(fit):
    return jax.tree.map(lambda x: jnp.asarray(x)[None], fit)


# --- the synthetic gallery covers the circumplex ---------------------------------------


def test_default_gallery_covers_the_disc_with_20_frames_per_bin():
    va = gallery_labels(_facs.ALL, SynthConfig())  # the defaults: 20 subjects
    idx = np.clip(np.floor((va + 1) / 0.2).astype(int), 0, 9)
    counts = np.zeros((10, 10), int)
    np.add.at(counts, (idx[:, 0], idx[:, 1]), 1)
    c = -0.9 + 0.2 * np.arange(10)
    inside = c[:, None] ** 2 + c[None, :] ** 2 < 1
    assert inside.sum() == 80
    full = (counts[inside] >= 20).mean()
    assert full >= 0.9, (full, counts)
    # the quadrants the basic emotions leave thin: happy-excited, alarmed-tense
    assert counts[7, 7] >= 20 and counts[4, 9] >= 20 and counts[3, 8] >= 20


def test_every_prototype_reaches_its_full_intensity():
    t = np.arange(1, 25) / 24
    cfg = SynthConfig()
    for e, p in enumerate(_facs.ALL):
        inten, va = sequence_labels(cfg, 0, e, 0, p, t)
        assert inten.max() == 1.0, p.name
        apex = va[np.argmax(inten)]
        assert np.linalg.norm(apex) > 0.5 * np.linalg.norm(p.va), p.name


def test_affect_words_fill_the_quadrants():
    names = {p.name for p in _facs.AFFECT_WORDS}
    assert {"excited", "delighted", "alarmed", "tense", "afraid"} <= names
    for p in _facs.AFFECT_WORDS:
        assert abs(np.hypot(*p.va) - 0.9) < 1e-2 and p.source.startswith("Russell")


# --- expression replacement ---------------------------------------------------------


def test_fitted_expression_is_the_fit_minus_its_neutral(ict_model, astro):
    _, fit = astro
    e = np.asarray(fitted_expression(ict_model, _batched(fit)))[0]
    # from the model's arrays in float64: the weights on the scaled expression shapes
    beta = np.asarray(fit.expression, np.float64) * np.asarray(ict_model.expression_std, np.float64)
    want = np.tensordot(beta, np.asarray(ict_model.expression_basis, np.float64), 1)
    assert np.abs(want).max() > 0.5  # the astronaut's smile moves the face (model units: cm)
    np.testing.assert_allclose(e, want, atol=1e-4)


def test_replacement_removes_a_known_expression(ict_model, astro):
    """A face whose expression is known (the fit plus a planted smile) synthesized at a
    target: replacement puts the mesh where the smile-free face would go; adding does not."""
    img, fit = astro
    names = ict_model.expression_names
    smile = np.zeros(ict_model.num_expressions, np.float32)
    smile[[names.index("mouthSmile_L"), names.index("mouthSmile_R")]] = 0.6
    smiling = fit._replace(expression=jnp.clip(fit.expression + smile, 0, 1))
    zero = SynthesisConfig(intensity=0.0)
    plain = synthesize_batch(img[None], [(0.0, 0.0)], _zero_models(ict_model), ict_model,
                             fits=_batched(fit), config=zero)  # fmt: skip
    rep = synthesize_batch(img[None], [(0.0, 0.0)], _zero_models(ict_model), ict_model,
                           fits=_batched(smiling), config=zero)  # fmt: skip
    add = synthesize_batch(img[None], [(0.0, 0.0)], _zero_models(ict_model), ict_model,
                           fits=_batched(smiling),
                           config=SynthesisConfig(intensity=0.0, expression="add"))  # fmt: skip

    def implied(res):
        return np.array(
            [p if p else [np.nan] * 2 for p in res.sidecars[0][0]["landmarks"]["implied"]]
        )

    # replacement lands both on the same (neutral) mesh, whatever the photo showed
    np.testing.assert_allclose(implied(rep), implied(plain), atol=0.02)
    # adding keeps the smile: the mouth corners stay up and out
    corners = [48, 54]
    assert (implied(add)[corners, 1] < implied(rep)[corners, 1] - 1).all()
    removed = rep.sidecars[0][0]["removed_expression"]["weights"]
    assert removed["mouthSmile_L"] >= 0.6 and add.sidecars[0][0]["removed_expression"] is None


def _zero_models(model):
    """Bin models on the ICT face region whose every bin is the zero deformation."""
    from vafx._expression._bins import BinModels
    from vafx._model._template import template_from_model

    t = template_from_model(model, "face")
    nb, n = 100, t.num_vertices
    z = np.zeros((nb, 1), np.float32)
    grid = vafx.VAGrid(10)
    meta = dict(template_digest=t.digest(), vertices=n, units=t.units, model=t.model,
                region=t.region, grid=10, params={}, gallery="")  # fmt: skip
    return BinModels(np.zeros((nb, n, 3), np.float32), np.zeros((nb, 1, n, 3), np.float32),
                     z, z, z, z, np.asarray(grid.centres(), np.float32), np.ones(nb, np.int64),
                     np.zeros(nb, np.int64), np.ones(nb, np.int8), z, z, t.vertex_ids, meta)  # fmt: skip


@pytest.mark.slow
def test_smile_is_replaced_on_the_photo(ict_model, astro, means):
    """vafx[detect]: the astronaut smiles; a sad target takes the smile away (re-detected)."""
    pytest.importorskip("dlib", reason="re-detection needs vafx[detect] (dlib-bin)")
    pytest.importorskip("face_recognition_models", reason="needs face-recognition-models")
    img, fit = astro
    targets = [(-0.6, -0.3), (0.4, 0.7)]
    rep = synthesize_batch(img[None], targets, means, ict_model, fits=_batched(fit))
    add = synthesize_batch(img[None], targets, means, ict_model, fits=_batched(fit),
                           config=SynthesisConfig(expression="add"))  # fmt: skip
    src = vafx.detect_landmarks(img)
    iod = np.linalg.norm(src[36:42].mean(0) - src[42:48].mean(0))
    before = affect_cues(src, iod)
    sad = affect_cues(vafx.detect_landmarks(rep.images[0, 0]), iod)
    assert sad["corner_lift"] - before["corner_lift"] <= -0.03, (sad, before)
    sad_added = affect_cues(vafx.detect_landmarks(add.images[0, 0]), iod)
    assert sad["corner_lift"] < sad_added["corner_lift"]  # the smile survives addition only
    up = affect_cues(vafx.detect_landmarks(rep.images[0, 1]), iod)
    # the deformation opens the mouth (its landmark vertices, projected), and dlib does not
    # see it closed. dlib's inner-lip points sit on the teeth's edges where a mouth shows
    # teeth: at (0.4, 0.7) on the default bins it read +0.00 IOD with the photo's own
    # teeth (issue 37) and +0.05 with the flat dark interior before. How strongly a
    # judge reads the target is issue 38's.
    implied = np.array(rep.sidecars[0][1]["landmarks"]["implied"], float)
    fitted = np.array(rep.sidecars[0][1]["landmarks"]["fitted"], float)
    assert (implied[66, 1] - implied[62, 1]) - (fitted[66, 1] - fitted[62, 1]) >= 0.05 * iod
    assert up["mouth_open"] - before["mouth_open"] >= -0.01
    assert up["brow_height"] > before["brow_height"]
    for j in range(2):
        d = np.linalg.norm(vafx.face_descriptor(rep.images[0, j]) - vafx.face_descriptor(img))
        assert d < 0.6, d


# --- blending without halos ---------------------------------------------------------


def test_blend_leaves_unchanged_pixels_and_corrects_little(ict_model, astro, means):
    img, fit = astro
    targets = [(v, a) for v in (-0.6, 0.0, 0.6) for a in (-0.6, 0.6)]
    res = synthesize_batch(img[None], targets, means, ict_model, fits=_batched(fit))
    exprs = [vafx.expression_for(means, t)[0] for t in targets]
    deform = np.stack([vafx.full_deformation(ict_model, means, e) for e in exprs])[None]
    deform = deform - np.asarray(fitted_expression(ict_model, _batched(fit)))[:, None]
    r = render_faces(img[None], ict_model, _batched(fit), deform)
    for j in range(len(targets)):
        rendered = np.clip(np.rint(r.image[0, j] * 255), 0, 255).astype(np.uint8)
        same = ~r.blend_mask[0, j]
        np.testing.assert_array_equal(rendered[same], img[same])  # the mask is what changed
        diff = np.abs(res.images[0, j].astype(int) - img.astype(int)).max(-1)
        assert diff[same].max() <= 1  # pixels the render left alone stay within 1 level
        h = halo_measure(res.images[0, j], rendered, r.coverage[0, j])
        assert h["mean"] < 3 and h["blob"] < 0.01, h
        side = res.sidecars[0][j]["blend"]
        assert side["correction_mean"] == pytest.approx(h["mean"], abs=1e-3)
        assert side["solve"]["converged"] and 0 < side["solve"]["iterations"] <= 50
        assert side["solve"]["relative_residual"] <= 1e-3


def test_a_blend_that_does_not_converge_is_reported(ict_model, astro, means, monkeypatch, caplog):
    """A tolerance no 50 iterations reach: the sidecar says so and a warning names the photo."""
    from vafx._pipeline import _synthesis

    img, fit = astro
    monkeypatch.setattr(_synthesis, "BLEND_RTOL", 1e-12)
    with caplog.at_level("WARNING", logger="vafx"):
        res = synthesize_batch(img[None], [(0.6, 0.6)], means, ict_model, fits=_batched(fit),
                               names=["astro.png"])  # fmt: skip
    solve = res.sidecars[0][0]["blend"]["solve"]
    assert not solve["converged"] and 1 <= solve["iterations"] <= 50  # float32 stalls early
    assert 1e-12 < solve["relative_residual"] < 1e-2
    assert any("astro.png" in r.message and "did not converge" in r.message
               for r in caplog.records)  # fmt: skip


def test_halo_measure_finds_a_planted_blob():
    rendered = np.full((60, 60, 3), 100, np.uint8)
    face = np.zeros((60, 60), bool)
    face[10:50, 10:50] = True
    out = rendered.copy()
    assert halo_measure(out, rendered, face) == dict(mean=0.0, blob=0.0, max=0.0)
    out[20:30, 20:30] = 140  # 100 pixels off by 40, 6.25% of the face
    out[40, 40] = 200  # a lone pixel does not make the largest blob larger
    h = halo_measure(out, rendered, face)
    assert h["blob"] == pytest.approx(100 / 1600) and h["max"] == 100
    assert h["mean"] == pytest.approx((100 * 40 + 100) / 1600)


# --- shading that follows the geometry ---------------------------------------------


def test_lighting_of_a_planted_face_is_recovered(ict_model, astro):
    """The fitted face rendered under a known SH lighting with constant albedo (and 10%
    of its vertices given another albedo, as eyebrows and lips are): the lighting that
    render_faces estimates from the image is the planted one."""
    from vafx.kernels.raster import interpolate, raster_plan, rasterize

    from vafx._render._face import render_mesh, vertex_normals

    img, fit = astro
    mesh = render_mesh(ict_model)
    v = vafx.model_shape(ict_model, fit.identity, fit.expression)
    n = vertex_normals(v, mesh.faces)
    truth = np.array([[0.55, 0.05, 0.12, 0.25, 0.0, 0.03, 0.02, -0.04, -0.05]] * 3, np.float32)
    truth[1] *= 0.8
    truth[2] *= 0.65
    colours = np.array(sh_basis(n) @ truth.T)
    rng = np.random.default_rng(0)
    odd = rng.random(len(colours)) < 0.1
    colours[odd] *= rng.uniform(0.3, 0.7, (odd.sum(), 1))
    p = vafx.image_vertices(v, fit)
    h, w = img.shape[:2]
    fr = rasterize(p, mesh.faces, h, w, raster_plan(p[None], mesh.faces, h, w))
    photo = np.where(np.asarray(fr.triangle >= 0)[..., None],
                     np.asarray(interpolate(jnp.asarray(colours), mesh.faces, fr)), 0.3)  # fmt: skip
    photo = np.clip(np.rint(photo * 255), 0, 255).astype(np.uint8)
    r = render_faces(photo[None], ict_model, _batched(fit))
    got = r.lighting[0, 0]
    # the shading the lighting predicts over the visible normals, as the test of fit
    front = np.asarray(n @ fit.rotation[2]) > 0.3
    pred, want = np.asarray(sh_basis(n[front]) @ got.T), np.asarray(sh_basis(n[front]) @ truth.T)
    assert np.abs(pred - want).mean() < 0.01, np.abs(pred - want).mean()
    # and the colour of the light: the channels' ratios
    np.testing.assert_allclose(pred.mean(0) / pred.mean(0)[0], [1, 0.8, 0.65], atol=0.02)


def test_lighting_estimate_ignores_outliers():
    rng = np.random.default_rng(1)
    nrm = rng.normal(size=(3000, 3))
    nrm[:, 2] = np.abs(nrm[:, 2]) + 0.5  # a cone towards the camera, as a face is
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    truth = np.array([[0.6, 0.1, -0.05, 0.3, 0.02, 0.0, 0.03, 0.05, -0.02]], np.float32)
    y = np.array(sh_basis(jnp.asarray(nrm, jnp.float32)) @ truth.T)
    y[:300] = rng.uniform(0, 1, (300, 1))  # hair, glasses, specular spots
    got = estimate_lighting(jnp.asarray(y, jnp.float32), jnp.asarray(nrm, jnp.float32),
                            jnp.ones(3000, jnp.float32))  # fmt: skip
    # the coefficients trade off inside a cone of normals; the shading they predict does not
    pred = np.asarray(sh_basis(jnp.asarray(nrm, jnp.float32)) @ np.asarray(got).T)
    want = np.asarray(sh_basis(jnp.asarray(nrm, jnp.float32)) @ truth.T)
    err = np.abs(pred - want)[300:]  # on the inliers; the shading spans about 0.3 to 1
    assert err.mean() < 0.01 and err.max() < 0.05, (err.mean(), err.max())


@given(st.integers(0, 2**31 - 1))
def test_shading_ratio_is_one_where_the_normal_does_not_turn(seed):
    rng = np.random.default_rng(seed)
    nrm = rng.normal(size=(50, 3)).astype(np.float32)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    light = rng.normal(size=(3, 9)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(shading_ratio(light, nrm, nrm)), 1.0)
    turned = np.roll(nrm, 1, axis=0)
    r = np.asarray(shading_ratio(light, nrm, turned))
    # the reference: second-order SH shading as the quadratic form n^T M n of the homogeneous
    # normal (Ramamoorthi and Hanrahan 2001), on the channels' mean lighting; the ratio
    # clipped to RATIO_RANGE, 1 where the old shading is under 5% of the ambient term
    lv = light.astype(np.float64).mean(0)
    m = np.array([
        [lv[7], lv[4] / 2, lv[5] / 2, lv[1] / 2],
        [lv[4] / 2, -lv[7], lv[6] / 2, lv[2] / 2],
        [lv[5] / 2, lv[6] / 2, 3 * lv[8], lv[3] / 2],
        [lv[1] / 2, lv[2] / 2, lv[3] / 2, lv[0] - lv[8]],
    ])  # fmt: skip

    def shade(n):
        h = np.c_[n.astype(np.float64), np.ones(len(n))]
        return np.einsum("pi,ij,pj->p", h, m, h)

    old, new = shade(nrm), shade(turned)
    ok = old > 0.05 * max(lv[0], 1e-6)
    want = np.where(ok, np.clip(new / np.where(ok, old, 1.0), *RATIO_RANGE), 1.0)
    np.testing.assert_allclose(r, want, rtol=2e-4, atol=2e-5)


def test_zero_deformation_with_shading_gives_the_photo_back_exactly(ict_model, astro):
    from vafx._render._face import PHOTO

    img, fit = astro
    on = render_faces(img[None], ict_model, _batched(fit), shade=True)
    off = render_faces(img[None], ict_model, _batched(fit), shade=False)
    np.testing.assert_array_equal(on.image, off.image)  # shading changes nothing unmoved
    seen = on.source[0, 0] == PHOTO
    err = np.abs(on.image[0, 0] - img / np.float32(255))[seen].mean()
    assert err < 2 / 255, err


def test_raised_surface_is_reshaded(ict_model, astro):
    """A smile turns the cheeks: shading changes them, without shading it does not."""
    img, fit = astro
    names = ict_model.expression_names
    beta = np.zeros(ict_model.num_expressions, np.float32)
    beta[[names.index("cheekSquint_L"), names.index("cheekSquint_R")]] = 1.0
    v0 = vafx.model_shape(ict_model, fit.identity, fit.expression)
    v1 = vafx.model_shape(ict_model, fit.identity, jnp.clip(fit.expression + beta, 0, 1))
    d = (np.asarray(v1) - np.asarray(v0))[None, None]
    on = render_faces(img[None], ict_model, _batched(fit), d, shade=True)
    off = render_faces(img[None], ict_model, _batched(fit), d, shade=False)
    changed = np.abs(on.image - off.image).max(-1) > 2 / 255
    assert changed.sum() > 200
    assert (on.source[changed] != 0).all()  # only the re-rendered face is re-shaded


# --- judges ------------------------------------------------------------------------


def test_affect_cues_measure_in_inter_ocular_distances():
    p = np.zeros((68, 2))
    p[36:42] = [0, 0]
    p[42:48] = [10, 0]
    p[17:27, 1] = -3
    p[[51, 57, 62, 66], 1] = [20, 24, 21, 23]
    p[[48, 54], 1] = 21
    c = affect_cues(p)
    assert c == pytest.approx(dict(corner_lift=0.1, mouth_open=0.2, brow_height=0.3))
    assert affect_cues(p, iod=20)["mouth_open"] == pytest.approx(0.1)


@pytest.mark.slow
def test_cli_evaluate_synthesis(ict_dir, ict_model, astro, means, tmp_path):
    """vafx[detect]: `vafx evaluate synthesis` over synthesize outputs writes its CSV and summary."""
    pytest.importorskip("dlib", reason="the judges need vafx[detect] (dlib-bin)")
    pytest.importorskip("face_recognition_models", reason="needs face-recognition-models")
    import subprocess
    import sys

    import imageio.v3 as iio

    img, fit = astro
    iio.imwrite(tmp_path / "astro.png", img)
    res = synthesize_batch(img[None], [(0.7, 0.3), (-0.6, -0.3)], means, ict_model,
                           fits=_batched(fit), names=[str(tmp_path / "astro.png")])  # fmt: skip
    (tmp_path / "out").mkdir()
    for j in range(2):
        iio.imwrite(tmp_path / "out" / f"o{j}.png", res.images[0, j])
        (tmp_path / "out" / f"o{j}.json").write_text(json.dumps(res.sidecars[0][j]))
    env = {**__import__("os").environ, "VAFX_DATA": str(ict_dir.parent)}
    r = subprocess.run([sys.executable, "-m", "vafx", "evaluate", "synthesis", "out"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "out" / "judges.csv").read_text().splitlines()
    assert len(rows) == 3 and "identity" in rows[0] and "motion_err_mouth" in rows[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 2 and summary["identity_max"] < 0.6
    # an affect judge the user supplies (here a stand-in the test writes): each output's
    # face and its photo's, cut around the photo's landmarks, and the agreement reported
    from test_affect_judge import STAND_IN

    from vafx._evaluate._affect_judge import face_crop

    (tmp_path / "stand_in.py").write_text(STAND_IN)
    r = subprocess.run([sys.executable, "-m", "vafx", "evaluate", "synthesis", "out",
                        "--judge", "stand_in.py:judge", "-o", "judged"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "valence change vs target r" in r.stdout and "arousal change" in r.stdout
    with open(tmp_path / "judged" / "judges.csv") as f:
        judged = {Path(row["image"]).name: row for row in __import__("csv").DictReader(f)}
    lm = vafx.detect_landmarks(img)
    for j in range(2):
        face = face_crop(res.images[0, j], lm, 32).astype(float) / 255
        want = 2 * face[..., :2].mean((0, 1)) - 1
        got = [float(judged[f"o{j}.png"][k]) for k in ("judged_valence", "judged_arousal")]
        np.testing.assert_allclose(got, want, atol=1e-6)
    summary = json.loads((tmp_path / "judged" / "summary.json").read_text())
    assert summary["judge"]["n"] == 2 and summary["judge"]["name"] == "stand_in.py:judge"
    r = subprocess.run([sys.executable, "-m", "vafx", "evaluate", "synthesis", "out",
                        "--judge", "stand_in.py:broken", "-o", "judged"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr and "float[3, 2]" in r.stderr
    r = subprocess.run([sys.executable, "-m", "vafx", "evaluate", "synthesis", "nothing"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr
    with pytest.raises(vafx.VafxError, match="no synthesized images"):
        evaluate_synthesis(tmp_path / "photos_missing")


def test_outputs_of_every_target_kind_are_evaluated(ict_model, astro, means, tmp_path):
    """An emotion's prototype or AUs have no target V-A: the row takes the label, if any."""
    pytest.importorskip("dlib", reason="the judges need vafx[detect] (dlib-bin)")
    pytest.importorskip("face_recognition_models", reason="needs face-recognition-models")
    import csv

    import imageio.v3 as iio

    img, fit = astro
    iio.imwrite(tmp_path / "astro.png", img)
    targets = [vafx.Target(emotion="sadness", via="prototype"), vafx.Target(aus={26: 0.6})]
    res = synthesize_batch(img[None], targets, means, ict_model, fits=_batched(fit),
                           names=[str(tmp_path / "astro.png")])  # fmt: skip
    (tmp_path / "out").mkdir()
    for j in range(2):
        iio.imwrite(tmp_path / "out" / f"o{j}.png", res.images[0, j])
        (tmp_path / "out" / f"o{j}.json").write_text(json.dumps(res.sidecars[0][j]))
    evaluate_synthesis(tmp_path / "out")
    with open(tmp_path / "out" / "judges.csv") as f:
        rows = {Path(r["image"]).name: r for r in csv.DictReader(f)}
    sad = rows["o0.png"]
    assert sad["emotion"] == "sadness"
    want = vafx.Target(emotion="sadness").describe()["placement_va"]
    np.testing.assert_allclose([float(sad["valence"]), float(sad["arousal"])], want, atol=1e-6)
    au = rows["o1.png"]
    assert np.isnan(float(au["valence"])) and float(au["identity"]) < 0.6


def test_a_raster_plan_that_drops_triangles_is_an_error_naming_the_photo(
    ict_model, astro, means, monkeypatch
):
    from vafx._render import _face

    img, fit = astro
    counted = []
    real_count = _face.plan_overflow
    monkeypatch.setattr(_face, "plan_overflow", lambda *a: counted.append(1) or real_count(*a))
    # a plan grown from the drawn faces' own (capacities larger than they need, after other
    # faces): nothing counted again on the hot path
    big = _face._grown_plan

    def grown(key, plan):  # doubled here only, not stored as the sizes later tests grow from
        p = big(key, plan)
        return p._replace(levels=tuple(2 * c for c in p.levels))

    monkeypatch.setattr(_face, "_grown_plan", grown)
    synthesize_batch(img[None], [(0.6, 0.6)], means, ict_model, fits=_batched(fit))
    assert counted == []
    real = big

    def short(key, plan):  # as if the plan had been made for other faces
        p = real(key, plan)
        return p._replace(levels=tuple(c // 4 for c in p.levels))

    monkeypatch.setattr(_face, "_grown_plan", short)
    with pytest.raises(vafx.VafxError, match=r"astro\.png: the raster plan .* leave out \d+"):
        synthesize_batch(img[None], [(0.6, 0.6)], means, ict_model, fits=_batched(fit),
                         names=["astro.png"])  # fmt: skip
    assert counted  # counted where the plan was short
