"""Per-bin models: fitting all bins, fallbacks, the saved file, expressions from bins."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest
from vafx.kernels.splocs import SplocsParams

import vafx
from vafx._expression._bins import FITTED, INTERPOLATED, MEAN_ONLY

P = SplocsParams(num_components=4, num_iters=5, sparsity=0.5)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, tiny_model):
    cfg = vafx.SynthConfig(subjects=3, frames=8, region=None)
    return vafx.synthesize_gallery(tmp_path_factory.mktemp("g") / "g", tiny_model, cfg)


@pytest.fixture(scope="module")
def models(gallery):
    return vafx.fit_bins(gallery, P, min_frames=5, chunk_bytes=2_000_000)


def test_every_bin_has_a_model_and_a_status(gallery, models):
    counts = gallery.counts()
    np.testing.assert_array_equal(models.counts, counts)
    assert ((models.status == INTERPOLATED) == (counts == 0)).all()
    assert ((models.status == MEAN_ONLY) == ((counts > 0) & (counts < 5))).all()
    assert (models.status == FITTED).sum() > 10
    for b in np.nonzero(counts)[0]:
        np.testing.assert_allclose(
            models.means[b], gallery.bin_deltas(int(b)).mean(axis=0), atol=1e-5
        )
    med = gallery.medians()
    have = counts > 0
    np.testing.assert_allclose(models.labels[have], med[have])
    # interpolated bins: labelled at their centre, means finite and from neighbours
    centres = np.asarray(gallery.grid.centres())
    np.testing.assert_allclose(models.labels[~have], centres[~have])
    # each empty bin: the inverse-square-distance mean of the 4 nearest bins with frames
    # (equally near ones by bin number), from the data bins' means as fitted
    data = [b for b in range(len(counts)) if counts[b] > 0]
    assert (~have).any()
    for b in np.nonzero(~have)[0]:
        d2 = {c: float(((centres[c] - centres[b]) ** 2).sum()) for c in data}
        near = sorted(data, key=lambda c: (d2[c], c))[:4]
        w = np.array([1 / d2[c] for c in near])
        want = sum(wi * models.means[c].astype(np.float64) for wi, c in zip(w / w.sum(), near))
        np.testing.assert_allclose(models.means[b], want, atol=1e-6)
    assert any("interpolated" in line for line in models.summary())


def test_fitted_bins_converge_and_weights_respect_constraints(models):
    fit = models.status == FITTED
    obj = models.objective[fit]
    assert (np.diff(obj, axis=1) <= 1e-4 * np.abs(obj[:, :1])).all()  # float32 Gram rounding
    assert (models.weight_min[fit] >= 0).all() and (models.weight_max[fit] <= 1 + 1e-6).all()


def test_chunking_does_not_change_the_result(gallery, models):
    one_chunk = vafx.fit_bins(gallery, P, min_frames=5, chunk_bytes=1 << 30)
    np.testing.assert_allclose(one_chunk.components, models.components, atol=1e-4)
    np.testing.assert_allclose(one_chunk.means, models.means, atol=1e-6)


def test_save_load_round_trip_and_expressions(tmp_path, models):
    path = vafx.save_bin_models(tmp_path / "m.npz", models)
    back = vafx.load_bin_models(path)
    for name in ("means", "components", "labels", "status", "weight_std"):
        np.testing.assert_array_equal(getattr(back, name), getattr(models, name))
    assert back.meta == models.meta
    b = int(np.argmax(models.counts))
    np.testing.assert_array_equal(vafx.bin_expression(back, b), models.means[b])
    va = models.labels[b]
    np.testing.assert_array_equal(vafx.bin_expression(back, va), models.means[b])
    s1 = vafx.bin_expression(back, b, sample=True, key=jax.random.key(1))
    s2 = vafx.bin_expression(back, b, sample=True, key=jax.random.key(2))
    assert not np.array_equal(s1, s2) and np.isfinite(s1).all()
    with pytest.raises(ValueError, match="outside"):
        vafx.bin_expression(back, 100)
    with pytest.raises(ValueError):
        vafx.bin_expression(back, (1.5, 0.0))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(vafx.DataFileError, match="bad.npz"):
        vafx.load_bin_models(tmp_path / "bad.npz")


def test_cli_bins_fit_and_info(tmp_path, gallery):
    out = tmp_path / "m.npz"
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "bins", "fit", str(gallery.path), "-o", str(out),
         "--components", "3", "--iters", "3", "--min-frames", "5"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "bins fitted" in r.stdout and out.exists()
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "bins", "info", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "3 components" in r.stdout


def test_cli_bins_fit_median_at_a_magnitude(tmp_path, gallery, capsys):
    """`vafx bins fit --means-only --expression median --magnitude 2 --size-quantile 0.75`
    writes what fit_bins makes with those settings; a bad setting is a one-line error."""
    from vafx._cli import main

    out = tmp_path / "m.npz"
    assert main(["bins", "fit", str(gallery.path), "-o", str(out), "--means-only",
                 "--expression", "median", "--magnitude", "2", "--size-quantile", "0.75"]) == 0  # fmt: skip
    got = vafx.load_bin_models(out)
    want = vafx.fit_bins(gallery, splocs=False, expression="median", magnitude=2.0,
                         size_quantile=0.75)  # fmt: skip
    np.testing.assert_array_equal(got.means, want.means)
    assert got.meta["expression"] == "median" and got.meta["size_quantile"] == 0.75
    capsys.readouterr()
    assert main(["bins", "fit", str(gallery.path), "-o", str(out), "--means-only",
                 "--magnitude", "0.5"]) != 0  # fmt: skip
    assert "magnitude: None or a factor >= 1" in capsys.readouterr().err
