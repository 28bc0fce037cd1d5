"""Scaling out: bins over several (virtual) devices, augment in shards merged into one run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _photos import astronaut_pts
from skimage import data
from test_bad_inputs import AUGMENT_KILLED_AT_RENAME

import vafx
from vafx._fit._landmarks import mirror_landmarks


def _files(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _photos(tmp_path: Path) -> tuple[Path, Path]:
    import imageio.v3 as iio

    photos, lm = tmp_path / "photos", tmp_path / "lm"
    photos.mkdir()
    lm.mkdir()
    img, pts = data.astronaut(), astronaut_pts()
    iio.imwrite(photos / "a.png", img)
    vafx.write_pts(lm / "a.pts", pts)
    iio.imwrite(photos / "b.png", img[:, ::-1].copy())
    vafx.write_pts(lm / "b.pts", mirror_landmarks(pts, img.shape[1]))
    iio.imwrite(photos / "c.png", np.full((64, 64, 3), 90, np.uint8))  # no .pts: skipped
    return photos, lm


# test_bad_inputs' killer (SIGKILL before the N-th rename into the output), on shard 2 of 2
KILLED_SHARD = AUGMENT_KILLED_AT_RENAME.replace("batch=2)", "batch=2, shard=(2, 2))")
assert KILLED_SHARD != AUGMENT_KILLED_AT_RENAME


@pytest.mark.slow
def test_shards_merged_equal_one_run_even_after_a_kill(ict_dir, ict_model, bins, tmp_path):
    photos, lm = _photos(tmp_path)
    run = dict(bins=[45, 55], landmarks_dir=lm, batch=2)
    whole = vafx.augment(photos, tmp_path / "whole", bins, ict_model, **run)
    out = tmp_path / "sharded"
    # shard 2 of 2 (photo b) is killed before the rename of its first image, then re-run
    vafx.save_bin_models(tmp_path / "bins.npz", bins)
    env = {**os.environ, "VAFX_DATA": str(ict_dir.parent)}
    args = [str(photos), str(out), str(tmp_path / "bins.npz"), str(lm), "2"]
    r = subprocess.run([sys.executable, "-c", KILLED_SHARD, *args], env=env, cwd=tmp_path)
    assert r.returncode == -9
    part = vafx.augment(photos, out, bins, ict_model, shard=(1, 2), **run)
    assert part == dict(shard=[1, 2], photos=2, skipped=1)  # a and c; c has no landmarks
    with pytest.raises(vafx.VafxError, match=r"shards \[2\] of 2 have not finished"):
        vafx.merge_augment(out)
    vafx.augment(photos, out, bins, ict_model, shard=(2, 2), **run)
    merged = vafx.merge_augment(out)
    assert merged == whole
    assert _files(out) == _files(tmp_path / "whole")  # file for file, byte for byte
    with pytest.raises(ValueError, match="shard: --overwrite"):
        vafx.augment(photos, out, bins, ict_model, shard=(1, 2), overwrite=True, **run)
    with pytest.raises(ValueError, match="K/N with 1 <= K <= N"):
        vafx.augment(photos, out, bins, ict_model, shard=(3, 2), **run)


FIT_ON_DEVICES = """
import sys
import jax, numpy as np, vafx
from vafx.kernels.splocs import SplocsParams
assert len(jax.devices()) == 4, jax.devices()
g = vafx.synthesize_gallery(sys.argv[1], vafx.load_model("ict"),
                            vafx.SynthConfig(subjects=2, frames=6))
p = SplocsParams(num_components=4, num_iters=2)
one = vafx.fit_bins(g, p, min_frames=3, devices=jax.devices()[:1])
four = vafx.fit_bins(g, p, min_frames=3)
mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("x",))
two = vafx.fit_bins(g, p, min_frames=3, devices=mesh)
for other in (four, two):
    for name in ("means", "labels", "components", "weight_mean", "weight_std"):
        assert np.array_equal(getattr(one, name), getattr(other, name)), name
print("identical")
"""


@pytest.mark.slow
def test_bins_on_four_virtual_devices_equal_one(ict_dir, tmp_path):
    env = {**os.environ, "VAFX_DATA": str(ict_dir.parent), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}  # fmt: skip
    r = subprocess.run([sys.executable, "-c", FIT_ON_DEVICES, str(tmp_path / "g")], env=env,
                       cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("identical")


AUGMENT_ON_DEVICES = """
import sys
import jax, vafx
assert len(jax.devices()) == 2, jax.devices()
models = vafx.load_bin_models(sys.argv[3])
vafx.augment(sys.argv[1], sys.argv[2], models, vafx.load_model("ict"), bins=[45, 55],
             landmarks_dir=sys.argv[4], batch=2)
"""


@pytest.mark.slow
def test_augment_spread_over_two_devices_equals_one(ict_dir, ict_model, bins, tmp_path):
    photos, lm = _photos(tmp_path)
    vafx.save_bin_models(tmp_path / "bins.npz", bins)
    env = {**os.environ, "VAFX_DATA": str(ict_dir.parent), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
    args = [str(photos), str(tmp_path / "two"), str(tmp_path / "bins.npz"), str(lm)]
    r = subprocess.run([sys.executable, "-c", AUGMENT_ON_DEVICES, *args], env=env, cwd=tmp_path,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    vafx.augment(photos, tmp_path / "one", bins, ict_model, bins=[45, 55], landmarks_dir=lm,
                 batch=2)  # fmt: skip
    assert _files(tmp_path / "two") == _files(tmp_path / "one")


BATCH_ON_DEVICES = """
import sys
import jax, numpy as np, vafx
from skimage import data
assert len(jax.devices()) == 2, jax.devices()
models = vafx.load_bin_models(sys.argv[1])
model = vafx.load_model("ict")
pts = vafx.read_pts(sys.argv[2])
img = data.astronaut()
photos = np.stack([img, img, img])
lms = np.stack([pts, pts + 1, pts - 1])
two = vafx.synthesize_batch(photos, [(0.7, 0.4), (-0.5, 0.3)], models, model, landmarks=lms)
one = vafx.synthesize_batch(photos, [(0.7, 0.4), (-0.5, 0.3)], models, model, landmarks=lms,
                            devices=jax.devices()[:1])
diff = np.abs(two.images.astype(int) - one.images)
assert (diff > 1).mean() < 1e-4 and diff.mean() < 0.1, ((diff > 1).sum(), diff.mean())
assert np.allclose(np.asarray(two.fits.scale), np.asarray(one.fits.scale), rtol=1e-5)
assert [s["photo"] for s in sum(two.sidecars, [])] == [s["photo"] for s in sum(one.sidecars, [])]
print("equal")
"""


@pytest.mark.slow
def test_a_batch_spread_over_two_devices_equals_one(ict_dir, bins, tmp_path):
    vafx.save_bin_models(tmp_path / "bins.npz", bins)
    vafx.write_pts(tmp_path / "a.pts", astronaut_pts())
    env = {**os.environ, "VAFX_DATA": str(ict_dir.parent), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
    args = [str(tmp_path / "bins.npz"), str(tmp_path / "a.pts")]
    r = subprocess.run([sys.executable, "-c", BATCH_ON_DEVICES, *args], env=env, cwd=tmp_path,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("equal")
