"""Writing face meshes (OBJ, PLY) with texture coordinates, through trimesh."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from jax.typing import ArrayLike

from ._atomic import atomic_path

MESH_FORMATS = (".obj", ".ply")


def split_uv_seams(
    faces: np.ndarray, faces_uv: np.ndarray, num_vertices: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give every vertex one texture coordinate by duplicating seam vertices.

    OBJ and PLY as trimesh writes them hold one UV per vertex. Where a vertex
    has several UVs (a seam), the extra (vertex, uv) pairs become new vertices
    appended after the original ``num_vertices``, so vertex ``i < n`` of the
    written file is still vertex ``i`` of the template.

    Args:
        faces: int[f, 3] vertex indices.
        faces_uv: int[f, 3] uv indices.
        num_vertices: n.

    Returns:
        (int[f, 3] new faces, int[n + s] source vertex of each output vertex,
        int[n + s] uv index of each output vertex).
    """
    v = faces.reshape(-1).astype(np.int64)
    t = faces_uv.reshape(-1).astype(np.int64)
    pairs = np.unique(np.stack([v, t], 1), axis=0)  # sorted by vertex, then uv
    first = np.ones(len(pairs), bool)
    first[1:] = pairs[1:, 0] != pairs[:-1, 0]
    uv_of = np.zeros(num_vertices, np.int64)
    uv_of[pairs[first, 0]] = pairs[first, 1]
    extra = pairs[~first]
    src = np.concatenate([np.arange(num_vertices), extra[:, 0]])
    uv_index = np.concatenate([uv_of, extra[:, 1]])
    # new index of each (v, t) pair
    new_index = np.empty(len(pairs), np.int64)
    new_index[first] = pairs[first, 0]
    new_index[~first] = num_vertices + np.arange(len(extra))
    key = v * (t.max() + 1) + t
    pair_key = pairs[:, 0] * (t.max() + 1) + pairs[:, 1]
    pos = np.searchsorted(pair_key, key)
    return new_index[pos].reshape(faces.shape), src, uv_index


def export_mesh(
    path: str | os.PathLike,
    vertices: ArrayLike,
    faces: ArrayLike,
    uv: ArrayLike | None = None,
    faces_uv: ArrayLike | None = None,
) -> Path:
    """Write a triangle mesh as OBJ or PLY (by suffix), atomically.

    Vertex order is kept: vertex ``i`` of the file is ``vertices[i]``; with
    UVs, seam vertices are duplicated after the original ones (see
    :func:`split_uv_seams`).

    Args:
        path: ``.obj`` or ``.ply``.
        vertices: float[n, 3].
        faces: int[f, 3].
        uv: float[t, 2] in [0, 1], or None.
        faces_uv: int[f, 3] indices into ``uv``, or None for per-vertex UVs
            (``t == n``).

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise ValueError(f"{path}: mesh format must be one of {MESH_FORMATS}")
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (n, 3), got {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("vertices hold NaN or infinite coordinates")
    visual = None
    import trimesh  # 0.9 s to import: only when a mesh is written

    if uv is not None:
        uv = np.asarray(uv, np.float64)
        if faces_uv is None:
            if uv.shape[0] != vertices.shape[0]:
                raise ValueError("per-vertex uv must have one row per vertex")
            src, uv_index = np.arange(vertices.shape[0]), np.arange(vertices.shape[0])
        else:
            faces, src, uv_index = split_uv_seams(faces, np.asarray(faces_uv), vertices.shape[0])
        vertices = vertices[src]
        visual = trimesh.visual.TextureVisuals(uv=uv[uv_index])
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)
    with atomic_path(path) as tmp:
        if suffix == ".obj":
            data = trimesh.exchange.obj.export_obj(
                mesh, include_texture=uv is not None, include_normals=False, write_texture=False
            )
            tmp.write_text(data)
        else:
            tmp.write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="binary"))
    return path
