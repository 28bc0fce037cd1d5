"""Default bin models: built once per model into the cache, then read; a second process waits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vafx
from vafx._expression import _defaults


def test_built_once_then_read(tiny_model, monkeypatch):
    lines = []
    models = vafx.default_bin_models(tiny_model, report=lines.append)
    path = _defaults.default_bins_path(tiny_model)
    assert path.exists() and path.parent.parent.name == "bins"
    assert not (path.parent / "gallery.tmp").exists()  # the gallery is not kept
    assert any("building the default bin models" in s for s in lines)
    assert models.components.shape[1] == 0  # means only
    assert (models.status != 2).sum() > 10 and np.isfinite(models.means).all()
    assert models.meta["default"]["model"] == tiny_model.name

    def no_build(*a, **k):
        raise AssertionError("built again")

    monkeypatch.setattr("vafx._gallery._synth.synthesize_gallery", no_build)
    again = vafx.default_bin_models(tiny_model, report=lines.append)
    np.testing.assert_array_equal(again.means, models.means)
    with pytest.raises(ValueError, match="means only"):
        vafx.bin_expression(again, 45, sample=True, key=__import__("jax").random.key(0))


def test_key_follows_model_and_version(tiny_model, ict_model, monkeypatch):
    a = _defaults.default_bins_path(tiny_model)
    assert a != _defaults.default_bins_path(ict_model)
    assert _defaults.default_bins_path(tiny_model, splocs=True).name == "splocs.npz"
    monkeypatch.setattr(_defaults, "__version__", "0.0.0-other")
    assert _defaults.default_bins_path(tiny_model) != a


def test_key_follows_the_prototypes_table(tiny_model, monkeypatch):
    """An edited prototype (same generator number) never reads the entry built before it."""
    from vafx._gallery import _facs

    a = _defaults.default_bins_path(tiny_model)
    p = _facs.ALL[0]
    edited = (p._replace(aus={**p.aus, 26: 0.5}),) + _facs.ALL[1:]
    monkeypatch.setattr(_facs, "ALL", edited)
    b = _defaults.default_bins_path(tiny_model)
    assert b != a
    monkeypatch.setattr(_facs, "AU_TO_ARKIT", {**_facs.AU_TO_ARKIT, 26: {"jawOpen": 0.5}})
    assert _defaults.default_bins_path(tiny_model) not in (a, b)


HOLDER = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
open(sys.argv[3], "w").write("done")  # then the lock goes with the process
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the lock is POSIX flock")
def test_a_second_builder_waits_for_the_first(tmp_path):
    lock = tmp_path / ".lock"
    marker = tmp_path / "first-finished"
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(lock), "1", str(marker)],
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert p.stdout.readline().strip() == "locked"
    said = []
    with _defaults._locked(lock, said.append):
        finished_first = marker.exists()
    p.wait()
    assert said and "waiting for another process" in said[0]
    assert finished_first  # it held on until the other let go


@pytest.mark.parametrize("region", [None, "face"])
def test_in_memory_bins_equal_the_stored_gallery(tiny_model, tmp_path, region):
    """The default build's in-memory bins are fit_bins(splocs=False) of the stored gallery,
    means and medians, on the whole mesh and on a region."""
    cfg = vafx.SynthConfig(subjects=3, frames=5, region=region)
    g = vafx.synthesize_gallery(tmp_path / "g", tiny_model, cfg)
    acc = vafx.synthesize_gallery(tmp_path / "unused", tiny_model, cfg,
                                  writer=_defaults._InMemoryGallery)  # fmt: skip
    assert not (tmp_path / "unused").exists()
    assert acc.num_frames == g.counts().sum()
    for how in ("mean", "median"):
        stored = vafx.fit_bins(g, splocs=False, expression=how)
        mem = vafx.fit_bins(acc, splocs=False, expression=how)
        np.testing.assert_array_equal(mem.counts, stored.counts)
        np.testing.assert_array_equal(mem.status, stored.status)
        np.testing.assert_array_equal(mem.labels, stored.labels)
        np.testing.assert_allclose(mem.means, stored.means, rtol=1e-5, atol=1e-5)
        for b in np.nonzero(g.counts() > 0)[0]:
            np.testing.assert_allclose(acc.bin_deltas(int(b)), g.bin_deltas(int(b)), atol=1e-5)


def test_in_memory_bins_take_blends_of_one_set_of_shapes(tiny_model):
    """The in-memory gallery keeps blend weights: meshes, or blends of other shapes than
    the first sequence's, are refused by name, not mixed in."""
    from vafx._model._template import template_from_model

    acc = _defaults._InMemoryGallery(template_from_model(tiny_model, None), "test")
    shapes = np.ones((2, 6), np.float32)
    va = np.full((3, 2), 0.5, np.float32)
    acc.add_blend("s0", "a", np.ones((3, 2), np.float32), shapes, va)
    acc.add_blend("s0", "b", np.ones((3, 2), np.float32), shapes.copy(), va)
    assert acc.num_frames == 6 and acc.counts().sum() == 6
    with pytest.raises(ValueError, match="s0/c: blends of other shapes"):
        acc.add_blend("s0", "c", np.ones((3, 2), np.float32), 2 * shapes, va)
    with pytest.raises(TypeError, match="takes blends"):
        acc.add(None)


