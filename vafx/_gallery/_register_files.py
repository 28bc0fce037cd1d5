"""``vafx gallery register``: a folder of raw scans in, meshes in template order out.

Input: the scans (OBJ or PLY, any topology) and the annotation CSV of
``vafx gallery import`` (``subject,sequence,frame,valence,arousal[,label]
[,neutral][,file]``; without ``file`` a scan is ``SCANS/<subject>/<sequence>/
<frame>.obj`` or ``.ply``). Optionally per-frame 3D landmarks: a text file
beside each scan's path under the landmarks folder, with the scan's suffix
replaced by ``.txt``, 68 rows ``x y z`` in the iBUG-68 order (``nan nan nan``
for a missing point).

Output (``OUT/``): ``<subject>/<sequence>/<frame>.obj`` in the template's
vertex order and frame; ``frames.csv``, the annotations with a ``file`` column
naming those meshes (``vafx gallery import OUT --annotations OUT/frames.csv``
reads them); ``registration.csv``, one row of residuals per frame; and
``register.json``, the settings. Sequences are the unit of work: each one's
meshes are written atomically, then its report part (``OUT/.parts/``); a
re-run skips finished sequences, and a run with other settings into the same
folder is an error unless ``overwrite``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_write_text
from .._model._morphable import MorphableModel
from .._model._template import Template
from ._import import _mesh_path, _read_mesh_file, neutral_frame, read_annotations
from ._register import RegisterConfig, register_sequence, registration_setup

log = logging.getLogger("vafx")

REPORT_COLUMNS = (
    "subject", "sequence", "frame", "scan", "scan_vertices", "to_scan_mean", "to_scan_p95",
    "from_scan_mean", "from_scan_p95", "unmatched", "scan_far",
)  # fmt: skip

#: Scans with fewer vertices or triangles cannot hold a face.
MIN_SCAN_VERTICES = 100


def read_scan(path: Path, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float32[N, 3] times ``scale``, triangles int32[F, 3]) of a scan, checked."""
    verts, faces = _read_mesh_file(path)
    if faces is None or len(faces) == 0:
        raise DataFileError(path, "has no triangles: registration needs a surface, not points")
    if len(verts) < MIN_SCAN_VERTICES:
        raise DataFileError(path, f"has {len(verts)} vertices: too few for a face")
    if not np.isfinite(verts).all():
        raise DataFileError(path, "has NaN or infinite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise DataFileError(path, "has triangles that index missing vertices")
    v = verts.astype(np.float64)
    area = np.linalg.norm(
        np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]), axis=1
    )
    good = area > 1e-12 * max(np.ptp(v, axis=0).max(), 1e-30) ** 2
    if good.sum() < MIN_SCAN_VERTICES:
        raise DataFileError(path, "is degenerate: (nearly) all its triangles have zero area")
    return (v * scale).astype(np.float32), faces[good].astype(np.int32)


def read_landmarks3d(path: Path, scale: float = 1.0) -> np.ndarray:
    """float32[68, 3] (NaN rows missing) from a text file of 68 rows ``x y z``."""
    try:
        rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        pts = np.array([[float(x) for x in r] for r in rows], np.float64)
    except (OSError, ValueError) as e:
        raise DataFileError(path, f"cannot read 3D landmarks ({e})") from None
    if pts.shape != (68, 3):
        raise DataFileError(path, f"must hold 68 rows of 'x y z' (iBUG-68), has shape {pts.shape}")
    return (pts * scale).astype(np.float32)


def _fingerprint(annotations: Path, scans: Path, template: Template, config, scale, lm_dir) -> str:
    h = hashlib.sha256(annotations.read_bytes())
    h.update(str(scans.resolve()).encode())
    h.update(template.digest().encode())
    h.update(json.dumps([dataclasses.asdict(config), scale, str(lm_dir)], sort_keys=True).encode())
    return h.hexdigest()


