"""The vafx command: help, version, errors without tracebacks, the demo."""

import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import trimesh

import vafx
from vafx._cli import main


def run(*args):
    # Run outside the source tree, so that `python -m vafx` imports the installed copy.
    return subprocess.run([sys.executable, "-m", "vafx", *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())  # fmt: skip


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"vafx {vafx.__version__}"
    r = run("--help")
    assert r.returncode == 0
    for word in ("valence-arousal", "fetch-model", "demo", "VAFX_DATA"):
        assert word in r.stdout
    r = run("fetch-model", "--help")
    assert r.returncode == 0 and "SHA-256" in r.stdout and "--url" in r.stdout


def test_va_bin(capsys):
    assert main(["va", "bin", "0.5", "-0.3"]) == 0
    assert "bin 73 of 100" in capsys.readouterr().out
    assert main(["va", "bin", "1", "1", "--grid", "5"]) == 0
    assert "bin 24 of 25" in capsys.readouterr().out


def test_errors_are_one_line_without_traceback():
    r = run("va", "bin", "1.5", "0")
    assert r.returncode == 2
    assert "valence 1.5" in r.stderr and "Traceback" not in r.stderr
    r = run("model", "info", "--model", "/nonexistent/model.npz")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "/nonexistent" in r.stderr


def test_model_info_and_sample(sfm_dir, tmp_path, capsys):
    assert main(["model", "info", "--model", str(sfm_dir)]) == 0
    assert "3448 vertices" in capsys.readouterr().out
    out = tmp_path / "face.ply"
    assert main(["model", "sample", "--model", str(sfm_dir), "--seed", "3",
                 "--expression", "happiness=0.7", "-o", str(out)]) == 0  # fmt: skip
    mesh = trimesh.load(out, process=False)
    assert mesh.vertices.shape[0] >= 3448 and np.all(np.isfinite(mesh.vertices))
    assert main(["model", "sample", "--model", str(sfm_dir), "--expression", "grin",
                 "-o", str(out)]) == 2  # fmt: skip


def test_model_convert(sfm_dir, tmp_path):
    out = tmp_path / "sfm.npz"
    assert main(["model", "convert", "--model", str(sfm_dir), "-o", str(out)]) == 0
    assert vafx.load_model(out).num_identity == 63


@pytest.mark.slow
def test_demo_then_synthesize_with_no_other_step(ict_dir, tmp_path, monkeypatch):
    """The README's main job, then `vafx synthesize` without --bins, from an empty cache."""
    monkeypatch.setenv("VAFX_DATA", str(ict_dir.parent))
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--grid", "3"]) == 0
    import imageio.v3 as iio

    sheet = iio.imread(out / "contact_sheet.png")
    assert sheet.shape[0] > 400 and sheet.shape[1] > 500
    fig3 = iio.imread(out / "fig3_histogram.png")
    assert fig3.shape[:2] == (1000, 1200)
    side = json.loads((out / "contact_sheet.json").read_text())
    assert len(side["cells"]) == 9 and all(-1 <= c["label_va"][0] <= 1 for c in side["cells"])
    rows = (out / "bins.csv").read_text().splitlines()
    assert len(rows) == 101 and rows[0].startswith("bin,")
    # the default bin models the demo built are what synthesize uses: no --bins, no fit
    img = tmp_path / "astro.png"
    from importlib import resources

    from skimage import data

    iio.imwrite(img, data.astronaut())
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        pts = p.read_text()
    (tmp_path / "astro.pts").write_text(pts)
    argv = ["synthesize", str(img), "--valence", "0.7", "--arousal", "0.4",
            "--landmarks", str(tmp_path / "astro.pts"), "-o", str(tmp_path / "out.png")]  # fmt: skip
    assert main(argv) == 0
    assert iio.imread(tmp_path / "out.png").shape == (512, 512, 3)
    assert json.loads((tmp_path / "out.json").read_text())["bin"] == 87
    assert main(["bins", "default", "--path"]) == 0
