"""Affect as a trajectory: a V-A path rendered as the frames of a clip.

The photo is fitted once; each frame's target is the path's V-A at the frame's
time (linear between the path's points), synthesized with continuous control
(bilinear interpolation of the bins' means), so a small step in V-A is a
small change of face; frames are rendered in batches of ``chunk`` targets per
compiled call. Clips are written as GIF (Pillow, through imageio) or MP4
(imageio's ffmpeg plugin: ``pip install "vafx[video]"``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._errors import DataFileError
from .._va_space import validate_va

__all__ = ["Clip", "animate", "linear_path", "read_path", "smoothness", "write_clip"]


def read_path(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A V-A path from a CSV of ``time,valence,arousal`` (seconds): (times float[K], va float[K, 2]).

    Raises:
        DataFileError: unreadable, missing columns, non-numbers, fewer than two
            rows, times that do not increase, or V-A outside [-1, 1] (with the line).
    """
    path = Path(path)
    try:
        reader = csv.DictReader(path.read_text().splitlines())
        rows = list(reader)
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(path, f"cannot read ({e})") from None
    need = {"time", "valence", "arousal"}
    if not reader.fieldnames or not need <= {f.strip() for f in reader.fieldnames}:
        raise DataFileError(path, "line 1: the header needs columns time, valence, arousal")
    t, va = [], []
    for line, r in enumerate(rows, start=2):
        r = {k.strip(): v for k, v in r.items() if k is not None}
        try:
            row = [float(r["time"]), float(r["valence"]), float(r["arousal"])]
        except (TypeError, ValueError):
            raise DataFileError(
                path, f"line {line}: time, valence and arousal must be numbers"
            ) from None
        if not np.isfinite(row).all():
            raise DataFileError(path, f"line {line}: values must be finite")
        if not (-1 <= row[1] <= 1 and -1 <= row[2] <= 1):
            raise DataFileError(path, f"line {line}: V-A ({row[1]}, {row[2]}) is outside [-1, 1]")
        if t and row[0] <= t[-1]:
            raise DataFileError(
                path, f"line {line}: time {row[0]} does not increase (previous {t[-1]})"
            )
        t.append(row[0])
        va.append(row[1:])
    if len(t) < 2:
        raise DataFileError(path, f"holds {len(t)} point(s); a path needs at least two")
    return np.asarray(t, np.float64), np.asarray(va, np.float32)


def linear_path(start, end, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The straight path from V-A ``start`` to ``end`` in ``seconds``: (times, va)."""
    a = np.asarray(validate_va(np.asarray(start, np.float32), "from-va"), np.float32)
    b = np.asarray(validate_va(np.asarray(end, np.float32), "to-va"), np.float32)
    if not (np.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds: a positive duration, got {seconds}")
    return np.array([0.0, float(seconds)]), np.stack([a, b])


def frame_targets(times, va, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's time and V-A: (float[N], float32[N, 2]), frames at k / fps from the start."""
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: a positive frame rate, got {fps}")
    times = np.asarray(times, np.float64)
    va = np.asarray(va, np.float32)
    n = int(np.floor((times[-1] - times[0]) * fps + 1e-9)) + 1
    ft = times[0] + np.arange(n) / fps
    fva = np.stack([np.interp(ft, times, va[:, k]) for k in range(2)], -1).astype(np.float32)
    return ft, fva


class Clip(NamedTuple):
    """Output of :func:`animate`.

    Attributes:
        frames: uint8[N, H, W, 3].
        times: float[N] seconds.
        va: float32[N, 2], each frame's target.
        fps: frames per second.
        fit: the photo's :class:`vafx.Fit`.
        moving: bool[H, W], pixels the synthesis changed in some frame.
    """

    frames: np.ndarray
    times: np.ndarray
    va: np.ndarray
    fps: float
    fit: object
    moving: np.ndarray


def animate(
    photo,
    path,
    models,
    model,
    *,
    fps: float = 25.0,
    landmarks=None,
    fit=None,
    config=None,
    chunk: int = 25,
    name: str = "photo",
    progress: Callable[[int, int], None] | None = None,
) -> Clip:
    """Render a V-A trajectory on a photo.

    Args:
        photo: uint8[H, W, 3].
        path: (times float[K] seconds, va float[K, 2]) (:func:`read_path`,
            :func:`linear_path`); K >= 2, times increasing.
        models, model: the bin models and the face model.
        fps: frames per second.
        landmarks: float[68, 2]; None detects them (vafx[detect]).
        fit: a fit of the photo to reuse.
        config: :class:`vafx.SynthesisConfig`; ``continuous`` is always on.
        chunk: frames per compiled call (memory grows with it).
        name: the photo's name for messages.
        progress: called with (frames done, frames).

    Returns:
        :class:`Clip`.
    """
    import dataclasses

    import jax

    from .._fit._fitting import FitConfig, fit_landmarks
    from .._fit._landmarks import detect_landmarks
    from ._synthesis import SynthesisConfig, synthesize_batch

    img = np.asarray(photo)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"{name}: expected a uint8 RGB photo, got {img.dtype} {img.shape}")
    img = np.ascontiguousarray(img[..., :3])
    times, va = path
    times = np.asarray(times, np.float64)
    va = np.asarray(validate_va(np.asarray(va, np.float32), "path"), np.float32)
    if times.ndim != 1 or len(times) < 2 or va.shape != (len(times), 2):
        raise ValueError(
            f"path: expected K >= 2 times and (K, 2) V-A, got {times.shape}, {va.shape}"
        )
    if not (np.diff(times) > 0).all():
        raise ValueError("path: times must increase")
    ft, fva = frame_targets(times, va, fps)
    config = dataclasses.replace(config or SynthesisConfig(), continuous=True, sample=False)
    if fit is None:
        if landmarks is None:
            landmarks = detect_landmarks(img, name=name)
        fit = fit_landmarks(model, np.asarray(landmarks, np.float32), img.shape[:2],
                            FitConfig(camera=config.camera), names=[name])  # fmt: skip
    fits = jax.tree.map(lambda x: np.asarray(x)[None], fit)
    frames = np.empty((len(ft), *img.shape), np.uint8)
    for k in range(0, len(ft), chunk):
        part = fva[k : k + chunk]
        padded = np.concatenate([part, np.repeat(part[-1:], chunk - len(part), 0)])  # one program
        res = synthesize_batch(img[None], padded, models, model, fits=fits, config=config,
                               names=[name])  # fmt: skip
        frames[k : k + len(part)] = res.images[0, : len(part)]
        if progress is not None:
            progress(min(k + chunk, len(ft)), len(ft))
    moving = (frames != img[None]).any(axis=(0, 3))
    return Clip(frames, ft, fva, float(fps), fit, moving)


