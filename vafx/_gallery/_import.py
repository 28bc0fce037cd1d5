"""Importing users' 4D data: a folder of per-frame meshes and an annotation CSV.

The annotation CSV has a header and one row per frame::

    subject,sequence,frame,valence,arousal[,label][,neutral][,file]

``frame`` is the frame's number in its sequence (an integer). ``file`` is the
mesh's path relative to the mesh folder; without that column the mesh is
``<mesh folder>/<subject>/<sequence>/<frame>.obj`` (or ``.ply``), ``<frame>``
written as in the CSV. ``neutral`` (1/true/yes) marks a sequence's neutral
frame. The rule for sequences without a marked neutral: among the first third
of the sequence's frames (the onset, at least one frame), the frame whose V-A
is nearest (0, 0), the earliest on ties.

Checks, each reported with the CSV line or the mesh file: required columns,
numbers that parse, V-A in [-1, 1], a frame listed twice, a missing mesh file,
a vertex count or triangle list that differs from the template's, non-finite
coordinates, more than one marked neutral. By default the first problems stop
the import (nothing half-imported: the journal keeps the committed part, and
a re-run after fixing the files resumes). With ``skip_bad=True`` bad frames
are skipped and listed in ``<gallery>/import_problems.txt``; a sequence whose
neutral frame is bad is skipped whole.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_write_text
from .._io._obj import read_obj
from .._model._morphable import triangulate
from .._model._template import Template
from ._store import Gallery, GalleryError, GalleryWriter, SequenceData

log = logging.getLogger("vafx")

REQUIRED = ("subject", "sequence", "frame", "valence", "arousal")
_TRUE = {"1", "true", "yes", "y", "t"}


class ImportProblems(GalleryError):
    """Problems found in an import's input; ``problems`` lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"{len(problems)} problem(s) in the import's input (use skip_bad / --skip-bad to "
            f"skip bad frames):\n  {shown}{more}"
        )


@dataclasses.dataclass
class _Row:
    line: int
    subject: str
    sequence: str
    frame: int
    frame_text: str
    va: tuple[float, float]
    label: str | None
    neutral: bool
    file: str | None


def read_annotations(csv_path: str | os.PathLike) -> tuple[list[_Row], list[str]]:
    """Parse an annotation CSV into rows and a list of problems ("file:line: ...")."""
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(csv_path, f"cannot read ({e})") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataFileError(
            csv_path, f"line 1: missing column(s) {missing}; the header must have {list(REQUIRED)}"
        )
    reader.fieldnames = header
    rows, problems = [], []
    seen: dict[tuple[str, str, int], int] = {}
    for line, rec in enumerate(reader, start=2):
        where = f"{csv_path}:{line}"
        try:
            subject, sequence = rec["subject"].strip(), rec["sequence"].strip()
            frame_text = rec["frame"].strip()
            frame = int(frame_text)
            va = (float(rec["valence"]), float(rec["arousal"]))
        except (TypeError, ValueError, AttributeError):
            problems.append(f"{where}: cannot parse subject/sequence/frame/valence/arousal")
            continue
        if not subject or not sequence:
            problems.append(f"{where}: empty subject or sequence")
            continue
        if not all(np.isfinite(va)) or max(abs(va[0]), abs(va[1])) > 1:
            problems.append(f"{where}: V-A ({va[0]}, {va[1]}) outside [-1, 1]")
            continue
        key = (subject, sequence, frame)
        if key in seen:
            problems.append(
                f"{where}: frame {frame} of {subject}/{sequence} repeats line {seen[key]}"
            )
            continue
        seen[key] = line
        label = (rec.get("label") or "").strip() or None
        neutral = (rec.get("neutral") or "").strip().lower() in _TRUE
        file = (rec.get("file") or "").strip() or None
        rows.append(_Row(line, subject, sequence, frame, frame_text, va, label, neutral, file))
    return rows, problems


