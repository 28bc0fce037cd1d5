"""End-to-end synthesis: photo + target V-A -> photo with that affect."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data
from vafx.kernels.splocs import SplocsParams

import vafx
from vafx._render._face import render_face


@pytest.fixture(scope="module")
def setup(ict_model, tmp_path_factory):
    g = vafx.synthesize_gallery(
        tmp_path_factory.mktemp("g") / "g", ict_model, vafx.SynthConfig(subjects=2, frames=6)
    )
    # bin means only: synthesis does not sample here (a SPLOCS fit took 28 s of the setup)
    models = vafx.fit_bins(g, min_frames=3, splocs=False)
    img = data.astronaut()
    from importlib import resources

    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = vafx.read_pts(p)
    fit = vafx.fit_landmarks(ict_model, pts, img.shape[:2])
    return models, img, fit


def test_output_equals_input_outside_the_face(ict_model, setup):
    models, img, fit = setup
    res = vafx.synthesize(img, (0.8, 0.4), models, ict_model, fit=fit)
    d = vafx.full_deformation(ict_model, models, vafx.expression_for(models, (0.8, 0.4))[0])
    d = d - np.asarray(vafx.fitted_expression(ict_model, jax.tree.map(lambda x: x[None], fit)))[0]
    r = render_face(img, ict_model, fit, d)
    cover, still = r.coverage, ~r.coverage & (r.motion == 0)
    assert res.image.shape == img.shape and res.image.dtype == np.uint8
    diff = np.abs(res.image.astype(int) - img.astype(int))
    # within 1/255 outside the rendered face and the motion carried around it
    assert diff[still].max() <= 1 and still.mean() > 0.8
    assert diff[cover].mean() > 1  # and the face did change
    assert res.sidecar["bin"] == res.bin and res.sidecar["label_va"] == list(res.label)
    assert abs(res.sidecar["fit"]["mean_landmark_error_px"]) < 3


def test_zero_deformation_returns_the_photo(ict_model, setup):
    models, img, fit = setup
    # adding nothing to the photo's own expression: the photo back
    cfg = vafx.SynthesisConfig(intensity=0.0, expression="add")
    res = vafx.synthesize(img, (0.0, 0.0), models, ict_model, fit=fit, config=cfg)
    # every pixel within one grey level, the face's too (not a mean over the image)
    assert np.abs(res.image.astype(int) - img.astype(int)).max() <= 1
    skin = res.sidecar["skin"]
    assert skin["pixels"] > 5000 and abs(skin["brightness_change"]) < 0.05
    assert abs(skin["detail_ratio"] - 1) < 0.01


def test_the_photo_skin_survives_synthesis(ict_model, setup):
    """Issue 37: over the skin that moved little, brightness within 3 grey levels and at
    least 0.85 of the photo's fine-detail energy, at targets across the plane."""
    models, img, fit = setup
    for va in ((0.8, 0.5), (-0.6, -0.3)):
        side = vafx.synthesize(img, va, models, ict_model, fit=fit).sidecar["skin"]
        assert side["pixels"] > 2000, side
        assert abs(side["brightness_change"]) <= 3.0 and side["detail_ratio"] >= 0.85, side


def test_continuous_control_is_smooth(setup):
    models, _, _ = setup
    # across the bin edge at valence 0.4: the bins' means jump, the interpolation
    # moves by about a tenth of that for a step of a tenth of a bin
    a = vafx.expression_for(models, (0.39, 0.1), continuous=True)[0]
    b = vafx.expression_for(models, (0.41, 0.1), continuous=True)[0]
    c = vafx.expression_for(models, (0.39, 0.1))[0]
    c2 = vafx.expression_for(models, (0.41, 0.1))[0]
    jump = np.abs(c - c2).max()
    assert jump > 0
    assert np.abs(a - b).max() <= 0.2 * jump


