"""Loaders for the ICT Face Model Light (ICT-FaceKit, MIT licence).

Two forms hold the same model:

* the upstream folder ``FaceXModel/`` (as cloned from ICT-VGL/ICT-FaceKit):
  ``generic_neutral_mesh.obj``, ``identity000.obj`` ... ``identity099.obj``,
  one OBJ per expression named in ``vertex_indices.json``;
* a compact ``.npz`` with the keys ``neutral``, ``identity``, ``expression``,
  ``expression_names``, ``faces``, ``uv``, ``faces_uv`` and ``landmarks68``,
  where identity and expression shapes are stored as offsets from the neutral.

Units are centimetres. Identity weights have the prior N(0, 1) upstream (the
modes are not orthonormal), so ``identity_std`` is 1.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._derived import derived_arrays, file_identity
from .._io._obj import read_obj
from ._morphable import MorphableModel, make_model, triangulate

#: Vertex ranges (inclusive) of the model's parts, from the upstream README.
ICT_REGION_RANGES: dict[str, tuple[int, int]] = {
    "face": (0, 9408),
    "narrow_face": (0, 6705),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_socket_left": (13294, 13677),
    "eye_socket_right": (13678, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeball_left": (21451, 23020),
    "eyeball_right": (23021, 24590),
    "lacrimal_fluid_left": (24591, 24794),
    "lacrimal_fluid_right": (24795, 24998),
    "eye_blend_left": (24999, 25022),
    "eye_blend_right": (25023, 25046),
    "eye_occlusion_left": (25047, 25198),
    "eye_occlusion_right": (25199, 25350),
    "eyelashes_left": (25351, 26034),
    "eyelashes_right": (26035, 26718),
}

#: Extended jawlines (upstream README): supersets of the vertices that stand in
#: for the contour landmarks; right = iBUG 1-8 side, left = iBUG 10-17 side.
ICT_CONTOUR_RIGHT = (1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673,
                     2199, 801, 1447, 800)  # fmt: skip
ICT_CONTOUR_LEFT = (3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253,
                    3466, 3490, 3493, 3496, 3498)  # fmt: skip

ICT_NUM_VERTICES = 26719
ICT_NEUTRAL = "generic_neutral_mesh.obj"
ICT_INDEX_FILE = "vertex_indices.json"
ICT_NPZ_KEYS = ("neutral", "identity", "expression", "expression_names", "faces", "uv",
                "faces_uv", "landmarks68")  # fmt: skip


def ict_regions() -> dict[str, np.ndarray]:
    """Named vertex regions of the ICT topology, plus ``eyes`` (both eyeballs)."""
    regions = {k: np.arange(a, b + 1) for k, (a, b) in ICT_REGION_RANGES.items()}
    regions["eyes"] = np.concatenate([regions["eyeball_left"], regions["eyeball_right"]])
    return regions


def _assemble(source, neutral, identity, expression, names, faces4, uv, faces_uv4, lm):
    tris, src = triangulate(faces4)
    ftri = None
    if faces_uv4 is not None:
        ftri, src_uv = triangulate(faces_uv4)
        if not np.array_equal(src, src_uv):
            raise DataFileError(source, "texture faces do not match the vertex faces")
    return make_model(
        source=str(source),
        mean=neutral,
        identity_basis=identity,
        expression_basis=expression,
        expression_names=names,
        faces=tris,
        uv=uv,
        faces_uv=ftri,
        landmarks=lm,
        contour_right=np.asarray(ICT_CONTOUR_RIGHT),
        contour_left=np.asarray(ICT_CONTOUR_LEFT),
        regions=ict_regions() if neutral.shape[0] == ICT_NUM_VERTICES else {},
        name="ict",
        units="cm",
        expression_kind="blendshapes",
    )


def load_ict_npz(path: str | os.PathLike) -> MorphableModel:
    """Load the compact ICT form (``ict_facekit_light.npz``).

    Raises:
        DataFileError: the file is missing, not an npz, lacks a key, or holds
            arrays of inconsistent shapes.
    """
    path = Path(path)

    def read() -> dict:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ICT_NPZ_KEYS if k not in z.files]
            if missing:
                raise DataFileError(path, f"not an ICT model npz: missing keys {missing}")
            return {k: z[k] for k in ICT_NPZ_KEYS}

    try:
        # decompressed once into vafx's cache (0.4 s a process otherwise), keyed by the file
        d = derived_arrays("ict-npz", file_identity(path) + b"|1", read)
    except DataFileError:
        raise
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataFileError(path, f"cannot read as .npz (truncated or corrupt?): {e}") from None
    neutral = d["neutral"]
    if neutral.ndim != 2 or neutral.shape[1] != 3:
        raise DataFileError(path, f"'neutral' must be (n, 3), got {neutral.shape}")
    n = neutral.shape[0]
    for key in ("identity", "expression"):
        if d[key].ndim != 3 or d[key].shape[1:] != (n, 3):
            raise DataFileError(path, f"{key!r} must be (k, {n}, 3), got {d[key].shape}")
    if len(d["expression_names"]) != d["expression"].shape[0]:
        raise DataFileError(path, "expression_names and expression differ in length")
    faces = d["faces"]
    if faces.ndim != 2 or faces.shape[1] != 4:
        raise DataFileError(path, f"'faces' must be (f, 4), got {faces.shape}")
    if faces.max() >= n or faces[:, :3].min() < 0:
        raise DataFileError(path, f"'faces' holds vertex indices outside [0, {n})")
    if d["faces_uv"].shape != faces.shape:
        raise DataFileError(path, "'faces_uv' must have the shape of 'faces'")
    try:
        return _assemble(
            path, neutral, d["identity"], d["expression"], [str(s) for s in d["expression_names"]],
            faces, d["uv"], d["faces_uv"], d["landmarks68"],
        )  # fmt: skip
    except ValueError as e:
        if isinstance(e, DataFileError):
            raise
        raise DataFileError(path, str(e)) from None


def ict_folder_files(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Identity and expression file names a complete upstream folder holds."""
    index = _read_index(Path(folder) / ICT_INDEX_FILE)
    return [f"identity{i:03d}.obj" for i in range(100)], [f"{e}.obj" for e in index["expressions"]]


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFileError(path, "missing: an ICT FaceXModel folder needs vertex_indices.json")
    except (OSError, ValueError) as e:
        raise DataFileError(path, f"cannot read as JSON: {e}") from None
    for key in ("expressions", "idx_to_landmark_verts"):
        if key not in index:
            raise DataFileError(path, f"no {key!r} entry: not ICT-FaceKit's vertex_indices.json")
    return index


