"""Reader and writer for eos's morphable-model files (cereal binary archives).

eos (github.com/patrikhuber/eos) stores a ``MorphableModel`` with cereal's
``BinaryOutputArchive``: little-endian raw values, no field names. Layout:

* ``uint32`` class version (1 to 4) of the MorphableModel;
* ``shape_model`` and ``color_model``, each a PcaModel: ``mean``,
  ``orthonormal_pca_basis``, ``eigenvalues`` (Eigen matrices: ``int32`` rows,
  ``int32`` cols, then float32 values column-major) and ``triangle_list``
  (``uint64`` count, then ``int32[3]`` per triangle);
* version >= 2: ``expression_model``, an optional (``bool`` "empty" flag) of a
  variant (``int32`` index: 0 = PcaModel, 1 = Blendshapes);
* version >= 3: ``landmark_definitions``, an optional map (``uint64`` count,
  then per entry a string, ``uint64`` length + bytes, and an ``int32``);
* ``texture_coordinates``: ``uint64`` count, then ``float64[2]`` per vertex;
* version 4: ``texture_triangle_indices``: like ``triangle_list``.

A blendshapes file (``expression_blendshapes_3448.bin``) is a ``uint64``
count of (name string, Eigen column vector) pairs.

This is the format the Surrey Face Model ships in, and what eos's conversion
scripts write for the Basel Face Models (2009, 2017) and the 4DFM.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from ._morphable import MorphableModel, make_model

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

EOS_VERSIONS = (1, 2, 3, 4)
_MAX_COUNT = 1 << 31


class _Reader:
    def __init__(self, path: Path, data: bytes):
        self.path, self.data, self.pos = path, data, 0

    def take(self, nbytes: int, what: str) -> memoryview:
        if nbytes < 0 or self.pos + nbytes > len(self.data):
            raise DataFileError(
                self.path,
                f"truncated: needs {nbytes} bytes for {what} at byte {self.pos}, "
                f"the file has {len(self.data)}",
            )
        out = memoryview(self.data)[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return out

    def scalar(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def count(self, what: str) -> int:
        n = self.scalar("Q", what + " count")
        if n > _MAX_COUNT:
            raise DataFileError(self.path, f"implausible {what} count {n} at byte {self.pos - 8}")
        return n

    def matrix(self, what: str) -> np.ndarray:
        rows = self.scalar("i", what + " rows")
        cols = self.scalar("i", what + " cols")
        if rows < 0 or cols < 0 or rows * cols > _MAX_COUNT:
            raise DataFileError(self.path, f"{what} has an impossible size {rows} x {cols}")
        buf = self.take(4 * rows * cols, what)
        return np.frombuffer(buf, "<f4").reshape(cols, rows).T.copy()  # column-major

    def string(self, what: str) -> str:
        n = self.count(what)
        try:
            return bytes(self.take(n, what)).decode("utf-8")
        except UnicodeDecodeError:
            raise DataFileError(self.path, f"{what} is not UTF-8 text") from None

    def int_triples(self, what: str) -> np.ndarray:
        n = self.count(what)
        return np.frombuffer(self.take(12 * n, what), "<i4").reshape(n, 3).copy()

    def flag(self, what: str) -> bool:
        b = self.scalar("B", what)
        if b > 1:
            raise DataFileError(self.path, f"{what} flag is {b}, expected 0 or 1")
        return bool(b)

    def pca_model(self, what: str) -> dict:
        return {
            "mean": self.matrix(what + " mean"),
            "basis": self.matrix(what + " basis"),
            "eigenvalues": self.matrix(what + " eigenvalues"),
            "triangles": self.int_triples(what + " triangle list"),
        }


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except OSError as e:
        raise DataFileError(path, f"cannot read: {e.strerror or e}") from None


def read_eos_blendshapes(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read an eos blendshapes file.

    Returns:
        (names, float32[k, 3n] offsets from the mean).
    """
    path = Path(path)
    r = _Reader(path, _read_bytes(path))
    k = r.count("blendshape")
    names, shapes = [], []
    for i in range(k):
        names.append(r.string(f"blendshape {i} name"))
        m = r.matrix(f"blendshape {i} deformation")
        if m.shape[1] != 1:
            raise DataFileError(path, f"blendshape {names[-1]!r} is {m.shape}, not a column")
        shapes.append(m[:, 0])
    if r.pos != len(r.data):
        raise DataFileError(path, f"{len(r.data) - r.pos} bytes left after the last blendshape")
    if len({s.shape for s in shapes}) > 1:
        raise DataFileError(path, "blendshapes differ in length")
    dim = shapes[0].shape[0] if shapes else 0
    return names, np.stack(shapes) if shapes else np.zeros((0, dim), np.float32)