@pytest.mark.slow
def test_batch_equals_single_calls(ict_model, setup):
    models, img, fit = setup
    photos = np.stack([img, img[:, ::-1]])
    fits = jax.tree.map(lambda *x: jnp.stack(x), fit, vafx.fit_landmarks(
        ict_model, _mirrored(fit.landmarks, img.shape[1]), img.shape[:2]))  # fmt: skip
    targets = [(0.8, 0.4), (-0.5, 0.5), (0.1, -0.7)]
    res = vafx.synthesize_batch(photos, targets, models, ict_model, fits=fits, names=["a", "b"])
    assert res.images.shape == (2, 3, *img.shape) and res.images.dtype == np.uint8
    for i in range(2):
        for j, va in enumerate(targets):
            one = vafx.synthesize(photos[i], va, models, ict_model,
                                  fit=jax.tree.map(lambda x: x[i], fits))  # fmt: skip
            # the same image up to rounding: the blend's crop (the batch's union box)
            # differs, and a handful of pixels sit at a visibility test's threshold
            diff = np.abs(one.image.astype(int) - res.images[i, j])
            assert (diff > 1).mean() < 1e-4 and diff.mean() < 0.1, ((diff > 1).sum(), diff.mean())
            assert one.bin == res.bins[j] and one.label == tuple(res.labels[j])
            assert res.sidecars[i][j]["photo"] == "ab"[i] and res.sidecars[i][j]["bin"] == one.bin


def _mirrored(landmarks, width):
    from vafx._fit._landmarks import mirror_landmarks

    return mirror_landmarks(landmarks, width)


@pytest.mark.slow  # 20-25 s: a subprocess's compile, or dlib (fast subset < 3 min)
def test_detected_landmarks_move_as_the_deformation_implies(ict_model, setup):
    """vafx[detect]: a happy bin added to the photo (the paper's mode) lifts the re-detected
    mouth corners; identity is kept."""
    pytest.importorskip("dlib", reason="re-detection needs vafx[detect] (dlib-bin)")
    pytest.importorskip("face_recognition_models", reason="needs face-recognition-models")
    models, img, fit = setup
    lm = np.asarray(ict_model.landmarks)
    before = vafx.detect_landmarks(img)
    e0 = vafx.face_descriptor(img)
    targets = [(0.8, 0.3), (0.0, 0.9), (-0.6, -0.4)]
    res = vafx.synthesize_batch(img[None], targets, models, ict_model,
                                fits=jax.tree.map(lambda x: x[None], fit),
                                config=vafx.SynthesisConfig(expression="add"))  # fmt: skip
    v0 = vafx.model_shape(ict_model, fit.identity, fit.expression)
    p0 = np.asarray(vafx.image_vertices(v0, fit))[lm, :2]
    mouth = slice(48, 68)
    for j, va in enumerate(targets):
        d = vafx.full_deformation(ict_model, models, vafx.expression_for(models, va)[0])
        implied = np.asarray(vafx.image_vertices(v0 + d, fit))[lm, :2] - p0
        moved = vafx.detect_landmarks(res.images[0, j]) - before
        cos = np.sum(implied[mouth] * moved[mouth]) / np.sqrt(
            np.sum(implied[mouth] ** 2) * np.sum(moved[mouth] ** 2)
        )
        assert cos > 0.4, (va, cos)  # the mouth moves the way the mesh does
        if va == (0.8, 0.3):  # happiness: both mouth corners go up (y down the image)
            assert (implied[[48, 54], 1] < -2).all() and (moved[[48, 54], 1] <= -1).all()
        dist = np.linalg.norm(vafx.face_descriptor(res.images[0, j]) - e0)
        assert dist < 0.6, (va, dist)  # still the same person for dlib's face recognition


def test_topology_mismatch_is_a_clear_error(ict_model, tiny_model, tmp_path):
    g = vafx.synthesize_gallery(
        tmp_path / "t", tiny_model, vafx.SynthConfig(subjects=1, frames=3, region=None)
    )
    tiny_bins = vafx.fit_bins(g, SplocsParams(num_components=2, num_iters=1), min_frames=2)
    with pytest.raises(vafx.VafxError, match="topology mismatch"):
        vafx.full_deformation(ict_model, tiny_bins, tiny_bins.means[0])


