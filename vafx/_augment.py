"""The paper's data augmentation at scale: every photo x every chosen V-A bin.

Layout of an augmentation folder::

    OUT/run.json                         the run's settings and its inputs' SHA-256
    OUT/images/<photo stem>__b042.png    one synthesized image per photo and bin
    OUT/images/<photo stem>__b042.json   its sidecar (label, bin, fit, versions, image hash)
    OUT/labels.csv                       image, source photo, subject, valence, arousal, bin
    OUT/skipped.csv                      photos that gave no images, with the reason
    OUT/manifest.json                    written last: settings, counts, SHA-256 of every file

Resuming after a kill: an image is written atomically (temporary name, then a
rename) and its sidecar, which records the image's SHA-256, after it. On
restart, temporary files left by the kill are removed; a pair is kept only
when its sidecar reads and its image matches the recorded hash, and
everything else is redone. ``labels.csv``, ``skipped.csv`` and the manifest
are rebuilt from the sidecars at the end, so a resumed run ends with exactly
the files of an uninterrupted one, none lost and none duplicated.

A folder belongs to one run: ``run.json`` records the settings (synthesis
options, bins, batch), digests of the bin models and the face model, and the
SHA-256 of every photo and landmark file. A re-run whose record differs is
refused with the differences named, so outputs of two settings never mix;
``overwrite=True`` (``--overwrite``) clears the folder's outputs and starts
afresh.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._atomic import atomic_path, atomic_write_text
from ._errors import DataFileError, FitError, VafxError
from ._landmarks import NoFaceError, detect_landmarks, read_photo, read_pts
from ._synthesis import SynthesisConfig, synthesize_batch
from ._version import __version__

__all__ = ["augment"]

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OUTPUTS = ("images", "labels.csv", "skipped.csv", "manifest.json", "run.json")


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _array_digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _run_record(photos, bins, models, model, config, batch, landmarks_dir, subjects) -> dict:
    """What makes a run: settings and the digests of everything it reads."""
    inputs = {}
    for p in photos:
        entry = {"photo": _sha(p) if p.is_file() else None}
        if landmarks_dir is not None:
            pts = Path(landmarks_dir) / f"{p.stem}.pts"
            entry["landmarks"] = _sha(pts) if pts.is_file() else None
        inputs[p.name] = entry
    return dict(
        vafx=__version__,
        config=json.loads(json.dumps(config.__dict__)),
        bins=list(bins),
        batch=int(batch),
        landmarks="detected" if landmarks_dir is None else "files",
        subjects=None if subjects is None else {k: str(v) for k, v in sorted(subjects.items())},
        bin_models=_array_digest(models.means, models.labels, models.components),
        face_model=dict(name=model.name, digest=_array_digest(model.mean, model.expression_basis)),
        inputs=inputs,
    )


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) == new.get(k):
            continue
        if k == "inputs":
            a, b = old.get(k) or {}, new.get(k) or {}
            added, gone = sorted(set(b) - set(a)), sorted(set(a) - set(b))
            changed = sorted(n for n in set(a) & set(b) if a[n] != b[n])
            for what, names in (("added", added), ("removed", gone), ("changed", changed)):
                if names:
                    out.append(
                        f"photos {what}: {', '.join(names[:3])}" + (" ..." * (len(names) > 3))
                    )
        elif k == "config":
            a, b = old.get(k) or {}, new.get(k) or {}
            out += [f"{c} {a.get(c)!r} -> {b.get(c)!r}" for c in sorted(set(a) | set(b))
                    if a.get(c) != b.get(c)]  # fmt: skip
        elif k in ("bin_models", "face_model"):
            out.append(f"other {k.replace('_', ' ')}")
        else:
            out.append(f"{k} {old.get(k)!r} -> {new.get(k)!r}")
    return out


def _prepare(out: Path, record: dict, overwrite: bool) -> None:
    """Make OUT hold this run: refuse another run's outputs, or clear them with overwrite."""
    run = out / "run.json"
    if out.exists() and not out.is_dir():
        raise DataFileError(out, "exists and is not a folder")
    existing = [n for n in OUTPUTS if (out / n).exists()]
    if existing and not overwrite:
        try:
            old = json.loads(run.read_text())
        except (OSError, ValueError):
            raise VafxError(
                f"{out}: holds augmentation outputs ({', '.join(existing)}) without a readable "
                f"run.json; use --overwrite (overwrite=True) to replace them"
            ) from None
        diff = _differences(old, record)
        if diff:
            raise VafxError(
                f"{out}: holds a run with other settings or inputs ({'; '.join(diff[:6])}); "
                f"use another folder, or --overwrite (overwrite=True) to recompute"
            )
    if overwrite:
        for n in OUTPUTS:
            p = out / n
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    # leftovers of writes a kill interrupted (atomic_path's temporary names)
    for folder in (out, out / "images"):
        if folder.is_dir():
            for p in folder.glob(".*.part"):
                p.unlink()
    atomic_write_text(run, json.dumps(record, indent=1, sort_keys=True))