def read_eos_model(path: str | os.PathLike) -> dict:
    """Parse an eos MorphableModel file into plain numpy arrays.

    Returns:
        dict with ``version``, ``shape`` and ``colour`` (PCA dicts with
        ``mean`` float32[3n, 1], ``basis`` float32[3n, k] (orthonormal columns),
        ``eigenvalues`` float32[k, 1], ``triangles`` int32[f, 3]),
        ``expression`` (None, ``("pca", dict)`` or ``("blendshapes", names,
        float32[k, 3n])``), ``landmarks`` (dict name -> vertex, or None),
        ``uv`` float64[t, 2] and ``uv_triangles`` int32[f, 3] (may be empty).

    Raises:
        DataFileError: not an eos model (unknown version), truncated, or
            trailing bytes.
    """
    path = Path(path)
    r = _Reader(path, _read_bytes(path))
    version = r.scalar("I", "model version")
    if version not in EOS_VERSIONS:
        raise DataFileError(
            path,
            f"not an eos MorphableModel file: version field is {version}, expected 1 to 4 "
            "(wrong file type, or written by an eos release this reader does not know)",
        )
    out = {"version": version, "expression": None, "landmarks": None}
    out["shape"] = r.pca_model("shape model")
    out["colour"] = r.pca_model("colour model")
    if version >= 2 and not r.flag("expression model empty"):
        kind = r.scalar("i", "expression model kind")
        if kind == 0:
            out["expression"] = ("pca", r.pca_model("expression model"))
        elif kind == 1:
            k = r.count("blendshape")
            names, shapes = [], []
            for i in range(k):
                names.append(r.string(f"blendshape {i} name"))
                shapes.append(r.matrix(f"blendshape {i} deformation")[:, 0])
            out["expression"] = ("blendshapes", names, np.stack(shapes) if shapes else None)
        else:
            raise DataFileError(
                path, f"expression model kind {kind} is neither PCA (0) nor blendshapes (1)"
            )
    if version >= 3 and not r.flag("landmark definitions empty"):
        k = r.count("landmark definition")
        out["landmarks"] = {
            r.string("landmark name"): r.scalar("i", "landmark vertex") for _ in range(k)
        }
    n_uv = r.count("texture coordinate")
    out["uv"] = (
        np.frombuffer(r.take(16 * n_uv, "texture coordinates"), "<f8").reshape(n_uv, 2).copy()
    )
    out["uv_triangles"] = (
        r.int_triples("texture triangle") if version >= 4 else np.zeros((0, 3), np.int32)
    )
    if r.pos != len(r.data):
        raise DataFileError(
            path, f"{len(r.data) - r.pos} bytes left after the model: not an eos model"
        )
    return out


def read_ibug_mapping(path: str | os.PathLike) -> np.ndarray:
    """Read eos's iBUG-to-model landmark mapping (TOML, 1-based landmark numbers).

    Returns:
        int32[68], 0-based vertex per 0-based landmark; -1 where unmapped.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(_read_bytes(path).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataFileError(path, f"not a TOML landmark mapping: {e}") from None
    table = doc.get("landmark_mappings")
    if not isinstance(table, dict):
        raise DataFileError(path, "no [landmark_mappings] table")
    lm = np.full(68, -1, np.int32)
    for key, vertex in table.items():
        try:
            number = int(key)
        except ValueError:
            raise DataFileError(path, f"landmark {key!r} is not an iBUG number") from None
        if not 1 <= number <= 68 or not isinstance(vertex, int) or vertex < 0:
            raise DataFileError(path, f"bad mapping {key} = {vertex!r}")
        lm[number - 1] = vertex
    return lm


def read_contours(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read eos's model contour file: (right chain, left chain), int32 vertices."""
    path = Path(path)
    try:
        doc = json.loads(_read_bytes(path))
        c = doc["model_contour"]
        return np.asarray(c["right_contour"], np.int32), np.asarray(c["left_contour"], np.int32)
    except (ValueError, KeyError, TypeError) as e:
        raise DataFileError(path, f"not an eos model contour file: {e!r}") from None


def _reshape_basis(basis: np.ndarray, n: int) -> np.ndarray:
    # (3n, k) with x y z interleaved per vertex -> (k, n, 3)
    return np.ascontiguousarray(basis.T.reshape(-1, n, 3))