def test_mouth_interior_moves_as_the_models_own_shapes(ict_model, setup):
    """The teeth, tongue and mouth socket move as the ICT model's shapes move them for the
    template deformation's blend: a jaw drop carries the lower teeth and tongue down, the
    upper teeth stay with the skull, and a smile (lips only) leaves every tooth in place."""
    models = setup[0]
    names = list(ict_model.expression_names)
    basis = np.asarray(ict_model.expression_basis, np.float64)
    ids = models.vertex_ids
    teeth = np.asarray(ict_model.regions["teeth"])
    tongue = np.setdiff1d(np.asarray(ict_model.regions["gums_tongue"]), ids)
    w = np.zeros(len(names))
    w[names.index("jawOpen")], w[names.index("mouthSmile_L")] = 0.5, 0.8
    blend = np.einsum("k,knc->nc", w, basis)
    d = vafx.full_deformation(ict_model, models, blend[ids].astype(np.float32))
    np.testing.assert_array_equal(d[ids], blend[ids].astype(np.float32))
    np.testing.assert_allclose(d[teeth], blend[teeth], atol=2e-3)  # cm; the shapes reach 4
    np.testing.assert_allclose(d[tongue], blend[tongue], atol=2e-3)
    drop = np.linalg.norm(d[teeth], axis=1)
    assert np.quantile(drop, 0.9) > 1.0 and np.quantile(drop, 0.1) < 0.05  # lower down, upper not
    eyes = np.asarray(ict_model.regions["eyeball_left"])
    assert not d[eyes].any()
    smile = np.zeros(len(names))
    smile[names.index("mouthSmile_L")] = smile[names.index("mouthSmile_R")] = 1.0
    d = vafx.full_deformation(ict_model, models,
                              np.einsum("k,knc->nc", smile, basis)[ids].astype(np.float32))  # fmt: skip
    assert np.abs(d[teeth]).max() < 2e-3  # the lips move, the teeth do not


