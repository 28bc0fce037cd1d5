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

from .._errors import DataFileError, FitError, VafxError
from .._fit._landmarks import NoFaceError, detect_landmarks
from .._io._atomic import atomic_path, atomic_write_text
from .._io._photos import read_photo
from .._io._pts import read_pts
from .._version import __version__
from ._synthesis import SynthesisConfig, _model_on, synthesize_batch

__all__ = ["augment"]

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OUTPUTS = ("images", "labels.csv", "skipped.csv", "manifest.json", "run.json", "shards")
SHARDS = "shards"  # a --shard K/N process's record of its part (removed by merge)


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


def _prepare(out: Path, record: dict, overwrite: bool, sharded: bool = False) -> None:
    """Make OUT hold this run: refuse another run's outputs, or clear them with overwrite.

    Shards of one run write the same run.json (equal bytes, atomically), so they
    may start in any order and at once.
    """
    run = out / "run.json"
    if out.exists() and not out.is_dir():
        raise DataFileError(out, "exists and is not a folder")
    existing = [n for n in OUTPUTS if (out / n).exists()]
    if sharded:
        existing = [n for n in existing if n not in ("images", SHARDS, "run.json")] + (
            ["run.json"] if run.exists() else []
        )
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
    # leftovers of writes a kill interrupted (atomic_path's temporary names); a shard
    # removes only its own photos' (other shards may be writing now), before each photo
    if not sharded:
        _remove_leftovers(out)
    atomic_write_text(run, json.dumps(record, indent=1, sort_keys=True))


def _remove_leftovers(out: Path, stem: str | None = None) -> None:
    folders = (out / "images",) if stem is not None else (out, out / "images")
    pattern = f".{stem}__b*.part" if stem is not None else ".*.part"
    for folder in folders:
        if folder.is_dir():
            for p in folder.glob(pattern):
                p.unlink(missing_ok=True)


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
    shard: tuple[int, int] | None = None,
    devices=None,
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
        shard: (K, N): do only part K of N of the work (the photos whose
            position in the sorted list is K - 1 modulo N), for N independent
            processes (a SLURM array, several hosts); each writes only its own
            images and a record in ``OUT/shards/``; :func:`merge` (``vafx
            augment merge OUT``) then writes the tables and the manifest. The
            union of the N shards equals one run's output, file for file.
        devices: the local devices to spread the photos over (default: all);
            device d takes photos d, d + D, ... in a thread of its own, with its
            own copy of the model. One device: the sequential loop.

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
    if shard is not None:
        k, n = (int(x) for x in shard)
        if not (n >= 1 and 1 <= k <= n):
            raise ValueError(f"shard: K/N with 1 <= K <= N, got {k}/{n}")
        if overwrite:
            raise ValueError("shard: --overwrite would delete the other shards' outputs")
    record = _run_record(photos, bins, models, model, config, batch, landmarks_dir, subjects)
    _prepare(out, record, overwrite, shard is not None)
    mine = photos if shard is None else photos[k - 1 :: n]
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    import threading

    import jax

    total = len(mine) * len(bins)
    lock = threading.Lock()
    state = {"done": 0}
    skipped = []

    def advance(n: int) -> None:
        with lock:
            state["done"] += n
            if progress:
                progress(state["done"], total)

    def one_photo(photo: Path, model=model) -> None:
        if shard is not None:
            _remove_leftovers(out, photo.stem)
        todo = [b for b in bins if not _kept(img_dir, f"{photo.stem}__b{b:03d}")]
        if not todo:
            advance(len(bins))
            return
        try:
            img = read_photo(photo)
            if landmarks_dir is not None:
                pts = read_pts(Path(landmarks_dir) / f"{photo.stem}.pts", points=68)
            else:
                pts = detect_landmarks(img, name=str(photo))
            from .._fit._fitting import FitConfig, fit_landmarks

            fits = fit_landmarks(model, np.asarray(pts, np.float32)[None], img.shape[:2],
                                 FitConfig(camera=config.camera), names=[str(photo)],
                                 check=not force)  # fmt: skip
        except (NoFaceError, DataFileError, FitError) as e:
            with lock:
                skipped.append((str(photo), str(e)))
            advance(len(bins))
            return
        # chunks of `batch` bins per compiled call, a fixed partition of `bins` (so that
        # a resumed run computes every image in the same company, bit for bit); the
        # last is padded (repeating its last bin) so one compiled program serves all
        size = min(batch, len(bins))
        for c0 in range(0, len(bins), size):
            chunk = bins[c0 : c0 + size]
            if not any(b in todo for b in chunk):
                advance(len(chunk))
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
            advance(len(chunk))

    devs = list(jax.local_devices() if devices is None else devices)
    if len(devs) <= 1:
        for photo in mine:
            one_photo(photo)
    else:
        # photos spread over the devices: device d takes photos d, d + D, ... with its own
        # copy of the face model; each photo's work is the single-device program on its
        # device, so every file is the one a single device writes
        from concurrent.futures import ThreadPoolExecutor

        def on_device(d: int) -> None:
            with jax.default_device(devs[d]):
                local = _model_on(model, devs[d])
                for photo in mine[d :: len(devs)]:
                    one_photo(photo, local)

        with ThreadPoolExecutor(len(devs)) as pool:
            for f in [pool.submit(on_device, d) for d in range(len(devs))]:
                f.result()

    if shard is not None:
        k, n = shard
        record = dict(shard=[k, n], photos=[p.name for p in mine], skipped=sorted(skipped),
                      complete=True)  # fmt: skip
        atomic_write_text(out / SHARDS / f"{k}-of-{n}.json", json.dumps(record, indent=1))
        return dict(shard=[k, n], photos=len(mine), skipped=len(skipped))
    return _finish(out, photos, bins, skipped, config)