def neutral_frame(rows: list[_Row]) -> int:
    """Position (in ``rows``, sorted by frame) of a sequence's neutral frame, by the module's rule."""
    flagged = [i for i, r in enumerate(rows) if r.neutral]
    if flagged:
        return flagged[0]
    onset = max(1, len(rows) // 3)
    dist = [r.va[0] ** 2 + r.va[1] ** 2 for r in rows[:onset]]
    return int(np.argmin(dist))  # argmin takes the first on ties


#: A neutral chosen by the rule whose V-A lies farther than this from (0, 0) is
#: named in a warning: it is an expressive frame standing in for the neutral.
EXPRESSIVE_NEUTRAL = 0.3


def _report_neutrals(plan, annotations) -> None:
    """Warn (log) about sequences whose neutral the rule chose, naming expressive ones."""
    chosen = [
        (s, q, rs[neutral_frame(rs)]) for s, q, rs, _ in plan if not any(r.neutral for r in rs)
    ]
    if not chosen:
        return
    far = [(s, q, r) for s, q, r in chosen if np.hypot(*r.va) > EXPRESSIVE_NEUTRAL]
    log.warning(
        "%s: %d of %d sequences mark no neutral frame; each takes the frame of its onset "
        "nearest V-A (0, 0) (mark neutrals with a 'neutral' column)",
        annotations, len(chosen), len(plan),
    )  # fmt: skip
    if far:
        listed = ", ".join(
            f"{s}/{q} frame {r.frame_text} (V-A {r.va[0]:+.2f}, {r.va[1]:+.2f}; line {r.line})"
            for s, q, r in far[:5]
        )
        log.warning(
            "%s: %d of those neutrals are expressive (|V-A| > %.1f), so their sequences' "
            "differences start from an expression: %s%s",
            annotations, len(far), EXPRESSIVE_NEUTRAL, listed, " ..." if len(far) > 5 else "",
        )  # fmt: skip


def _read_mesh_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(vertices float64[n, 3], triangles int32[f, 3] or None) in file order, any OBJ or PLY."""
    try:
        if path.suffix.lower() == ".obj":
            mesh = read_obj(path)
            return mesh.vertices, (triangulate(mesh.faces)[0] if len(mesh.faces) else None)
        import trimesh

        m = trimesh.load(path, process=False, force="mesh")
        return np.asarray(m.vertices), np.asarray(m.faces, np.int32)
    except DataFileError:
        raise
    except Exception as e:  # trimesh raises many kinds
        raise DataFileError(path, f"cannot read the mesh ({type(e).__name__}: {e})") from None


def template_from_mesh(path: str | os.PathLike, units: str = "mm") -> Template:
    """A :class:`Template` from a mesh file (OBJ or PLY, vertex order kept)."""
    path = Path(path)
    verts, faces = _read_mesh_file(path)
    if faces is None or not len(faces):
        raise DataFileError(path, "has no triangles: a template needs its topology")
    if not np.isfinite(verts).all():
        raise DataFileError(path, "has NaN or infinite vertex coordinates")
    return Template(verts.astype(np.float32), faces.astype(np.int32), units)


def read_mesh(path: Path, template: Template) -> np.ndarray:
    """Vertices float32[n, 3] of a mesh file in the template's vertex order, checked.

    Raises:
        DataFileError: unreadable, wrong vertex count or triangles, non-finite.
    """
    n = template.num_vertices
    verts, faces = _read_mesh_file(path)
    if verts.shape != (n, 3):
        raise DataFileError(path, f"has {len(verts)} vertices, the template {n}")
    if faces is not None and len(faces) and not np.array_equal(faces, template.faces):
        raise DataFileError(
            path,
            f"its {len(faces)} triangles differ from the template's {len(template.faces)} "
            "(topology mismatch)",
        )
    if not np.isfinite(verts).all():
        bad = int(np.nonzero(~np.isfinite(verts).all(axis=1))[0][0])
        raise DataFileError(path, f"vertex {bad} has a NaN or infinite coordinate")
    return verts.astype(np.float32)


def _mesh_path(mesh_dir: Path, row: _Row) -> Path | None:
    if row.file is not None:
        p = mesh_dir / row.file
        return p if p.exists() else None
    for ext in (".obj", ".ply", ".OBJ", ".PLY"):
        p = mesh_dir / row.subject / row.sequence / f"{row.frame_text}{ext}"
        if p.exists():
            return p
    return None


def import_meshes(
    out: str | os.PathLike,
    mesh_dir: str | os.PathLike,
    annotations: str | os.PathLike,
    template: Template,
    *,
    skip_bad: bool = False,
    grid: int = 10,
    budget_bytes: int = 256 << 20,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Gallery:
    """Import a folder of per-frame meshes and an annotation CSV into a gallery.

    Resumable and idempotent: the input is identified by the CSV's content,
    the mesh folder, the template and the options; an interrupted import
    continues where it stopped, a finished one is not redone.

    Args:
        out: the gallery folder to write.
        mesh_dir: the folder of meshes.
        annotations: the annotation CSV (format in the module docstring).
        template: the template the meshes must match (vertex count, triangles).
        skip_bad: skip and list bad frames instead of stopping.
        grid: bins per V-A axis.
        budget_bytes: frame buffer per checkpoint (bounds memory).
        overwrite: replace an existing gallery at ``out``.
        progress: called with (sequences done, total sequences).

    Returns:
        The opened :class:`Gallery`.

    Raises:
        ImportProblems: problems in the input (without ``skip_bad``).
    """
    out, mesh_dir, annotations = Path(out), Path(mesh_dir), Path(annotations)
    if not mesh_dir.is_dir():
        raise DataFileError(mesh_dir, "not a folder")
    rows, problems = read_annotations(annotations)
    if not rows and not problems:
        raise DataFileError(annotations, "holds a header and no frames: nothing to import")
    groups: dict[tuple[str, str], list[_Row]] = {}
    for r in rows:
        groups.setdefault((r.subject, r.sequence), []).append(r)
    plan = []
    for (subject, sequence), rs in groups.items():
        rs.sort(key=lambda r: r.frame)
        if sum(r.neutral for r in rs) > 1:
            lines = [r.line for r in rs if r.neutral]
            problems.append(
                f"{annotations}:{lines[1]}: second neutral frame of {subject}/{sequence}"
            )
            continue
        if len(rs) < 2:
            problems.append(
                f"{annotations}:{rs[0].line}: {subject}/{sequence} has one frame; a sequence "
                "needs its neutral frame and at least one more"
            )
            continue
        paths = []
        for r in rs:
            p = _mesh_path(mesh_dir, r)
            if p is None:
                want = r.file or f"{r.subject}/{r.sequence}/{r.frame_text}.obj|.ply"
                problems.append(f"{annotations}:{r.line}: mesh file {mesh_dir / want} not found")
            paths.append(p)
        plan.append((subject, sequence, rs, paths))
    if problems and not skip_bad:
        raise ImportProblems(problems)
    _report_neutrals(plan, annotations)

    h = hashlib.sha256(annotations.read_bytes())
    h.update(str(mesh_dir.resolve()).encode())
    h.update(template.digest().encode())
    h.update(json.dumps(dict(skip_bad=skip_bad, grid=grid, budget=budget_bytes)).encode())
    source = dict(kind="meshes", annotations=str(annotations), meshes=str(mesh_dir))
    with GalleryWriter(
        out,
        template,
        "meshes:" + h.hexdigest(),
        grid=grid,
        budget_bytes=budget_bytes,
        overwrite=overwrite,
        source=source,
    ) as w:
        if w.complete:
            return Gallery(out)
        for i, (subject, sequence, rs, paths) in enumerate(plan):
            key = f"{subject}/{sequence}"
            if i < w.sequences_done:
                w.skip(key)
                continue
            k = neutral_frame(rs)
            verts, keep = [], []
            for j, (r, p) in enumerate(zip(rs, paths)):
                if p is None:
                    verts.append(None)
                    continue
                try:
                    verts.append(read_mesh(p, template))
                except DataFileError as e:
                    if not skip_bad:
                        raise
                    w.note(f"{annotations}:{r.line}: {e}")
                    verts.append(None)
            if verts[k] is None:
                w.note(f"{annotations}:{rs[k].line}: the neutral frame is bad: {key} skipped")
                w.add_empty(key)
                continue
            keep = [j for j in range(len(rs)) if j != k and verts[j] is not None]
            if not keep:
                w.note(f"{annotations}:{rs[k].line}: no usable frames: {key} skipped")
                w.add_empty(key)
                continue
            labels = [rs[j].label for j in keep]
            w.add(
                SequenceData(
                    subject,
                    sequence,
                    verts[k],
                    np.stack([verts[j] for j in keep]),
                    np.array([rs[j].va for j in keep], np.float32),
                    labels if any(lab is not None for lab in labels) else None,
                    np.array([rs[j].frame for j in keep]),
                    rs[k].va,
                    rs[k].frame,
                ),
                where=f"{annotations}:{rs[k].line}",
            )
            if progress is not None:
                progress(i + 1, len(plan))
        if skip_bad:
            w.checkpoint()
            listed = problems + w.problems
            report = "\n".join(listed) + ("\n" if listed else "")
            atomic_write_text(out / "import_problems.txt", report)
    return Gallery(out)