def _kept(img_dir: Path, stem: str) -> bool:
    """Whether a finished pair is whole: its sidecar reads and its image has the recorded hash.

    A broken pair (either file missing, truncated or changed) is removed to be redone.
    """
    side, image = img_dir / f"{stem}.json", img_dir / f"{stem}.png"
    try:
        ok = image.is_file() and json.loads(side.read_text()).get("image_sha256") == _sha(image)
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        for p in (side, image):
            if p.exists():
                p.unlink()
    return ok


def augment(
    photos,
    out: str | os.PathLike,
    models,
    model,
    *,
    bins=None,
    landmarks_dir: str | os.PathLike | None = None,
    subjects: dict | None = None,
    config: SynthesisConfig = SynthesisConfig(),
    progress: Callable[[int, int], None] | None = None,
    batch: int = 16,
    overwrite: bool = False,
    force: bool = False,
) -> dict:
    """Synthesize every photo at every chosen bin's V-A label.

    Args:
        photos: photo files (or a folder: its images, sorted by name).
        out: the output folder.
        models: :class:`vafx.BinModels`.
        model: the morphable model.
        bins: bin numbers (default: every bin with frames of its own).
        landmarks_dir: a folder of ``<photo stem>.pts`` files (default: detect).
        subjects: photo stem -> subject id for the labels (default: the stem).
        config: :class:`vafx.SynthesisConfig`.
        progress: called with (jobs done, jobs).
        batch: bins synthesized per compiled call (memory grows with it:
            each bin's full-size output, 3 bytes per pixel, and the render of
            its face crop). A resumed run must use the same value (run.json
            records it).
        overwrite: replace the outputs of another run in ``out`` (else refused).
        force: keep fits that fail :func:`vafx.check_fits` (else such photos
            are skipped with the reason).

    Returns:
        The manifest (also written to ``OUT/manifest.json``).

    Raises:
        VafxError: ``out`` holds a run with other settings or inputs.
        ValueError: bad bins (outside the grid, listed twice) or photo names.
    """
    import imageio.v3 as iio

    out = Path(out)
    if not isinstance(photos, (list, tuple)):
        folder = Path(photos)
        if not folder.is_dir():
            raise DataFileError(folder, "not a folder of photos")
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    photos = [Path(p) for p in photos]
    stems = [p.stem for p in photos]
    if len(set(stems)) != len(stems):
        raise ValueError("photos must have distinct file names (stems name the outputs)")
    if bins is None:
        bins = [int(b) for b in np.nonzero(models.status != 2)[0]]
    try:
        bins = [int(b) for b in bins]
    except (TypeError, ValueError):
        raise ValueError(f"bins: expected bin numbers, got {bins!r}") from None
    twice = sorted({b for b in bins if bins.count(b) > 1})
    if twice:
        raise ValueError(f"bins: {twice} listed more than once")
    bins = sorted(bins)
    if not bins:
        raise ValueError("bins: none chosen")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    bad = [b for b in bins if not 0 <= b < models.num_bins]
    if bad:
        raise ValueError(f"bins {bad} are outside 0..{models.num_bins - 1}")
    if not photos:
        raise ValueError("photos: none given (or the folder holds no images)")
    record = _run_record(photos, bins, models, model, config, batch, landmarks_dir, subjects)
    _prepare(out, record, overwrite)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    total = len(photos) * len(bins)
    done = 0
    skipped = []
    for photo in photos:
        todo = [b for b in bins if not _kept(img_dir, f"{photo.stem}__b{b:03d}")]
        if not todo:
            done += len(bins)
            if progress:
                progress(done, total)
            continue
        try:
            img = read_photo(photo)
            if landmarks_dir is not None:
                pts = read_pts(Path(landmarks_dir) / f"{photo.stem}.pts", points=68)
            else:
                pts = detect_landmarks(img, name=str(photo))
            from ._fitting import FitConfig, fit_landmarks

            fits = fit_landmarks(model, np.asarray(pts, np.float32)[None], img.shape[:2],
                                 FitConfig(camera=config.camera), names=[str(photo)],
                                 check=not force)  # fmt: skip
        except (NoFaceError, DataFileError, FitError) as e:
            skipped.append((str(photo), str(e)))
            done += len(bins)
            if progress:
                progress(done, total)
            continue
        # chunks of `batch` bins per compiled call, a fixed partition of `bins` (so that
        # a resumed run computes every image in the same company, bit for bit); the
        # last is padded (repeating its last bin) so one compiled program serves all
        size = min(batch, len(bins))
        for k in range(0, len(bins), size):
            chunk = bins[k : k + size]
            if not any(b in todo for b in chunk):
                done += len(chunk)
                continue
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            res = synthesize_batch(img[None], models.labels[padded], models, model, fits=fits,
                                   config=config, names=[str(photo)])  # fmt: skip
            for j, b in enumerate(chunk):
                if b not in todo:
                    continue
                stem = f"{photo.stem}__b{b:03d}"
                buf = io.BytesIO()
                iio.imwrite(buf, res.images[0, j], extension=".png")
                png = buf.getvalue()
                with atomic_path(img_dir / f"{stem}.png") as tmp:
                    tmp.write_bytes(png)
                side = dict(res.sidecars[0][j], image=f"images/{stem}.png", bin=b,
                            subject=(subjects or {}).get(photo.stem, photo.stem),
                            image_sha256=hashlib.sha256(png).hexdigest())  # fmt: skip
                atomic_write_text(
                    img_dir / f"{stem}.json", json.dumps(side, indent=1, sort_keys=True)
                )
            done += len(chunk)
            if progress:
                progress(done, total)

    # rebuild the tables from the sidecars: a resumed run ends with the same files
    rows = []
    for photo in photos:
        for b in bins:
            side_path = img_dir / f"{photo.stem}__b{b:03d}.json"
            if side_path.exists():
                s = json.loads(side_path.read_text())
                rows.append(
                    [s["image"], str(photo), s["subject"], s["label_va"][0], s["label_va"][1], b]
                )
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["image", "source_photo", "subject", "valence", "arousal", "bin"])
    w.writerows(rows)
    atomic_write_text(out / "labels.csv", text.getvalue())
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["photo", "reason"])
    w.writerows(sorted(skipped))
    atomic_write_text(out / "skipped.csv", text.getvalue())
    files = sorted(
        p for p in out.rglob("*")
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith(".part")
    )  # fmt: skip
    manifest = dict(
        vafx=__version__,
        photos=len(photos),
        bins=bins,
        images=len(rows),
        skipped=len(skipped),
        config=json.loads(json.dumps(config.__dict__)),
        files={p.relative_to(out).as_posix(): _sha(p) for p in files},
    )
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
