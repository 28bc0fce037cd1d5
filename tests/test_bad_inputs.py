"""A corpus of bad inputs, made at test time: each gets a clear error, a skip with its reason,
or a correct result, never a plausible wrong one (docs/reliability.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from _photos import astronaut_pts
from skimage import data

import vafx
from vafx._cli import main


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# ---- metrics and evaluation --------------------------------------------------------------


def test_ccc_of_nan_is_nan_not_one():
    x = np.array([[1.0], [np.nan], [2.0]], np.float32)
    y = np.array([[1.0], [2.0], [3.0]], np.float32)
    assert np.isnan(np.asarray(vafx.kernels.metrics.ccc(x, y))).all()
    assert np.isnan(np.asarray(vafx.kernels.metrics.ccc(y, x))).all()
    assert np.asarray(vafx.kernels.metrics.ccc(y * 0 + 2, y * 0 + 2)) == 1.0  # one constant


def test_dataset_with_a_nan_label_names_file_and_line(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    csv = tmp_path / "labels.csv"
    csv.write_text("image,subject,valence,arousal\na.png,s1,0.1,0.2\na.png,s2,nan,0.2\n")
    from vafx._evaluate._regressor import load_dataset

    with pytest.raises(vafx.DataFileError, match=r"labels.csv: line 3: valence/arousal must be"):
        load_dataset(csv)
    csv.write_text("image,subject,valence,arousal\n")
    with pytest.raises(vafx.DataFileError, match="no rows"):
        load_dataset(csv)


def test_va_correlation_refuses_nan_features():
    pytest.importorskip("sklearn")
    from vafx._evaluate._protocols import va_correlation

    f = np.ones((6, 3), np.float32)
    f[2, 1] = np.nan
    with pytest.raises(ValueError, match="features: holds NaN"):
        va_correlation(f, np.zeros((6, 2)), np.arange(6) % 2, np.ones(6, bool), components=(2,))


def test_empty_medians_are_nan():
    m = np.asarray(vafx.VAGrid().medians(np.zeros((0, 2), np.float32)))
    assert m.shape == (10, 10, 2) and np.isnan(m).all()


# ---- landmarks that do not belong to the photo ---------------------------------------------


@pytest.mark.parametrize(
    "case, match",
    [
        ("one_far", r"1 of 68 landmarks lie outside the 512 x 512 photo \(landmark 8 at x=\d+, y=5000"),
        ("all_off", "68 of 68 landmarks lie outside"),
        ("zeros", "degenerate"),
        ("line", "on one line"),
        ("inf", "infinite"),
    ],
)  # fmt: skip
def test_landmarks_that_cannot_belong_to_the_photo(ict_model, case, match):
    pts = astronaut_pts()
    if case == "one_far":
        pts[8, 1] = 5000
    elif case == "all_off":
        pts = pts + 2000
    elif case == "zeros":
        pts = np.zeros_like(pts)
    elif case == "line":
        pts[:, 1] = 100 + 0.5 * pts[:, 0]
    elif case == "inf":
        pts[3, 0] = np.inf
    with pytest.raises(vafx.FitError, match=match) as e:
        vafx.fit_landmarks(ict_model, pts, (512, 512), names=["astronaut.png"])
    assert str(e.value).startswith("astronaut.png: ")


def test_image_size_must_be_height_and_width(ict_model):
    with pytest.raises(
        ValueError, match=r"image_size: .*got shape \(3,\) \(pass image.shape\[:2\]\)"
    ):
        vafx.fit_landmarks(ict_model, astronaut_pts(), (512, 512, 3))
    with pytest.raises(ValueError, match="must be positive"):
        vafx.fit_landmarks(ict_model, astronaut_pts(), (0, 512))
    with pytest.raises(ValueError, match="68 iBUG points"):
        vafx.fit_landmarks(ict_model, astronaut_pts()[:67], (512, 512))


def test_a_fit_far_from_its_landmarks_fails_its_check(ict_model):
    """Points scattered at random in the photo are no face: the check refuses, force keeps it."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(100, 400, (68, 2)).astype(np.float32)
    with pytest.raises(vafx.FitError, match="inter-ocular distances"):
        vafx.fit_landmarks(ict_model, pts, (512, 512))
    fit = vafx.fit_landmarks(ict_model, pts, (512, 512), check=False)
    assert np.isfinite(np.asarray(fit.cost)).all()