def _finish(out: Path, photos, bins, skipped, config) -> dict:
    """Tables and manifest, rebuilt from the sidecars: a resumed run ends with the same files."""
    img_dir = out / "images"
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
    w.writerows(sorted(tuple(x) for x in skipped))
    atomic_write_text(out / "skipped.csv", text.getvalue())
    files = sorted(
        p for p in out.rglob("*")
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith(".part")
        and SHARDS not in p.relative_to(out).parts
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


def merge(out: str | os.PathLike, photos=None) -> dict:
    """Finish a run made by ``--shard K/N`` processes: tables and manifest from all N shards.

    Checks that every shard finished (its record in ``OUT/shards/``) and that
    every kept image matches its sidecar's hash; then writes ``labels.csv``,
    ``skipped.csv`` and the manifest exactly as one run would, and removes the
    shard records, so the folder holds the files of a single run.

    Args:
        out: the output folder the shards wrote into.
        photos: the photos of the run (default: the run's photo folder is not
            known to the folder; the names in ``run.json`` are matched against
            the sidecars).

    Raises:
        VafxError: a shard missing or unfinished, or broken images.
    """
    from ._synthesis import SynthesisConfig

    out = Path(out)
    try:
        run = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        raise DataFileError(out / "run.json", "missing or unreadable: not an augmentation folder")
    records = sorted((out / SHARDS).glob("*-of-*.json"))
    if not records:
        raise VafxError(f"{out}: no shard records in {SHARDS}/: nothing to merge")
    got = [json.loads(p.read_text()) for p in records]
    n = got[0]["shard"][1]
    have = {r["shard"][0] for r in got if r["shard"][1] == n and r.get("complete")}
    missing = sorted(set(range(1, n + 1)) - have)
    if missing:
        raise VafxError(
            f"{out}: shards {missing} of {n} have not finished; run them (again) before merging"
        )
    names = sorted(run["inputs"])
    sources = {}
    for side in (out / "images").glob("*.json"):
        try:
            photo = json.loads(side.read_text())["photo"]
        except (OSError, ValueError, KeyError):
            continue
        sources.setdefault(Path(photo).name, photo)
    skipped = [tuple(x) for r in got for x in r["skipped"]]
    for photo, _ in skipped:
        sources.setdefault(Path(photo).name, photo)
    order = [Path(sources.get(nm, nm)) for nm in names]
    if photos is not None:
        order = [Path(p) for p in photos]
    bins = run["bins"]
    broken = [f"{p.stem}__b{b:03d}" for p in order for b in bins
              if (out / "images" / f"{p.stem}__b{b:03d}.json").exists()
              and not _kept(out / "images", f"{p.stem}__b{b:03d}")]  # fmt: skip
    if broken:
        raise VafxError(f"{out}: broken outputs {broken[:3]} removed; re-run their shard")
    config = SynthesisConfig(**run["config"])
    _remove_leftovers(out)
    manifest = _finish(out, order, bins, skipped, config)
    shutil.rmtree(out / SHARDS)
    return manifest
