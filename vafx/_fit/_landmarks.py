"""68-point iBUG landmarks: detection (optional dlib) and the mirror permutation.

Coordinates are pixels, x right and y down, with (0, 0) the centre of the
top-left pixel; the .pts files they are read from and written to are
:mod:`vafx._io._pts`'s, photos :mod:`vafx._io._photos`'s.

Detection (``pip install "vafx[detect]"``) uses dlib's HOG face detector and
the 68-point shape predictor that the ``face_recognition_models`` package ships
(no download at run time). That predictor was trained on the iBUG 300-W data,
whose licence excludes commercial use: check it before using detections in a
product.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .._errors import DataFileError, VafxError
from .._io._photos import read_photo

__all__ = [
    "NoFaceError",
    "detect_in_files",
    "detect_landmarks",
    "face_descriptor",
]


#: The iBUG 68 points' permutation under a horizontal mirror: point i of a mirrored
#: photo is point IBUG_MIRROR[i] of the original (right and left swap their labels).
IBUG_MIRROR = (
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65]
)  # fmt: skip


def mirror_landmarks(points, width: int) -> np.ndarray:
    """The landmarks float[68, 2] of the photo mirrored left to right (``photo[:, ::-1]``)."""
    p = np.asarray(points, np.float32)[IBUG_MIRROR].copy()
    p[:, 0] = width - 1 - p[:, 0]
    return p


class NoFaceError(VafxError, ValueError):
    """No face was found in a photo."""


@functools.cache
def _dlib_models():
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        raise ImportError(
            'landmark detection needs the optional extra: pip install "vafx[detect]" '
            "(dlib-bin and face-recognition-models)"
        ) from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        frm.pose_predictor_model_location()
    )


@functools.cache
def _dlib_recognizer():
    import dlib
    import face_recognition_models as frm

    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


#: Photos larger than this (pixels, longer side) are searched for faces at this
#: size: dlib's detector grows with the pixels (minutes and gigabytes at 24
#: megapixels) and finds faces down to about 40 px, so a large photo loses only
#: faces under 40 x ceil(its side / 1600) px. The 68 points are then predicted on
#: the full-resolution photo.
DETECT_SIDE = 1600


def _detect_faces(detector, img, upsample):
    """dlib face rectangles in full-resolution pixels, searched at most DETECT_SIDE wide."""
    import dlib

    side = max(img.shape[:2])
    if side <= DETECT_SIDE:
        return list(detector(img, upsample))
    f = -(-side // DETECT_SIDE)  # an integer factor: block means, fast at any size
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    blocks = img[:h, :w].reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3), dtype=np.float32)
    small = np.ascontiguousarray(np.clip(blocks + 0.5, 0, 255).astype(np.uint8))
    return [
        dlib.rectangle(
            round(r.left() * f), round(r.top() * f), round(r.right() * f), round(r.bottom() * f)
        )  # fmt: skip
        for r in detector(small, upsample)
    ]


def detect_landmarks(image, *, all_faces: bool = False, upsample: int = 1, name: str = "image"):
    """68 iBUG landmarks of the faces in a photo.

    Args:
        image: uint8[H, W, 3] RGB (or [H, W] grey).
        all_faces: return every face (largest first) instead of the largest.
        upsample: detector upsampling (1 finds faces down to about 40 px).
        name: the photo's name for error messages.

    Returns:
        float32[68, 2], or float32[F, 68, 2] with ``all_faces``.

    Raises:
        NoFaceError: no face found (the message names the photo).
    """
    detector, predictor = _dlib_models()
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"{name}: detection needs uint8 pixels, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    img = np.ascontiguousarray(img)
    rects = _detect_faces(detector, img, upsample)
    if not rects:
        raise NoFaceError(f"{name}: no face found")
    rects.sort(key=lambda r: -r.area())
    out = []
    for r in rects if all_faces else rects[:1]:
        shape = predictor(img, r)
        out.append([[shape.part(i).x, shape.part(i).y] for i in range(68)])
    pts = np.asarray(out, np.float32)
    return pts if all_faces else pts[0]


def face_descriptor(image, *, name: str = "image") -> np.ndarray:
    """The face-recognition embedding of a photo's largest face: float32[128].

    dlib's ResNet face descriptor (from ``face_recognition_models``,
    ``vafx[detect]``); two photos of the same person are usually within a
    Euclidean distance of 0.6 (dlib's threshold on Labeled Faces in the Wild).
    Used to check that synthesis keeps the person's identity.

    Raises:
        NoFaceError: no face found (the message names the photo).
    """
    detector, predictor = _dlib_models()
    img = np.ascontiguousarray(np.asarray(image)[..., :3])
    if img.dtype != np.uint8:
        raise TypeError(f"{name}: needs uint8 pixels, got {img.dtype}")
    rects = sorted(_detect_faces(detector, img, 1), key=lambda r: -r.area())
    if not rects:
        raise NoFaceError(f"{name}: no face found")
    shape = predictor(img, rects[0])
    return np.asarray(_dlib_recognizer().compute_face_descriptor(img, shape), np.float32)


def detect_in_files(paths, *, all_faces: bool = False, progress=None):
    """Detect landmarks in many photos; photos without a face are reported, not fatal.

    Args:
        paths: photo files.
        all_faces: every face per photo (arrays [F, 68, 2]) instead of the largest.
        progress: called with (photos done, photos).

    Returns:
        (found: {path: landmarks}, skipped: [(path, reason)]) in input order.
    """
    paths = [Path(p) for p in paths]
    found, skipped = {}, []
    for i, p in enumerate(paths):
        try:
            found[p] = detect_landmarks(read_photo(p), all_faces=all_faces, name=str(p))
        except (NoFaceError, DataFileError) as e:
            skipped.append((p, str(e)))
        if progress is not None:
            progress(i + 1, len(paths))
    return found, skipped