@pytest.mark.slow
def test_one_wrong_landmark_barely_moves_the_robust_fit(ict_model):
    """Measured: a mouth corner moved 120 px moves the other fitted landmarks 0.2 px (3 px with
    least squares); docs/reliability.md."""
    pts = astronaut_pts()
    moved = pts.copy()
    moved[48, 1] += 120
    shift = {}
    for robust in (None, 10.0):
        cfg = vafx.FitConfig(robust=robust)
        a = np.asarray(vafx.fit_landmarks(ict_model, pts, (512, 512), cfg).landmarks)
        b = np.asarray(vafx.fit_landmarks(ict_model, moved, (512, 512), cfg).landmarks)
        shift[robust] = np.linalg.norm(a - b, axis=1)[np.arange(68) != 48].mean()
    assert shift[10.0] < 0.5 < 2.0 < shift[None]


def test_pts_with_67_points_names_the_file(tmp_path):
    p = vafx.write_pts(tmp_path / "face.pts", astronaut_pts()[:67])
    with pytest.raises(
        vafx.DataFileError, match=r"face.pts: holds 67 points; fitting needs the 68"
    ):
        vafx.read_pts(p, points=68)


# ---- files that are not what they claim ----------------------------------------------------


def test_unreadable_photos_say_why(tmp_path):
    import imageio.v3 as iio

    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image\n" * 40)
    iio.imwrite(tmp_path / "a.png", data.astronaut())
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:30000])
    for name, match in (("empty.png", "is empty"), ("text.png", "not an image format"),
                        ("cut.png", "truncated"), ("none.png", "no such file")):  # fmt: skip
        with pytest.raises(vafx.DataFileError, match=match) as e:
            vafx.read_photo(tmp_path / name)
        assert "pyav" not in str(e.value) and name in str(e.value)


def test_truncated_bins_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bins.npz"
    for content in (b"PK\x03\x04" + b"\x00" * 100, b"", b"not a zip"):
        bad.write_bytes(content)
        with pytest.raises(vafx.DataFileError, match="bins.npz: not a readable vafx bin-models"):
            vafx.load_bin_models(bad)