@pytest.mark.slow  # 20-25 s: a subprocess's compile, or dlib (fast subset < 3 min)
def test_cli_synthesize(ict_dir, ict_model, setup, tmp_path):
    import subprocess
    import sys

    import imageio.v3 as iio

    models, img, _ = setup
    vafx.save_bin_models(tmp_path / "bins.npz", models)
    iio.imwrite(tmp_path / "astro.png", img)
    from importlib import resources

    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        vafx.write_pts(tmp_path / "astro.pts", vafx.read_pts(p))
    env = {**__import__("os").environ, "VAFX_DATA": str(ict_dir.parent)}
    cmd = [sys.executable, "-m", "vafx", "synthesize", "astro.png", "--valence", "0.7", "--arousal", "0.3",
           "--bins", "bins.npz", "--landmarks", "astro.pts", "-o", "out.png"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    # the command's image is the library's, pixel for pixel, on the same photo and landmarks
    lib = vafx.synthesize(img, (0.7, 0.3), models, ict_model,
                          landmarks=vafx.read_pts(tmp_path / "astro.pts"))  # fmt: skip
    np.testing.assert_array_equal(iio.imread(tmp_path / "out.png"), lib.image)
    side = __import__("json").loads((tmp_path / "out.json").read_text())
    assert side["bin"] == lib.bin and side["label_va"] == [float(v) for v in lib.label]
    r = subprocess.run(
        cmd[:6] + ["1.5"] + cmd[7:], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "1.5" in r.stderr


AUGMENT_KILLER = """
import os, signal, sys
import vafx
from vafx._pipeline._augment import augment
models = vafx.load_bin_models(sys.argv[3])
model = vafx.load_model("ict")
stop = int(sys.argv[5])
def progress(done, total):
    if done == stop:
        os.kill(os.getpid(), signal.SIGKILL)
augment(sys.argv[1], sys.argv[2], models, model, bins=[45, 55, 67], landmarks_dir=sys.argv[4],
        progress=progress, batch=2)
"""


@pytest.mark.slow
def test_augment_killed_and_restarted_equals_one_run(ict_dir, setup, tmp_path):
    import subprocess
    import sys

    import imageio.v3 as iio

    models, img, _ = setup
    vafx.save_bin_models(tmp_path / "bins.npz", models)
    (tmp_path / "photos").mkdir()
    (tmp_path / "lm").mkdir()
    from importlib import resources

    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = vafx.read_pts(p)
    for name, im in (("a", img), ("b", img[:, ::-1].copy())):
        iio.imwrite(tmp_path / "photos" / f"{name}.png", im)
        vafx.write_pts(tmp_path / "lm" / f"{name}.pts",
                       _mirrored(pts, img.shape[1]) if name == "b" else pts)  # fmt: skip
    iio.imwrite(
        tmp_path / "photos" / "c.png", np.full((64, 64, 3), 90, np.uint8)
    )  # no .pts: skipped
    env = {**__import__("os").environ, "VAFX_DATA": str(ict_dir.parent)}
    args = [
        str(tmp_path / "photos"),
        str(tmp_path / "killed"),
        str(tmp_path / "bins.npz"),
        str(tmp_path / "lm"),
    ]
    # killed after photo b's first chunk of two bins (the second, one bin padded to two, not done)
    r = subprocess.run([sys.executable, "-c", AUGMENT_KILLER, *args, "5"], cwd=tmp_path, env=env)
    assert r.returncode == -9
    assert not (tmp_path / "killed" / "manifest.json").exists()
    model = vafx.load_model(str(ict_dir))
    assert len(list((tmp_path / "killed" / "images").glob("b__*.png"))) == 2
    whole = vafx.augment(tmp_path / "photos", tmp_path / "whole", models, model, bins=[45, 55, 67],
                         landmarks_dir=tmp_path / "lm", batch=2)  # fmt: skip
    resumed = vafx.augment(tmp_path / "photos", tmp_path / "killed", models, model, bins=[45, 55, 67],
                           landmarks_dir=tmp_path / "lm", batch=2)  # fmt: skip
    assert whole["images"] == 6 and whole["skipped"] == 1
    assert resumed["files"] == whole["files"]  # same files, same bytes
    labels = (tmp_path / "whole" / "labels.csv").read_text().splitlines()
    assert len(labels) == 7 and labels[0].startswith("image,source_photo,subject,valence,arousal")
    assert "c.png" in (tmp_path / "whole" / "skipped.csv").read_text()


@pytest.mark.slow
def test_many_photos_and_targets_in_one_call(ict_model, setup, tmp_path):
    """Several photos x a grid: predictable names, sidecars, one sheet per photo, same as single calls."""
    from importlib import resources

    import imageio.v3 as iio

    from vafx._pipeline._synthesize_files import grid_targets, output_name, synthesize_files

    models, img, _ = setup
    (tmp_path / "lm").mkdir()
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = vafx.read_pts(p)
    for name in ("a", "b"):
        iio.imwrite(tmp_path / f"{name}.png", img)
        vafx.write_pts(tmp_path / "lm" / f"{name}.pts", pts)
    targets, lv, la = grid_targets(2)
    np.testing.assert_allclose(targets, [[-0.8, 0.8], [0.8, 0.8], [-0.8, -0.8], [0.8, -0.8]])
    res = synthesize_files([tmp_path / "a.png", tmp_path / "b.png"], targets, tmp_path / "out",
                           models, ict_model, landmarks=tmp_path / "lm", grid=(lv, la),
                           sheet=True)  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "out").glob("*__v*.png"))
    assert names == sorted(output_name(f"{n}.png", t) for n in "ab" for t in targets)
    assert output_name("x/a.png", (0.7, -0.25)) == "a__v+0.70_a-0.25.png"
    assert len(list((tmp_path / "out").glob("*.json"))) == 8
    assert sorted(p.name for p in res["sheets"]) == ["a__sheet.png", "b__sheet.png"]
    sheet = iio.imread(res["sheets"][0])
    assert sheet.shape[0] > 300 and sheet.shape[1] > 400  # a figure, with axes
    one = vafx.synthesize(img, targets[1], models, ict_model, landmarks=pts)
    got = iio.imread(tmp_path / "out" / output_name("b.png", targets[1]))
    assert (np.abs(got.astype(int) - one.image.astype(int)) > 1).mean() < 1e-4


