"""The paper's data augmentation at scale: every photo x every chosen V-A bin.

Layout of an augmentation folder::

    OUT/images/<photo stem>__b042.png    one synthesized image per photo and bin
    OUT/images/<photo stem>__b042.json   its sidecar (label, bin, fit, versions)
    OUT/labels.csv                       image, source photo, subject, valence, arousal, bin
    OUT/skipped.csv                      photos without a face or unreadable, with the reason
    OUT/manifest.json                    written last: settings, counts, SHA-256 of every file

Resuming after a kill: an image is written atomically (temporary name, then a
rename) and its sidecar after it, so a finished pair is whole; on restart,
pairs that exist are kept and everything else is redone. ``labels.csv``,
``skipped.csv`` and the manifest are rebuilt from the sidecars at the end, so
a resumed run ends with exactly the files of an uninterrupted one, none lost
and none duplicated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._atomic import atomic_path, atomic_write_text
from ._errors import DataFileError
from ._landmarks import NoFaceError, detect_landmarks, read_photo, read_pts
from ._synthesis import SynthesisConfig, synthesize_batch
from ._version import __version__

__all__ = ["augment"]

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
            about 30 MB per bin for a 1-megapixel photo). A resumed run must
            use the same value to give the same bytes.

    Returns:
        The manifest (also written to ``OUT/manifest.json``).
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
    bins = sorted(int(b) for b in bins)
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    bad = [b for b in bins if not 0 <= b < models.num_bins]
    if bad:
        raise ValueError(f"bins {bad} are outside 0..{models.num_bins - 1}")
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    total = len(photos) * len(bins)
    done = 0
    skipped = []
    for photo in photos:
        todo = [b for b in bins if not (img_dir / f"{photo.stem}__b{b:03d}.json").exists()]
        if not todo:
            done += len(bins)
            if progress:
                progress(done, total)
            continue
        try:
            img = read_photo(photo)
            if landmarks_dir is not None:
                pts = read_pts(Path(landmarks_dir) / f"{photo.stem}.pts")
            else:
                pts = detect_landmarks(img, name=str(photo))
        except (NoFaceError, DataFileError) as e:
            skipped.append((str(photo), str(e)))
            done += len(bins)
            if progress:
                progress(done, total)
            continue
        # chunks of `batch` bins per compiled call, a fixed partition of `bins` (so that
        # a resumed run computes every image in the same company, bit for bit); the
        # last is padded (repeating its last bin) so one compiled program serves all
        fits = None
        size = min(batch, len(bins))
        for k in range(0, len(bins), size):
            chunk = bins[k : k + size]
            if not any(b in todo for b in chunk):
                done += len(chunk)
                continue
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            res = synthesize_batch(
                img[None], models.labels[padded], models, model,
                landmarks=None if fits is not None else np.asarray(pts, np.float32)[None],
                fits=fits, config=config, names=[str(photo)],
            )  # fmt: skip
            fits = res.fits
            for j, b in enumerate(chunk):
                if b not in todo:
                    continue
                stem = f"{photo.stem}__b{b:03d}"
                buf = io.BytesIO()
                iio.imwrite(buf, res.images[0, j], extension=".png")
                with atomic_path(img_dir / f"{stem}.png") as tmp:
                    tmp.write_bytes(buf.getvalue())
                side = dict(res.sidecars[0][j], image=f"images/{stem}.png", bin=b,
                            subject=(subjects or {}).get(photo.stem, photo.stem))  # fmt: skip
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
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
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