def test_cli_without_the_detector_is_one_line(tmp_path, capsys, monkeypatch, ict_dir):
    import imageio.v3 as iio

    from vafx._fit import _landmarks

    def missing():
        raise ImportError('landmark detection needs the optional extra: pip install "vafx[detect]"')

    monkeypatch.setattr(_landmarks, "_dlib_models", missing)
    monkeypatch.setenv("VAFX_DATA", str(ict_dir.parent))
    iio.imwrite(tmp_path / "a.png", data.astronaut())
    rc = main(["fit", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.obj")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert (
        err.strip()
        == 'vafx: error: landmark detection needs the optional extra: pip install "vafx[detect]"'
    )


# ---- silent choices made loud --------------------------------------------------------------


def test_header_only_annotations_are_an_error(tmp_path, ict_model):
    (tmp_path / "meshes").mkdir()
    csv = tmp_path / "frames.csv"
    csv.write_text("subject,sequence,frame,valence,arousal\n")
    t = vafx.template_from_model(ict_model, "face")
    with pytest.raises(vafx.DataFileError, match="frames.csv: holds a header and no frames"):
        vafx.import_meshes(tmp_path / "g", tmp_path / "meshes", csv, t)
    assert not (tmp_path / "g").exists()


def test_an_expressive_neutral_chosen_by_the_rule_is_named(tmp_path, ict_model, caplog):
    t = vafx.template_from_model(ict_model, "face")
    (tmp_path / "m" / "s1" / "q1").mkdir(parents=True)
    rows = ["subject,sequence,frame,valence,arousal"]
    for f, va in enumerate([(0.8, 0.6), (0.7, 0.5), (0.6, 0.4)]):
        vafx.export_mesh(tmp_path / "m" / "s1" / "q1" / f"{f}.obj", t.vertices + 0.01 * f, t.faces)
        rows.append(f"s1,q1,{f},{va[0]},{va[1]}")
    (tmp_path / "frames.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="vafx"):
        vafx.import_meshes(tmp_path / "g", tmp_path / "m", tmp_path / "frames.csv", t)
    text = caplog.text
    assert "1 of 1 sequences mark no neutral frame" in text
    assert "s1/q1 frame 0 (V-A +0.80, +0.60; line 2)" in text


# ---- synthesis and augmentation ------------------------------------------------------------


def test_a_target_in_an_empty_bin_is_named(ict_model, bins, caplog):
    from vafx._pipeline._synthesis import _warn_empty

    empty = int(np.nonzero(bins.status == 2)[0][0])
    c = np.asarray(bins.grid.axis_centres())
    va = np.array([[c[empty // bins.grid.n], c[empty % bins.grid.n]]], np.float32)
    with caplog.at_level(logging.WARNING, logger="vafx"):
        _warn_empty(bins, [empty], va, continuous=False)
    assert f"bin(s) [{empty}] hold no gallery frames" in caplog.text


def _photo_folder(tmp_path: Path, *, bad_pts: bool = False) -> tuple[Path, Path]:
    import imageio.v3 as iio

    photos, lm = tmp_path / "photos", tmp_path / "lm"
    photos.mkdir()
    lm.mkdir()
    iio.imwrite(photos / "a.png", data.astronaut())
    vafx.write_pts(lm / "a.pts", astronaut_pts())
    if bad_pts:
        iio.imwrite(photos / "b.png", data.astronaut())
        vafx.write_pts(lm / "b.pts", astronaut_pts()[:67])
        iio.imwrite(photos / "c.png", data.astronaut())
        far = astronaut_pts()
        far[8, 1] = 5000
        vafx.write_pts(lm / "c.pts", far)
    return photos, lm


def _files(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_augment_resumes_honestly(ict_model, bins, tmp_path):
    """Changed settings are refused, broken outputs redone, leftovers removed, lists checked."""
    photos, lm = _photo_folder(tmp_path, bad_pts=True)
    run = dict(bins=[45, 55], landmarks_dir=lm, batch=2)
    out = tmp_path / "out"
    man = vafx.augment(photos, out, bins, ict_model, **run)
    # one bad photo does not stop the batch: it is listed with its reason and file
    assert man["images"] == 2 and man["skipped"] == 2
    skipped = (out / "skipped.csv").read_text()
    assert "b.pts: holds 67 points" in skipped and "landmark 8 at" in skipped
    whole = _files(out)
    sides = [_strict_json((out / "images" / f"a__b{b:03d}.json").read_text()) for b in (45, 55)]
    for b, side in zip((45, 55), sides):  # each image's own bin, labelled as the models say
        assert side["bin"] == b and side["label_va"] == [float(v) for v in bins.labels[b]]
        assert 0 < side["fit"]["mean_landmark_error_px"] < 3

    # another intensity: refused, nothing touched
    with pytest.raises(vafx.VafxError, match=r"other settings .*intensity 1.0 -> 0.5.*--overwrite"):
        vafx.augment(
            photos, out, bins, ict_model, config=vafx.SynthesisConfig(intensity=0.5), **run
        )
    with pytest.raises(vafx.VafxError, match="bins"):
        vafx.augment(photos, out, bins, ict_model, **{**run, "bins": [45]})
    import dataclasses

    other = dataclasses.replace(bins, means=np.asarray(bins.means) * 1.1)
    with pytest.raises(vafx.VafxError, match="other bin models"):
        vafx.augment(photos, out, other, ict_model, **run)
    assert _files(out) == whole

    # a deleted image, a truncated one and a leftover of a killed write: redone, removed
    (out / "images" / "a__b045.png").unlink()
    img55 = out / "images" / "a__b055.png"
    img55.write_bytes(img55.read_bytes()[:1000])
    (out / "images" / ".a__b055.png.x1y2.part").write_bytes(b"half")
    vafx.augment(photos, out, bins, ict_model, **run)
    assert _files(out) == whole

    # duplicates in the list are refused
    with pytest.raises(ValueError, match=r"bins: \[45\] listed more than once"):
        vafx.augment(photos, out, bins, ict_model, **{**run, "bins": [45, 45]})

    # --overwrite recomputes with the new settings: no old image is kept
    man = vafx.augment(photos, out, bins, ict_model, config=vafx.SynthesisConfig(intensity=0.5),
                       overwrite=True, **run)  # fmt: skip
    after = _files(out)
    assert after["images/a__b045.png"] != whole["images/a__b045.png"]
    assert man["config"]["intensity"] == 0.5


AUGMENT_KILLED_AT_RENAME = """
import os, signal, sys
import vafx
from vafx._pipeline._augment import augment
models = vafx.load_bin_models(sys.argv[3])
model = vafx.load_model("ict")
stop, calls = int(sys.argv[5]), [0]
replace = os.replace
def killing_replace(src, dst, **kw):
    calls[0] += str(dst).startswith(sys.argv[2])  # the outputs' renames, not the caches'
    if calls[0] == stop:  # the temporary file is written and synced; the rename never happens
        os.kill(os.getpid(), signal.SIGKILL)
    replace(src, dst, **kw)
os.replace = killing_replace
augment(sys.argv[1], sys.argv[2], models, model, bins=[45, 55], landmarks_dir=sys.argv[4], batch=2)
"""


@pytest.mark.slow
@pytest.mark.parametrize("stop", [1, 2, 5, 8])
def test_augment_killed_between_write_and_rename(ict_dir, ict_model, bins, tmp_path, stop):
    """Killed before the rename of run.json (1), the first image (2), the last sidecar (5) or
    the manifest (8): each resumes to exactly the files of an uninterrupted run."""
    import os
    import subprocess
    import sys

    photos, lm = _photo_folder(tmp_path)
    vafx.save_bin_models(tmp_path / "bins.npz", bins)
    env = {**os.environ, "VAFX_DATA": str(ict_dir.parent)}
    killed = tmp_path / "killed"
    args = [str(photos), str(killed), str(tmp_path / "bins.npz"), str(lm), str(stop)]
    script = [sys.executable, "-c", AUGMENT_KILLED_AT_RENAME, *args]
    r = subprocess.run(script, env=env, cwd=tmp_path)
    assert r.returncode == -9
    assert list(killed.rglob(".*.part"))  # what the kill left
    whole = vafx.augment(photos, tmp_path / "whole", bins, ict_model, bins=[45, 55],
                         landmarks_dir=lm, batch=2)  # fmt: skip
    resumed = vafx.augment(photos, killed, bins, ict_model, bins=[45, 55], landmarks_dir=lm,
                           batch=2)  # fmt: skip
    assert resumed["files"] == whole["files"]
    assert _files(killed) == _files(tmp_path / "whole")


def test_cli_bin_list_twice_is_refused(tmp_path, capsys, ict_dir, monkeypatch):
    monkeypatch.setenv("VAFX_DATA", str(ict_dir.parent))
    photos, lm = _photo_folder(tmp_path)
    np.savez(tmp_path / "bins.npz", x=np.zeros(1))
    rc = main(["augment", str(photos), "--bins", str(tmp_path / "bins.npz"), "--bin-list",
               "45,45", "--landmarks", str(lm), "-o", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "vafx: error: --bin-list: bin 45 listed more than once"
    assert not (tmp_path / "out").exists()


# ---- cost that follows the face ------------------------------------------------------------


@pytest.mark.slow
def test_a_large_canvas_costs_the_face_not_the_photo(ict_model, bins):
    """The astronaut placed in a 1200 x 1600 canvas: the same face, the rest untouched."""
    img, pts = data.astronaut(), astronaut_pts()
    small = vafx.synthesize(img, (0.7, 0.4), bins, ict_model, landmarks=pts).image
    canvas = np.full((1200, 1600, 3), 37, np.uint8)
    canvas[300:812, 700:1212] = img
    big = vafx.synthesize(canvas, (0.7, 0.4), bins, ict_model, landmarks=pts + [700, 300]).image
    outside = np.ones(canvas.shape[:2], bool)
    outside[300:812, 700:1212] = False
    assert (big[outside] == 37).all()
    diff = np.abs(big[300:812, 700:1212].astype(int) - small).max(axis=-1)
    assert (diff > 1).mean() < 1e-4


@pytest.mark.slow
def test_working_resolution_keeps_the_photos_detail(ict_model, bins):
    """A face rendered at a capped working resolution comes back with the photo's own detail."""
    from scipy import ndimage

    img, pts = data.astronaut(), astronaut_pts()
    full = vafx.synthesize(img, (0.7, 0.4), bins, ict_model, landmarks=pts).image
    capped = vafx.synthesize(
        img, (0.7, 0.4), bins, ict_model, landmarks=pts, config=vafx.SynthesisConfig(max_side=128)
    )
    assert capped.sidecar["config"]["max_side"] == 128
    out = capped.image
    changed = (full != img).any(-1) | (out != img).any(-1)
    assert (out[~changed] == img[~changed]).all()
    err = (out.astype(float) - full)[changed]
    psnr = 10 * np.log10(255**2 / np.mean(err**2))
    assert psnr > 28, psnr
    # detail: the Laplacian's energy over the face (measured: full resolution 712, capped
    # 456, the full-resolution result downscaled to the working size and back 55); what is
    # lost is the synthesized mouth interior, upsampled
    from skimage.transform import resize

    grey = lambda x: x.astype(float).mean(-1)  # noqa: E731
    face = ndimage.binary_erosion(changed, iterations=3)
    energy = lambda x: np.var(ndimage.laplace(grey(x))[face])  # noqa: E731
    naive = resize(resize(full, (256, 256), anti_aliasing=True), (512, 512)) * 255
    assert energy(out) > max(0.5 * energy(full), 4 * energy(naive))


@pytest.mark.slow
def test_nan_in_bin_models_or_a_given_fit_is_refused(ict_model, bins, tmp_path):
    import dataclasses

    means = np.array(bins.means)
    means[3, 0, 0] = np.nan
    bad = dataclasses.replace(bins, means=means)
    vafx.save_bin_models(tmp_path / "nan.npz", bad)
    with pytest.raises(vafx.DataFileError, match="nan.npz: its bin means hold NaN"):
        vafx.load_bin_models(tmp_path / "nan.npz")
    fit = vafx.fit_landmarks(ict_model, astronaut_pts(), (512, 512))
    broken = fit._replace(scale=np.float32(np.nan))
    with pytest.raises(vafx.FitError, match=r"a.png: the fit failed \(cost"):
        vafx.synthesize(data.astronaut(), (0.5, 0.5), bins, ict_model, fit=broken, name="a.png")