def _stub_gallery(template, bins: dict):
    """A gallery with the given deformations per bin (fit_bins' side of the interface)."""
    from vafx._va_space import VAGrid

    grid = VAGrid(10)

    class Stub:
        path, manifest = "stub", {}

        def __init__(self):
            self.template, self.grid = template, grid

        def counts(self):
            c = np.zeros(grid.num_bins, np.int64)
            for b, d in bins.items():
                c[b] = len(d)
            return c

        def medians(self):
            return np.zeros((grid.num_bins, 2), np.float32)

        def bin_deltas(self, b):
            return np.asarray(bins[b], np.float32)

    return Stub()


def test_median_expression_keeps_what_most_frames_do(tiny_model):
    """expression="median": three frames raise a feature, two lower it as far. The mean is a
    fifth of it; the median is the raise itself, and it equals numpy's median everywhere."""
    from vafx._model._template import template_from_model

    t = template_from_model(tiny_model, None)
    rng = np.random.default_rng(1)
    up = rng.normal(0, 1, (t.num_vertices, 3)).astype(np.float32)
    other = rng.normal(0, 1, (8, t.num_vertices, 3)).astype(np.float32)  # even: two middles
    g = _stub_gallery(t, {45: np.stack([up, up, up, -up, -up]), 12: other})
    mean = vafx.fit_bins(g, splocs=False)
    med = vafx.fit_bins(g, splocs=False, expression="median")
    np.testing.assert_allclose(mean.means[45], up / 5, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(med.means[45], up)
    np.testing.assert_array_equal(med.means[12], np.median(other, axis=0))
    assert med.meta["expression"] == "median" and mean.meta["expression"] == "mean"
    with pytest.raises(ValueError, match="expression: one of"):
        vafx.fit_bins(g, splocs=False, expression="mode")


def test_bin_means_at_their_frames_magnitude(tiny_model, tmp_path):
    """fit_bins(magnitude=g): each bin's mean scaled by mean_i |d_i| / |mean d|, at most g,
    written from the frames here; the same in memory (the default build) as stored."""
    cfg = vafx.SynthConfig(subjects=3, frames=5, region=None)
    g = vafx.synthesize_gallery(tmp_path / "g", tiny_model, cfg)
    plain = vafx.fit_bins(g, splocs=False)
    big = vafx.fit_bins(g, splocs=False, magnitude=1.5)
    scaled = 0
    for b in np.nonzero(g.counts() > 0)[0]:
        d = g.bin_deltas(int(b)).astype(np.float64)
        mean = d.mean(0)
        want = min(max(np.linalg.norm(d.reshape(len(d), -1), axis=1).mean()
                       / np.linalg.norm(mean), 1.0), 1.5)  # fmt: skip
        np.testing.assert_allclose(big.means[b], want * plain.means[b], rtol=1e-5, atol=1e-6)
        scaled += want > 1.01
    assert scaled >= 3  # bins that mix expressions grow
    np.testing.assert_array_equal(big.labels, plain.labels)
    assert big.meta["magnitude"] == 1.5 and plain.meta["magnitude"] is None
    acc = vafx.synthesize_gallery(tmp_path / "unused", tiny_model, cfg,
                                  writer=_defaults._InMemoryGallery)  # fmt: skip
    mem = vafx.fit_bins(acc, splocs=False, magnitude=1.5)
    np.testing.assert_allclose(mem.means, big.means, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="magnitude: None or a factor >= 1"):
        vafx.fit_bins(g, splocs=False, magnitude=0.5)
    with pytest.raises(ValueError, match="size_quantile: None or a number in"):
        vafx.fit_bins(g, splocs=False, magnitude=1.5, size_quantile=1.5)


def test_median_at_its_stronger_frames_size(tiny_model, tmp_path):
    """expression="median", size_quantile=q: each bin's median deformation scaled to the
    q-quantile of its frames' sizes over its own size, at most g (the default bins' rule)."""
    cfg = vafx.SynthConfig(subjects=3, frames=5, region=None)
    g = vafx.synthesize_gallery(tmp_path / "g", tiny_model, cfg)
    got = vafx.fit_bins(g, splocs=False, expression="median", magnitude=2.0, size_quantile=0.75)
    scaled = 0
    for b in np.nonzero(g.counts() > 0)[0]:
        d = g.bin_deltas(int(b)).astype(np.float64)
        med = np.median(d, axis=0)
        size = np.quantile(np.linalg.norm(d.reshape(len(d), -1), axis=1), 0.75)
        want = min(max(size / np.linalg.norm(med), 1.0), 2.0)
        np.testing.assert_allclose(got.means[b], want * med, rtol=1e-5, atol=1e-5)
        scaled += want > 1.01
    assert scaled >= 3
    assert got.meta["size_quantile"] == 0.75
