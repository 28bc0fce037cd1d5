"""V-A trajectories rendered as clips: path files, frame timing, smoothness, writers."""

from __future__ import annotations

import numpy as np
import pytest
from _photos import astronaut_pts
from skimage import data

import vafx
from vafx._cli import main
from vafx._pipeline._animate import frame_targets


@pytest.mark.parametrize(
    "text, match",
    [
        ("time,valence,arousal\n0,0,0\n0,0.5,0.5\n", "line 3: time 0.0 does not increase"),
        ("time,valence,arousal\n0,0,0\n1,0.5\n", "line 3: time, valence and arousal must be numbers"),
        ("time,valence,arousal\n0,0,0\n1,1.5,0\n", r"line 3: V-A \(1.5, 0.0\) is outside"),
        ("time,valence,arousal\n0,0,0\n", "holds 1 point"),
        ("t,v,a\n0,0,0\n1,1,1\n", "the header needs columns time, valence, arousal"),
        ("time,valence,arousal\n0,0,0\n1,nan,0\n", "must be finite"),
    ],
)  # fmt: skip
def test_bad_path_files_name_the_line(tmp_path, text, match):
    p = tmp_path / "path.csv"
    p.write_text(text)
    with pytest.raises(vafx.DataFileError, match=match):
        vafx.read_path(p)


def test_frames_sample_the_path_at_their_times():
    t, va = frame_targets([0.0, 1.0, 2.0], np.array([[0, 0], [1, 0], [1, 1]], np.float32), 4)
    assert len(t) == 9 and t[-1] == 2.0
    np.testing.assert_allclose(va[[0, 2, 4, 6, 8]], [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]])
    t, _ = vafx.linear_path((-0.6, -0.3), (0.7, 0.5), 4.0)
    assert len(frame_targets(t, np.zeros((2, 2)), 25)[0]) == 101
    with pytest.raises(ValueError, match="fps"):
        frame_targets(t, np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="outside"):
        vafx.linear_path((0, 0), (2, 0), 1.0)


def test_a_clip_is_smooth_and_its_frames_are_the_continuous_synthesis(ict_model, bins):
    img, pts = data.astronaut(), astronaut_pts()
    fit = vafx.fit_landmarks(ict_model, pts, img.shape[:2])
    path = vafx.linear_path((-0.5, -0.3), (0.6, 0.4), 1.0)
    clip = vafx.animate(img, path, bins, ict_model, fps=6, fit=fit, chunk=4)
    assert clip.frames.shape == (7, *img.shape) and clip.va.shape == (7, 2)
    one = vafx.synthesize(img, clip.va[3], bins, ict_model, fit=fit,
                          config=vafx.SynthesisConfig(continuous=True))  # fmt: skip
    diff = np.abs(one.image.astype(int) - clip.frames[3])
    assert (diff > 1).mean() < 1e-4
    sm = vafx.smoothness(clip)
    assert sm["still_change"] == 0.0  # no flicker off the moving face
    assert 0 < sm["moving_change"] < 5
    # a step of V-A moves the face a little: neighbours differ less than the ends
    ends = np.abs(clip.frames[-1].astype(float) - clip.frames[0]).mean()
    steps = [np.abs(clip.frames[k + 1].astype(float) - clip.frames[k]).mean() for k in range(6)]
    assert max(steps) < ends


@pytest.mark.slow
def test_cli_animate_writes_a_gif_and_refuses_bad_paths(ict_dir, tmp_path, capsys, monkeypatch):
    import imageio.v3 as iio

    monkeypatch.setenv("VAFX_DATA", str(ict_dir.parent))
    iio.imwrite(tmp_path / "a.png", data.astronaut())
    vafx.write_pts(tmp_path / "a.pts", astronaut_pts())
    (tmp_path / "bad.csv").write_text("time,valence,arousal\n0,0,0\n0,0.5,0.5\n")
    base = ["animate", str(tmp_path / "a.png"), "--landmarks", str(tmp_path / "a.pts")]
    assert main([*base, "--path", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "c.gif")]) == 2
    assert "bad.csv: line 3: time 0.0 does not increase" in capsys.readouterr().err
    assert main([*base, "--from-va", "0,0", "-o", str(tmp_path / "c.gif")]) == 2
    assert main([*base, "--from-va", "0,0", "--to-va", "0.6,0.4", "--seconds", "0.5",
                 "--fps", "6", "-o", str(tmp_path / "c.gif")]) == 0  # fmt: skip
    frames = iio.imread(tmp_path / "c.gif", index=None)
    assert frames.shape[0] == 4 and frames.shape[1:3] == (512, 512)
    assert "4 frames at 6 fps" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_animate_writes_an_mp4(ict_dir, tmp_path, monkeypatch):
    """vafx[video]: the same clip as an MP4 (a test of its own: no skip hides the GIF's)."""
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs vafx[video] (imageio-ffmpeg)")
    import imageio.v3 as iio

    monkeypatch.setenv("VAFX_DATA", str(ict_dir.parent))
    iio.imwrite(tmp_path / "a.png", data.astronaut())
    vafx.write_pts(tmp_path / "a.pts", astronaut_pts())
    base = ["animate", str(tmp_path / "a.png"), "--landmarks", str(tmp_path / "a.pts")]
    for out in ("c.gif", "c.mp4"):
        assert main([*base, "--from-va", "0,0", "--to-va", "0.6,0.4", "--seconds", "0.5",
                     "--fps", "6", "-o", str(tmp_path / out)]) == 0  # fmt: skip
    video = iio.imread(tmp_path / "c.mp4", index=None, plugin="FFMPEG")
    gif = iio.imread(tmp_path / "c.gif", index=None)
    assert video.shape[:3] == gif.shape[:3] == (4, 512, 512)

    # the same frames in the same order, up to the codecs' losses: each end of the video is
    # nearer the GIF's frame at that end than the GIF's other end
    def d(a, b):
        return np.abs(a[..., :3].astype(float) - b[..., :3].astype(float)).mean()

    assert d(video[0], gif[0]) < d(video[0], gif[-1])
    assert d(video[-1], gif[-1]) < d(video[-1], gif[0])