def load_eos_model(
    path: str | os.PathLike,
    *,
    blendshapes: str | os.PathLike | None = None,
    landmarks: str | os.PathLike | None = None,
    contours: str | os.PathLike | None = None,
    name: str | None = None,
    units: str = "mm",
    whole_face_region: bool = False,
) -> MorphableModel:
    """Load an eos morphable model and its side files as a MorphableModel.

    Args:
        path: the model (``sfm_shape_3448.bin``, or a converted BFM/4DFM).
        blendshapes: an eos blendshapes file; used when the model holds no
            expression model of its own.
        landmarks: ``ibug_to_sfm.txt``-style TOML mapping.
        contours: ``sfm_model_contours.json``-style contour chains.
        name: model name (default: the file's stem).
        units: length unit of the model (eos models are in millimetres).
        whole_face_region: define the region ``face`` as every vertex (true
            of face-only models such as the SFM).

    The shape basis is stored orthonormal with its eigenvalues, so
    ``identity_std = sqrt(eigenvalues)``; the same holds for colour and for
    a PCA expression model.
    """
    path = Path(path)
    m = read_eos_model(path)
    mean = m["shape"]["mean"][:, 0]
    if mean.size % 3:
        raise DataFileError(path, f"shape mean has {mean.size} values, not a multiple of 3")
    n = mean.size // 3
    shape = m["shape"]
    if (
        shape["basis"].shape[0] != mean.size
        or shape["eigenvalues"].shape[0] != shape["basis"].shape[1]
    ):
        raise DataFileError(path, "shape basis does not match the mean or the eigenvalues")
    fields = dict(
        source=str(path),
        mean=mean.reshape(n, 3),
        identity_basis=_reshape_basis(shape["basis"], n),
        identity_std=np.sqrt(np.maximum(shape["eigenvalues"][:, 0], 0)),
        faces=shape["triangles"],
        name=name or path.stem,
        units=units,
        regions={"face": np.arange(n)} if whole_face_region else {},
    )
    col = m["colour"]
    if col["mean"].size:
        if col["mean"].size != mean.size:
            raise DataFileError(path, "colour model has a different number of vertices")
        fields.update(
            colour_mean=col["mean"][:, 0].reshape(n, 3),
            colour_basis=_reshape_basis(col["basis"], n),
            colour_std=np.sqrt(np.maximum(col["eigenvalues"][:, 0], 0)),
        )
    expr = m["expression"]
    if expr is not None and expr[0] == "pca":
        e = expr[1]
        fields.update(
            expression_basis=_reshape_basis(e["basis"], n),
            expression_std=np.sqrt(np.maximum(e["eigenvalues"][:, 0], 0)),
            expression_names=[f"pca{i:03d}" for i in range(e["basis"].shape[1])],
            expression_kind="pca",
        )
        if np.any(e["mean"] != 0):
            fields["mean"] = fields["mean"] + e["mean"][:, 0].reshape(n, 3)
    elif expr is not None:
        fields.update(expression_basis=expr[2].reshape(-1, n, 3), expression_names=expr[1])
    elif blendshapes is not None:
        names, shapes = read_eos_blendshapes(blendshapes)
        if shapes.shape[1] != mean.size:
            raise DataFileError(
                blendshapes, f"blendshapes have {shapes.shape[1] // 3} vertices, the model {n}"
            )
        fields.update(expression_basis=shapes.reshape(-1, n, 3), expression_names=names)
    if m["uv"].shape[0]:
        if m["uv"].shape[0] != n and not m["uv_triangles"].size:
            raise DataFileError(
                path, "per-vertex texture coordinates do not match the vertex count"
            )
        fields["uv"] = m["uv"]
        fields["faces_uv"] = m["uv_triangles"] if m["uv_triangles"].size else shape["triangles"]
    if landmarks is not None:
        fields["landmarks"] = read_ibug_mapping(landmarks)
    elif m["landmarks"]:
        lm = np.full(68, -1, np.int32)
        for key, vertex in m["landmarks"].items():
            if key.isdigit() and 1 <= int(key) <= 68:
                lm[int(key) - 1] = vertex
        fields["landmarks"] = lm
    if contours is not None:
        fields["contour_right"], fields["contour_left"] = read_contours(contours)
    try:
        return make_model(**fields)
    except ValueError as e:
        if isinstance(e, DataFileError):
            raise
        raise DataFileError(path, str(e)) from None


SFM_FILES = {
    "model": "sfm_shape_3448.bin",
    "blendshapes": "expression_blendshapes_3448.bin",
    "landmarks": "ibug_to_sfm.txt",
    "contours": "sfm_model_contours.json",
}