def load_ict_folder(folder: str | os.PathLike, *, require_complete: bool = True) -> MorphableModel:
    """Load the upstream ICT-FaceKit ``FaceXModel/`` folder.

    Args:
        folder: the folder holding ``generic_neutral_mesh.obj`` and the rest.
        require_complete: demand all 100 identity files and every expression
            listed in ``vertex_indices.json``. With False, the identity files
            present (``identity000.obj`` upward, without gaps) and the listed
            expressions present are loaded, in upstream order.

    Returns:
        The model; shapes are float32(shape) - float32(neutral).

    Raises:
        DataFileError: a file is missing (when complete), unreadable, has a
            different vertex count or a different face list than the neutral.
    """
    folder = Path(folder)
    index = _read_index(folder / ICT_INDEX_FILE)
    neutral_path = folder / ICT_NEUTRAL
    if not neutral_path.exists():
        raise DataFileError(neutral_path, "missing: the neutral mesh of the ICT model")
    base = read_obj(neutral_path)
    neutral = base.vertices
    neutral32 = neutral.astype(np.float32)

    def offset(name: str) -> np.ndarray:
        p = folder / name
        m = read_obj(p, faces=False)
        if m.vertices.shape != neutral.shape:
            raise DataFileError(
                p, f"has {m.vertices.shape[0]} vertices, the neutral mesh {neutral.shape[0]}"
            )
        if m.topology_digest != base.topology_digest:
            raise DataFileError(
                p, f"its face list differs from {ICT_NEUTRAL}: not the same topology"
            )
        # Round both meshes to float32 first, then subtract: the same arrays as
        # the compact npz form, bit for bit.
        return m.vertices.astype(np.float32) - neutral32

    identity_files, expression_files = ict_folder_files(folder)
    if require_complete:
        missing = [f for f in identity_files + expression_files if not (folder / f).exists()]
        if missing:
            raise DataFileError(
                folder,
                f"incomplete ICT folder: {len(missing)} files missing (first: {missing[0]}); "
                "run `vafx fetch-model ict` or pass require_complete=False",
            )
    else:
        present = [f for f in identity_files if (folder / f).exists()]
        identity_files = identity_files[: len(present)]
        if present != identity_files:
            raise DataFileError(folder, "identity files must run from identity000.obj without gaps")
        expression_files = [f for f in expression_files if (folder / f).exists()]
    n = neutral.shape[0]
    identity = (
        np.stack([offset(f) for f in identity_files]) if identity_files else np.zeros((0, n, 3))
    )
    expression = (
        np.stack([offset(f) for f in expression_files]) if expression_files else np.zeros((0, n, 3))
    )
    names = [f[: -len(".obj")] for f in expression_files]
    lm = np.asarray(index["idx_to_landmark_verts"])
    uv = base.uv if base.uv.shape[0] else None
    fuv = base.faces_uv if uv is not None else None
    try:
        return _assemble(folder, neutral32, identity, expression, names, base.faces, uv, fuv, lm)
    except ValueError as e:
        if isinstance(e, DataFileError):
            raise
        raise DataFileError(folder, str(e)) from None