def _write_obj(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    buf = io.StringIO()
    np.savetxt(buf, verts, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, faces + 1, fmt="f %d %d %d")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def _part_name(subject: str, sequence: str) -> str:
    return hashlib.sha1(f"{subject}\0{sequence}".encode()).hexdigest()[:16] + ".json"


def register_scans(
    out: str | os.PathLike,
    scans_dir: str | os.PathLike,
    annotations: str | os.PathLike,
    template: Template,
    model: MorphableModel | None,
    *,
    config: RegisterConfig = RegisterConfig(),
    landmarks_dir: str | os.PathLike | None = None,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Register every annotated scan onto the template; write meshes, frames.csv, a report.

    Args:
        out: the output folder.
        scans_dir: the folder of scans.
        annotations: the annotation CSV (as for ``vafx gallery import``).
        template: the gallery's template.
        model: the morphable model the template was cut from (its prior), or None.
        config: registration settings.
        landmarks_dir: folder of per-frame 3D landmark files, or None.
        scale: multiplies scan (and landmark) coordinates into template units
            (scans in mm onto the ICT template in cm: 0.1).
        overwrite: replace a registration made with other input or settings.
        progress: called with (frames done, frames).

    Returns:
        The path of ``frames.csv``.

    Raises:
        DataFileError: unreadable or degenerate scans and landmark files, CSV
            problems; :class:`~vafx._gallery._register.RegistrationError` for a
            scan that cannot be registered (each names the file).
    """
    out, scans_dir, annotations = Path(out), Path(scans_dir), Path(annotations)
    lm_dir = None if landmarks_dir is None else Path(landmarks_dir)
    if not scans_dir.is_dir():
        raise DataFileError(scans_dir, "not a folder")
    rows, problems = read_annotations(annotations)
    if problems:
        raise DataFileError(annotations, "; ".join(problems[:5]))
    if not rows:
        raise DataFileError(annotations, "holds a header and no frames: nothing to register")
    groups: dict[tuple[str, str], list] = {}
    for r in rows:
        groups.setdefault((r.subject, r.sequence), []).append(r)
    plan = []
    for (subject, sequence), rs in groups.items():
        rs.sort(key=lambda r: r.frame)
        paths = []
        for r in rs:
            p = _mesh_path(scans_dir, r)
            if p is None:
                want = r.file or f"{r.subject}/{r.sequence}/{r.frame_text}.obj|.ply"
                raise DataFileError(
                    annotations, f"line {r.line}: scan {scans_dir / want} not found"
                )
            paths.append(p)
        plan.append((subject, sequence, rs, paths))

    fp = _fingerprint(annotations, scans_dir, template, config, scale, lm_dir)
    manifest = out / "register.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("fingerprint") != fp:
            if not overwrite:
                raise DataFileError(
                    out, "holds a registration of other input or settings (use --overwrite)"
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        atomic_write_text(
            manifest,
            json.dumps(dict(fingerprint=fp, config=dataclasses.asdict(config), scale=scale,
                            annotations=str(annotations), scans=str(scans_dir)), indent=1),
        )  # fmt: skip
    parts = out / ".parts"
    parts.mkdir(exist_ok=True)
    setup = registration_setup(template, model, config)
    faces = np.asarray(template.faces, np.int32)
    total = sum(len(rs) for _, _, rs, _ in plan)
    done = 0
    for subject, sequence, rs, paths in plan:
        part = parts / _part_name(subject, sequence)
        if part.exists():
            done += len(rs)
            if progress is not None:
                progress(done, total)
            continue
        k = neutral_frame(rs)
        order = [k] + [j for j in range(len(rs)) if j != k]
        scans = [read_scan(paths[j], scale) for j in order]
        lms = []
        for j in order:
            if lm_dir is None:
                lms.append(None)
                continue
            rel = paths[j].relative_to(scans_dir).with_suffix(".txt")
            lp = lm_dir / rel
            lms.append(read_landmarks3d(lp, scale) if lp.exists() else None)
        base = done

        def seq_progress(n, _total, base=base):
            if progress is not None:
                progress(base + n, total)

        regs, reports = register_sequence(
            setup, scans, lms, config, names=[str(paths[j]) for j in order], progress=seq_progress
        )
        records = []
        for p, (j, r, rep) in enumerate(zip(order, regs, reports)):
            row = rs[j]
            rel = Path(row.subject) / row.sequence / f"{row.frame_text}.obj"
            _write_obj(out / rel, r.verts, faces)
            records.append(
                dict(subject=row.subject, sequence=row.sequence, frame=row.frame_text,
                     scan=str(paths[j]), scan_vertices=len(scans[p][0]),
                     file=str(rel), **{f: round(float(v), 6) for f, v in rep._asdict().items()})
            )  # fmt: skip
        atomic_write_text(part, json.dumps(records))
        done += len(rs)
    return _write_tables(out, annotations, plan, parts)


def _write_tables(out: Path, annotations: Path, plan, parts: Path) -> Path:
    """frames.csv and registration.csv from the finished parts, atomically."""
    by_key = {}
    for subject, sequence, _, _ in plan:
        for rec in json.loads((parts / _part_name(subject, sequence)).read_text()):
            by_key[(rec["subject"], rec["sequence"], rec["frame"])] = rec
    text = annotations.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    frames = io.StringIO()
    w = csv.DictWriter(frames, fieldnames=[f for f in fields if f != "file"] + ["file"],
                       lineterminator="\n")  # fmt: skip
    w.writeheader()
    for rec in reader:
        key = (rec["subject"].strip(), rec["sequence"].strip(), rec["frame"].strip())
        rec = {k: (v or "").strip() for k, v in rec.items() if k in fields}
        rec["file"] = by_key[key]["file"]
        w.writerow(rec)
    report = io.StringIO()
    rw = csv.DictWriter(report, fieldnames=list(REPORT_COLUMNS), extrasaction="ignore",
                        lineterminator="\n")  # fmt: skip
    rw.writeheader()
    for rec in by_key.values():
        rw.writerow(rec)
    atomic_write_text(out / "registration.csv", report.getvalue())
    atomic_write_text(out / "frames.csv", frames.getvalue())
    return out / "frames.csv"