def test_targets_csv_and_bad_targets(tmp_path):
    from vafx._errors import DataFileError
    from vafx._pipeline._synthesize_files import read_targets

    (tmp_path / "t.csv").write_text("valence,arousal\n0.5,0.2\n-0.1,0.9\n")
    np.testing.assert_allclose(read_targets(tmp_path / "t.csv"), [[0.5, 0.2], [-0.1, 0.9]])
    (tmp_path / "bad.csv").write_text("0.5,0.2\n0.5,1.5\n")
    with pytest.raises(DataFileError, match=r"bad.csv.*row 2"):
        read_targets(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("0.5\n")
    with pytest.raises(DataFileError, match="row 1"):
        read_targets(tmp_path / "bad2.csv")


def test_cli_target_errors_are_one_line(tmp_path, capsys):
    from vafx._cli import main

    (tmp_path / "p.png").write_bytes(b"")
    for argv, words in [
        (["--valence", "0.5"], "in pairs"),
        (["--valence", "0.5", "--arousal", "0.1", "--grid", "3"], "one way"),
        ([], "one way"),
    ]:
        assert main(["synthesize", str(tmp_path / "p.png"), *argv, "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


@pytest.mark.slow
def test_same_bytes_with_an_empty_cache_a_grown_bucket_and_a_warm_cache(bins, ict_dir, tmp_path):
    """`vafx synthesize` on one photo: what the caches held never changes the output.

    Run 1: empty caches (programs traced and compiled). Run 2: every size bucket grown
    (the Poisson crop and the raster plan, as after larger faces in other processes), so
    other programs on larger padded arrays. Run 3: the caches as run 2 left them.
    """
    import json
    import os
    import subprocess
    import sys
    from importlib import resources

    import imageio.v3 as iio

    iio.imwrite(tmp_path / "astro.png", data.astronaut())
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        vafx.write_pts(tmp_path / "astro.pts", vafx.read_pts(p))
    vafx.save_bin_models(tmp_path / "bins.npz", bins)
    env = {**os.environ, "VAFX_DATA": str(ict_dir.parent), "VAFX_CACHE": str(tmp_path / "c"),
           "VAFX_JAX_CACHE": str(tmp_path / "jax"), "JAX_PLATFORMS": "cpu"}  # fmt: skip
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def run(out):
        cmd = [sys.executable, "-m", "vafx", "synthesize", "astro.png", "--bins", "bins.npz",
               "--landmarks", "astro.pts", "--valence", "0.6", "--arousal", "0.5", "-o", out]  # fmt: skip
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return (tmp_path / out).read_bytes()

    empty = run("a.png")
    sizes = tmp_path / "jax" / "vafx-programs" / "sizes.json"
    table = json.loads(sizes.read_text())
    assert any(k.startswith("synthesis:") for k in table) and any(
        k.startswith("raster:") for k in table
    )
    grown = {k: [v + 32 if k.startswith("synthesis:") else 2 * v for v in vs]
             for k, vs in table.items()}  # fmt: skip
    sizes.write_text(json.dumps(grown))
    assert run("b.png") == empty
    assert json.loads(sizes.read_text()) == grown  # the grown buckets were the ones used
    assert run("c.png") == empty
