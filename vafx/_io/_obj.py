"""A fast reader for Wavefront OBJ meshes with polygons of up to four corners.

trimesh reads any format, but it merges, re-orders or splits vertices unless
told otherwise and takes about a second per ICT file. Morphable models and
4D galleries need the vertex order exactly as written, so their OBJ files go
through this reader: vertices, texture coordinates, and faces with their
texture indices, nothing else.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from .._errors import DataFileError


@dataclass(frozen=True)
class ObjMesh:
    """What :func:`read_obj` returns.

    Attributes:
        vertices: float64[n, 3].
        uv: float64[t, 2] (empty when the file has no ``vt`` lines).
        faces: int64[f, 4] 0-based vertex indices; triangles have -1 last.
        faces_uv: int64[f, 4] 0-based ``uv`` indices, -1 where absent.
        topology_digest: SHA-1 of the file's face lines, to compare topologies
            of many files without parsing their faces.
    """

    vertices: np.ndarray
    uv: np.ndarray
    faces: np.ndarray
    faces_uv: np.ndarray
    topology_digest: str


def _floats(path, rows: list[bytes], width: int, what: str) -> np.ndarray:
    if not rows:
        return np.zeros((0, width))
    try:
        flat = np.array(b" ".join(rows).split(), dtype=np.float64)
    except ValueError as e:
        raise DataFileError(path, f"a {what} line holds something that is not a number ({e})")
    if flat.size == len(rows) * width:
        return flat.reshape(-1, width)
    # Lines with extra values (vertex colours, w): keep the first `width`.
    out = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        parts = r.split()
        if len(parts) < width:
            raise DataFileError(
                path, f"{what} number {i + 1} has {len(parts)} values, needs {width}"
            )
        out[i] = [float(p) for p in parts[:width]]
    return out


def read_obj(path: str | os.PathLike, *, faces: bool = True) -> ObjMesh:
    """Read vertices, UVs and faces of an OBJ file, in file order.

    Args:
        path: the .obj file.
        faces: parse faces (False reads only vertices and UVs and the topology
            digest, several times faster).

    Raises:
        DataFileError: unreadable file, malformed numbers, polygons with more
            than four corners, or face indices out of range.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise DataFileError(path, f"cannot read: {e.strerror or e}") from None
    lines = data.splitlines()
    v_rows = [ln[2:] for ln in lines if ln.startswith(b"v ")]
    vt_rows = [ln[3:] for ln in lines if ln.startswith(b"vt ")]
    f_rows = [ln[2:] for ln in lines if ln.startswith(b"f ")]
    if not v_rows:
        raise DataFileError(path, "no vertices ('v' lines): not an OBJ mesh, or empty")
    vertices = _floats(path, v_rows, 3, "vertex")
    uv = _floats(path, vt_rows, 2, "texture coordinate")
    digest = hashlib.sha1(b"\n".join(f_rows)).hexdigest()
    n, t = vertices.shape[0], uv.shape[0]
    fv = np.full((len(f_rows) if faces else 0, 4), -1, np.int64)
    ft = np.full_like(fv, -1)
    if faces:
        for i, row in enumerate(f_rows):
            corners = row.split()
            if not 3 <= len(corners) <= 4:
                raise DataFileError(
                    path, f"face {i + 1} has {len(corners)} corners; only triangles and quads"
                )
            for k, c in enumerate(corners):
                parts = c.split(b"/")
                try:
                    vi = int(parts[0])
                    ti = int(parts[1]) if len(parts) > 1 and parts[1] else 0
                except ValueError:
                    raise DataFileError(path, f"face {i + 1} has a bad index {c!r}") from None
                fv[i, k] = vi - 1 if vi > 0 else n + vi
                if ti:
                    ft[i, k] = ti - 1 if ti > 0 else t + ti
        used = fv >= 0
        if used.any() and (fv[used].min() < 0 or fv[used].max() >= n):
            raise DataFileError(path, f"face vertex indices outside 1..{n}")
        used_t = ft >= 0
        if used_t.any() and ft[used_t].max() >= t:
            raise DataFileError(path, f"face texture indices outside 1..{t}")
    return ObjMesh(vertices, uv, fv, ft, digest)