def smoothness(clip: Clip) -> dict:
    """Temporal smoothness figures of a clip (grey levels, 0-255).

    - ``still_change``: mean absolute frame-to-frame change on the pixels the
      synthesis never changed (the photo outside the moving face): 0 is no
      flicker at all.
    - ``moving_change``: the same on the moving pixels.
    - ``path_ratio``: on the moving pixels, the summed absolute frame-to-frame
      change over the net change from first to last frame: 1 for a
      monotone, flicker-free change; flicker makes it larger.
    - ``step_cv``: coefficient of variation of the per-frame mean change
      divided by the frame's V-A step: 0 when motion is exactly proportional
      to the step.
    """
    f = clip.frames.astype(np.float32)
    d = np.abs(np.diff(f, axis=0)).mean(axis=-1)  # [N-1, H, W]
    still, mov = ~clip.moving, clip.moving
    steps = np.linalg.norm(np.diff(clip.va, axis=0), axis=1)
    per = d[:, mov].mean(axis=1) if mov.any() else np.zeros(len(d))
    ratio = per / np.maximum(steps, 1e-9)
    net = np.abs(f[-1] - f[0]).mean(axis=-1)[mov]
    total = d[:, mov].sum(axis=0)
    sel = net > 8  # pixels that really move: the ratio is noise on nearly static ones
    return dict(
        still_change=float(d[:, still].mean()) if still.any() else 0.0,
        moving_change=float(per.mean()),
        path_ratio=float(total[sel].sum() / max(net[sel].sum(), 1e-9)) if sel.any() else 1.0,
        step_cv=float(ratio.std() / max(ratio.mean(), 1e-9)),
    )


def write_clip(path: str | os.PathLike, frames, fps: float) -> Path:
    """Write frames uint8[N, H, W, 3] as .gif or .mp4 (atomically).

    MP4 needs imageio's ffmpeg plugin (``pip install "vafx[video]"``); GIF does not.
    """
    import imageio.v3 as iio

    from .._io._atomic import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    frames = np.asarray(frames)
    if suffix == ".gif":
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
        return path
    if suffix in (".mp4", ".mov", ".mkv"):
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ImportError(
                f'{path.name}: video files need the optional extra: pip install "vafx[video]" '
                "(imageio-ffmpeg); or write a .gif"
            ) from None
        import warnings

        even = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # yuv420p
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # ffmpeg runs as a subprocess (fork, then exec at once): JAX's fork warning is moot
            warnings.filterwarnings(
                "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
            )
            fmt = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}[suffix]
            iio.imwrite(tmp, even, extension=suffix, plugin="FFMPEG", fps=fps, codec="libx264",
                        quality=8, macro_block_size=1, output_params=["-f", fmt])  # fmt: skip
        return path
    raise ValueError(f"{path.name}: write a .gif or .mp4 (got {suffix or 'no suffix'})")
