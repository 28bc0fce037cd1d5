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


def test_in_memory_means_equal_the_stored_gallery(tiny_model, tmp_path):
    """The default build's in-memory bin means are fit_bins(splocs=False) of the stored gallery."""
    cfg = vafx.SynthConfig(subjects=3, frames=5, region=None)
    stored = vafx.fit_bins(vafx.synthesize_gallery(tmp_path / "g", tiny_model, cfg), splocs=False)
    acc = vafx.synthesize_gallery(tmp_path / "unused", tiny_model, cfg, writer=_defaults._BinMeans)
    assert not (tmp_path / "unused").exists()
    mem = vafx.fit_bins(acc, splocs=False)
    np.testing.assert_array_equal(mem.counts, stored.counts)
    np.testing.assert_array_equal(mem.status, stored.status)
    np.testing.assert_array_equal(mem.labels, stored.labels)
    np.testing.assert_allclose(mem.means, stored.means, rtol=1e-5, atol=1e-6)
    assert acc.num_frames == stored.counts.sum()


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
    acc = vafx.synthesize_gallery(tmp_path / "unused", tiny_model, cfg, writer=_defaults._BinMeans)
    mem = vafx.fit_bins(acc, splocs=False, magnitude=1.5)
    np.testing.assert_allclose(mem.means, big.means, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="magnitude: None or a factor >= 1"):
        vafx.fit_bins(g, splocs=False, magnitude=0.5)
