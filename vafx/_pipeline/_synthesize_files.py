"""Many photos x many targets from files to files: what ``vafx synthesize PHOTO...`` runs.

Photos of one size go through :func:`vafx.synthesize_batch` together (one
fit, one render and one blend call per chunk of targets), so compilation is
paid once per photo size and process, not once per image. Outputs are named
``<photo stem>__v+0.70_a+0.40.png`` with a JSON sidecar beside each, written
atomically; contact sheets with V-A axes (``--grid``) or a photos x targets
table are written on request.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_path, atomic_write_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def grid_targets(n: int, extent: float = 0.8) -> tuple[np.ndarray, list[float], list[float]]:
    """An n x n grid of targets: (float[n * n, 2] rows of arousal high to low, valence, arousal)."""
    if n < 1:
        raise ValueError(f"--grid: at least 1 target per axis, got {n}")
    levels = np.linspace(-extent, extent, n).round(3).tolist() if n > 1 else [0.0]
    targets = [(v, a) for a in reversed(levels) for v in levels]
    return np.array(targets, np.float32), levels, list(reversed(levels))


def read_targets(path: str | os.PathLike) -> np.ndarray:
    """Targets from a CSV with columns ``valence,arousal`` (header optional): float[T, 2]."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(path, f"cannot read ({e})") from None
    rows = [r for r in rows if r and any(x.strip() for x in r)]
    if rows and rows[0][0].strip().lower() in ("valence", "v"):
        rows = rows[1:]
    out = []
    for i, r in enumerate(rows, 1):
        try:
            v, a = float(r[0]), float(r[1])
        except (ValueError, IndexError):
            raise DataFileError(path, f"row {i}: expected two numbers valence,arousal, got {r}")
        if not (np.isfinite([v, a]).all() and abs(v) <= 1 and abs(a) <= 1):
            raise DataFileError(path, f"row {i}: valence and arousal must lie in [-1, 1], got {r}")
        out.append((v, a))
    if not out:
        raise DataFileError(path, "no targets")
    return np.array(out, np.float32)


def output_name(photo: str | os.PathLike, va, suffix: str = ".png") -> str:
    """The file name of a photo's result at a target.

    ``<stem>__v+0.70_a+0.40.png`` for a V-A pair; ``<stem>__happiness.png``
    (``__happiness_prototype`` through its prototype) for a category;
    ``<stem>__au12R-1.00_au26-0.50.png`` for action units.
    """
    from .._expression._controls import Target

    stem = Path(photo).stem
    if isinstance(va, Target) and va.va is None:
        if va.emotion is not None:
            tail = va.emotion.replace(" ", "_") + ("_prototype" if va.via == "prototype" else "")
        else:
            parts = []
            for key, value in va.aus.items():
                side, au = key if isinstance(key, tuple) else ("", key)
                parts.append(f"au{au}{side}-{float(value):.2f}")
            tail = "_".join(parts)
        return f"{stem}__{tail}{suffix}"
    if isinstance(va, Target):
        va = va.va
    return f"{stem}__v{float(va[0]):+.2f}_a{float(va[1]):+.2f}{suffix}"


def _header(target) -> str:
    """A sheet's column header for a target."""
    if target.emotion is not None:
        return target.emotion + (" (prototype)" if target.via == "prototype" else "")
    if target.aus is not None:
        return " ".join(f"AU{k[1]}{k[0]}={v:g}" if isinstance(k, tuple) else f"AU{k}={v:g}"
                        for k, v in target.aus.items())  # fmt: skip
    return f"V {target.va[0]:+.2f}  A {target.va[1]:+.2f}"


def _write_image(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, image, extension=path.suffix or ".png")


def _landmarks_for(photo: Path, landmarks, single: bool):
    from .._io._pts import read_pts

    if landmarks is None:
        return None
    landmarks = Path(landmarks)
    if landmarks.is_dir():
        p = landmarks / f"{photo.stem}.pts"
        if not p.exists():
            raise DataFileError(p, f"no landmarks for {photo} (expected {p.name} in {landmarks})")
        return read_pts(p, points=68)
    if not single:
        raise ValueError("--landmarks: with several photos, give a folder of <photo>.pts files")
    return read_pts(landmarks, points=68)