def load_sfm(folder: str | os.PathLike) -> MorphableModel:
    """Load the Surrey Face Model from a folder laid out as eos's ``share/``."""
    folder = Path(folder)
    p = {k: folder / v for k, v in SFM_FILES.items()}
    if not p["model"].exists():
        raise DataFileError(p["model"], "missing: the Surrey Face Model file")
    return load_eos_model(
        p["model"],
        blendshapes=p["blendshapes"] if p["blendshapes"].exists() else None,
        landmarks=p["landmarks"] if p["landmarks"].exists() else None,
        contours=p["contours"] if p["contours"].exists() else None,
        name="sfm",
        whole_face_region=True,
    )


# ------------------------------------------------------------------- writer
def _w_matrix(buf: list, m: np.ndarray) -> None:
    m = np.asarray(m, np.float32)
    if m.ndim == 1:
        m = m[:, None]
    buf.append(struct.pack("<ii", m.shape[0], m.shape[1]))
    buf.append(np.asfortranarray(m).astype("<f4").tobytes(order="F"))


def _w_triples(buf: list, t) -> None:
    t = np.asarray(t, "<i4").reshape(-1, 3)
    buf.append(struct.pack("<Q", t.shape[0]))
    buf.append(t.tobytes())


def _w_string(buf: list, s: str) -> None:
    b = s.encode("utf-8")
    buf.append(struct.pack("<Q", len(b)) + b)


def _w_pca(buf: list, mean, basis, eigenvalues, triangles) -> None:
    _w_matrix(buf, mean)
    _w_matrix(buf, basis)
    _w_matrix(buf, eigenvalues)
    _w_triples(buf, triangles)


def write_eos_model(path: str | os.PathLike, model: MorphableModel, version: int = 4) -> None:
    """Write a MorphableModel as an eos model file (the inverse of the reader).

    The identity (and colour) bases are written as eos stores them: columns
    scaled to unit norm with eigenvalues = (std * column norm)^2, so that a
    model read back samples the same faces. Written atomically.
    """
    from .._io._atomic import atomic_write_bytes

    if version not in EOS_VERSIONS:
        raise ValueError(f"eos model version must be one of {EOS_VERSIONS}, got {version}")
    n = model.num_vertices

    def pca(basis, std):
        b = np.asarray(basis, np.float64).reshape(basis.shape[0], 3 * n).T  # (3n, k)
        norm = np.linalg.norm(b, axis=0)
        safe = np.where(norm > 0, norm, 1)
        return (b / safe).astype(np.float32), ((np.asarray(std) * norm) ** 2).astype(np.float32)

    buf: list[bytes] = [struct.pack("<I", version)]
    basis, eig = pca(model.identity_basis, model.identity_std)
    _w_pca(buf, np.asarray(model.mean).reshape(-1), basis, eig, model.faces)
    if model.colour_mean is not None:
        cb, ce = pca(model.colour_basis, model.colour_std)
        _w_pca(buf, np.asarray(model.colour_mean).reshape(-1), cb, ce, model.faces)
    else:
        _w_pca(buf, np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 3)))
    if version >= 2:
        if model.num_expressions == 0:
            buf.append(struct.pack("<B", 1))
        elif model.expression_kind == "pca":
            eb, ee = pca(model.expression_basis, model.expression_std)
            buf.append(struct.pack("<Bi", 0, 0))
            _w_pca(buf, np.zeros(3 * n), eb, ee, model.faces)
        else:
            buf.append(struct.pack("<Bi", 0, 1))
            buf.append(struct.pack("<Q", model.num_expressions))
            for name, shape, s in zip(
                model.expression_names,
                np.asarray(model.expression_basis),
                np.asarray(model.expression_std),
            ):
                _w_string(buf, name)
                _w_matrix(buf, (shape * s).reshape(-1))
    if version >= 3:
        lm = np.asarray(model.landmarks)
        valid = np.nonzero(lm >= 0)[0]
        if valid.size == 0:
            buf.append(struct.pack("<B", 1))
        else:
            buf.append(struct.pack("<BQ", 0, valid.size))
            for i in valid:
                _w_string(buf, str(i + 1))
                buf.append(struct.pack("<i", int(lm[i])))
    uv = np.zeros((0, 2)) if model.uv is None else np.asarray(model.uv, np.float64)
    if version < 4 and uv.shape[0] not in (0, n):
        raise ValueError("eos versions below 4 need per-vertex texture coordinates")
    buf.append(struct.pack("<Q", uv.shape[0]))
    buf.append(uv.astype("<f8").tobytes())
    if version >= 4:
        _w_triples(buf, np.zeros((0, 3)) if model.faces_uv is None else model.faces_uv)
    atomic_write_bytes(path, b"".join(buf))