def synthesize_files(
    photos: Sequence[str | os.PathLike],
    targets,
    out: str | os.PathLike,
    models,
    model,
    *,
    landmarks: str | os.PathLike | None = None,
    config=None,
    grid: tuple[list[float], list[float]] | None = None,
    sheet: bool = False,
    chunk: int = 16,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict:
    """Synthesize every photo at every target and write the results.

    Args:
        photos: P photo files.
        targets: float[T, 2] (valence, arousal), or a list of :class:`vafx.Target`
            (V-A pairs, emotion categories, action units).
        out: an image file when P = T = 1 and it ends in an image suffix;
            else a folder for ``<stem>__v+0.70_a+0.40.png`` and sidecars.
        models: :class:`vafx.BinModels`.
        model: the :class:`vafx.MorphableModel`.
        landmarks: a .pts file (one photo) or a folder of ``<stem>.pts``;
            None detects them (vafx[detect]).
        config: :class:`vafx.SynthesisConfig`.
        grid: (valence levels, arousal levels top row first) when the
            targets are that grid: the sheets get V-A axes.
        sheet: also write contact sheets: ``<stem>__sheet.png`` per photo
            with ``grid``, else one ``sheet.png`` of photos x targets.
        chunk: targets per compiled call (memory grows with it).
        progress: called with (images done, images).
        force: keep fits that fail :func:`vafx.check_fits`.
        report: called with a line per step of a large photo (reading,
            landmarks, fitting, synthesis) and per skipped photo.

    Photos that cannot be read, show no face, or whose landmarks or fit fail
    their checks are skipped (no output) and listed with the reason; the
    others are written. With one photo, its problem is raised instead.

    Returns:
        dict: ``images`` (paths written), ``sheets``, ``results`` (per image:
        photo, target, bin, label), ``skipped`` ([(photo, reason)]).
    """
    import jax

    from .._fit._landmarks import detect_landmarks
    from .._io._photos import read_photo
    from ._figures import face_box, table_sheet_figure, va_sheet_figure
    from ._synthesis import SynthesisConfig, synthesize_batch

    config = config or SynthesisConfig()
    photos = [Path(p) for p in photos]
    if not photos:
        raise ValueError("no photos given")
    stems = [p.stem for p in photos]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise ValueError(f"photos with the same name would overwrite each other: {sorted(dup)}")
    from ._synthesis import _targets

    goals = _targets(targets)
    va = goals  # indexed per target below
    plain = all(g.va is not None for g in goals)
    out = Path(out)
    single_file = len(photos) == 1 and len(va) == 1 and out.suffix.lower() in IMAGE_SUFFIXES
    folder = out.parent if single_file else out
    folder.mkdir(parents=True, exist_ok=True)

    from .._errors import FitError
    from .._fit._fitting import MAX_FIT_ERROR, FitConfig, check_fits, check_landmarks, fit_landmarks
    from .._fit._landmarks import NoFaceError

    say = report or (lambda msg: None)
    one = len(photos) == 1
    skipped: list[tuple[str, str]] = []

    def skip(p, e):
        if one:
            raise e
        skipped.append((str(p), str(e)))
        say(f"skipped {e}")

    # photos of one size share compiled calls
    groups: dict[tuple, list[int]] = {}
    images, lms = [None] * len(photos), [None] * len(photos)
    for i, p in enumerate(photos):
        try:
            img = read_photo(p)
            large = img.shape[0] * img.shape[1] > 4_000_000
            if large:
                say(f"{p}: {img.shape[1]} x {img.shape[0]} photo; finding landmarks")
            pts = _landmarks_for(p, landmarks, one)
            if pts is None:
                pts = detect_landmarks(img, name=str(p))
            check_landmarks(pts, img.shape[:2], names=[str(p)])
        except (DataFileError, NoFaceError, FitError) as e:
            skip(p, e)
            continue
        images[i], lms[i] = img, np.asarray(pts, np.float32)
        groups.setdefault(img.shape, []).append(i)
    total, done = len(photos) * len(va), len(skipped) * len(va)
    cells: list[list] = [[None] * len(va) for _ in photos]
    captions: list[list] = [[""] * len(va) for _ in photos]
    crops: list = [None] * len(photos)
    written, results = [], []
    for shape, idx in groups.items():
        names = [str(photos[i]) for i in idx]
        lm = np.stack([lms[i] for i in idx])
        if shape[0] * shape[1] > 4_000_000:
            say(f"fitting {len(idx)} photo(s) of {shape[1]} x {shape[0]}")
        fits = fit_landmarks(model, lm, shape[:2], FitConfig(camera=config.camera), names=names,
                             check=False)  # fmt: skip
        good = []
        for bi, i in enumerate(idx):
            try:
                sub = jax.tree.map(lambda x, bi=bi: np.asarray(x)[bi : bi + 1], fits)
                check_fits(sub, lm[bi : bi + 1], names=[names[bi]],
                           max_error=None if force else MAX_FIT_ERROR)  # fmt: skip
                good.append(bi)
            except FitError as e:
                skip(photos[i], e)
                done += len(va)
        if not good:
            continue
        fits = jax.tree.map(lambda x: np.asarray(x)[np.asarray(good)], fits)
        idx = [idx[bi] for bi in good]
        batch = np.stack([images[i] for i in idx])
        for j0 in range(0, len(va), chunk):
            if shape[0] * shape[1] > 4_000_000:
                say(f"synthesizing targets {j0 + 1}-{min(j0 + chunk, len(va))} of {len(va)}")
            res = synthesize_batch(
                batch, va[j0 : j0 + chunk], models, model, fits=fits,
                config=config, names=[str(photos[i]) for i in idx],
            )  # fmt: skip
            fit_lm = np.asarray(jax.device_get(fits.landmarks))
            for bi, i in enumerate(idx):
                if crops[i] is None:
                    crops[i] = face_box(fit_lm[bi], images[i].shape[:2])
                for tj in range(res.images.shape[1]):
                    j = j0 + tj
                    path = out if single_file else folder / output_name(photos[i], goals[j])
                    _write_image(path, res.images[bi, tj])
                    side = dict(res.sidecars[bi][tj], photo=str(photos[i]), output=path.name)
                    atomic_write_text(path.with_suffix(".json"), json.dumps(side, indent=1))
                    written.append(path)
                    lab = res.labels[tj]
                    results.append(dict(photo=str(photos[i]), target=goals[j].describe(),
                                        bin=int(res.bins[tj]), label=lab.tolist(),
                                        output=str(path)))  # fmt: skip
                    if sheet:
                        cells[i][j] = res.images[bi, tj][crops[i]]
                        captions[i][j] = (
                            f"bin {int(res.bins[tj])} ({lab[0]:+.2f}, {lab[1]:+.2f})"
                            if res.bins[tj] >= 0 else "model shapes"
                        )  # fmt: skip
                    done += 1
                    if progress is not None:
                        progress(done, total)
    sheets = []
    if sheet:
        if grid is not None:
            nv, na = len(grid[0]), len(grid[1])
            for i, p in enumerate(photos):
                if crops[i] is None:  # skipped
                    continue
                rows = [cells[i][r * nv : (r + 1) * nv] for r in range(na)]
                caps = [captions[i][r * nv : (r + 1) * nv] for r in range(na)]
                sheets.append(va_sheet_figure(
                    images[i][crops[i]], rows, grid[0], grid[1],
                    folder / f"{p.stem}__sheet.png", captions=caps,
                    title=f"{p.name}: each cell's target bin and its label (median V-A)",
                ))  # fmt: skip
        elif any(c is not None for c in crops):
            kept = [i for i in range(len(photos)) if crops[i] is not None]
            sheets.append(table_sheet_figure(
                [images[i][crops[i]] for i in kept], [cells[i] for i in kept],
                np.array([g.va if g.va is not None else (np.nan, np.nan) for g in goals]),
                folder / "sheet.png", names=[photos[i].name for i in kept],
                captions=[captions[i] for i in kept],
                headers=None if plain else [_header(g) for g in goals],
            ))  # fmt: skip
    return dict(images=written, sheets=sheets, results=results, skipped=skipped)
