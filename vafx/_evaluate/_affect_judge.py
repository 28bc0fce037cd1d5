"""Affect judges a user plugs in: does a viewer's model read the target on the output?

vafx does not ship an affect estimator (the good ones are trained on data with
licences of their own: AffectNet, FER2013, AFEW-VA). A *judge* is one the user
supplies, in one of two forms:

- a Python callable, named ``path/to/file.py:name`` or ``package.module:name``
  (a class is instantiated without arguments). It is called with a batch of
  face crops, uint8[N, S, S, 3] RGB, S its ``face_size`` attribute (default
  :data:`FACE_SIZE`), and returns either float[N, 2] (valence, arousal in
  [-1, 1]) or a mapping {class name: float[N] probabilities};
- an ONNX file (``model.onnx``, run with onnxruntime, ``pip install
  onnxruntime``), described by a JSON file beside it (``model.onnx.json``):
  ``{"size": 64, "channels": "grey" | "rgb" | "bgr", "layout": "nhwc" | "nchw",
  "scale": 0.00392, "mean": [0.5], "std": [0.5], "output": "va" |
  ["angry", "disgust", ...], "softmax": false}`` (the input is
  ``(pixel * scale - mean) / std``).

A judge that answers in classes is projected onto the circumplex: the
probability-weighted mean of each class's place (:data:`CLASS_VA`, the basic
emotions where vafx's gallery places them, read from Russell 1980 and Scherer
2005; neutral at the origin). Pass your own places for other class sets.

Faces are cut the same way from a synthesized image and from its source photo:
a square around the source photo's 68 landmarks (side 1.3 times the larger side
of their bounding box, centred on the box raised by a tenth of that side, for the
forehead), so that the two crops differ only by what synthesis changed.
:func:`judge_report` then compares the judged change (output minus photo)
with the target: per dimension Pearson's r, the least-squares slope of the
judged change on the target, and Lin's concordance (CCC) of the judged V-A of
the outputs with the targets.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._gallery._facs import _BASIC_VA

__all__ = [
    "CLASS_VA",
    "FACE_SIZE",
    "concordance",
    "face_crop",
    "judge_report",
    "load_judge",
    "project_classes",
]

#: Side (pixels) of the face crops a Python judge gets unless it says otherwise.
FACE_SIZE = 224

#: Where each class of a categorical judge lies in the V-A plane: the basic emotions
#: at the places vafx's gallery gives them (:mod:`vafx._gallery._facs`), neutral at 0.
#: Keys are lower case; :data:`CLASS_ALIASES` maps other spellings to them.
CLASS_VA: dict[str, tuple[float, float]] = {**_BASIC_VA, "neutral": (0.0, 0.0)}
#: Other names of the classes (FER2013's, AffectNet's, adjectives).
CLASS_ALIASES = {
    "happy": "happiness", "joy": "happiness", "surprised": "surprise", "afraid": "fear",
    "fearful": "fear", "angry": "anger", "disgusted": "disgust", "sad": "sadness",
    "contemptuous": "contempt",
}  # fmt: skip


def class_name(name: str) -> str:
    """A class's key in :data:`CLASS_VA` (lower case, aliases resolved)."""
    key = str(name).strip().lower()
    return CLASS_ALIASES.get(key, key)


def project_classes(
    probs: Mapping[str, np.ndarray], places: Mapping[str, tuple[float, float]] | None = None
) -> np.ndarray:
    """float[N, 2]: the probability-weighted mean place of the classes (renormalized).

    Raises:
        ValueError: a class with no place (pass ``places``).
    """
    places = {class_name(k): v for k, v in (places or CLASS_VA).items()}
    names = list(probs)
    missing = [n for n in names if class_name(n) not in places]
    if missing:
        raise ValueError(f"judge classes with no V-A place: {missing} (known: {sorted(places)})")
    p = np.stack([np.asarray(probs[n], np.float64) for n in names], -1)  # [N, K]
    if p.ndim != 2 or not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("judge class probabilities: finite, non-negative, one value per face")
    at = np.array([places[class_name(n)] for n in names], np.float64)  # [K, 2]
    return (p @ at) / np.maximum(p.sum(-1, keepdims=True), 1e-12)


def face_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """uint8[size, size, 3]: the face square described in the module docstring.

    ``landmarks`` float[68, 2] (x, y) place the square (use the source photo's for
    both it and its outputs); outside the image is the image's edge repeated.
    """
    from skimage.transform import resize

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    pts = np.asarray(landmarks, np.float64)
    pts = pts[np.isfinite(pts).all(1)]
    lo, hi = pts.min(0), pts.max(0)
    side = 1.3 * float((hi - lo).max())
    cx, cy = (lo + hi) / 2
    cy -= 0.2 * float((hi - lo).max()) / 2  # the forehead above the brows
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(int(round(side)), 2)
    ys = np.clip(np.arange(y0, y0 + s), 0, img.shape[0] - 1)
    xs = np.clip(np.arange(x0, x0 + s), 0, img.shape[1] - 1)
    crop = img[ys[:, None], xs[None, :], :3]
    out = resize(crop, (size, size), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _load_callable(spec: str) -> Callable:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ValueError(f"--judge {spec!r}: FILE.py:NAME, package.module:NAME or FILE.onnx")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise DataFileError(path, "judge file not found")
        mod_spec = importlib.util.spec_from_file_location(f"vafx_judge_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as e:  # the user's code: say where it failed
            raise DataFileError(path, f"importing the judge failed: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ValueError(f"--judge {spec!r}: cannot import {target!r} ({e})") from e
    obj = getattr(module, attr, None)
    if obj is None:
        raise ValueError(f"--judge {spec!r}: {target} has no {attr!r}")
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise ValueError(f"--judge {spec!r}: {attr!r} is not callable")
    return obj


class _OnnxJudge:
    """An ONNX model run with onnxruntime, its input and output described by a JSON file."""

    def __init__(self, path: Path, config: Path | None = None):
        config = config or path.with_name(path.name + ".json")
        if not config.is_file():
            raise DataFileError(config, "an ONNX judge needs this description (see --judge)")
        try:
            cfg = json.loads(config.read_text())
            self.face_size = int(cfg["size"])
            self.channels = cfg.get("channels", "rgb")
            self.layout = cfg.get("layout", "nchw")
            self.scale = float(cfg.get("scale", 1 / 255))
            self.mean = np.asarray(cfg.get("mean", [0.0]), np.float32)
            self.std = np.asarray(cfg.get("std", [1.0]), np.float32)
            self.output = cfg.get("output", "va")
            self.softmax = bool(cfg.get("softmax", False))
        except (ValueError, KeyError, TypeError) as e:
            raise DataFileError(config, f"bad judge description: {e}") from e
        if self.channels not in ("rgb", "bgr", "grey") or self.layout not in ("nchw", "nhwc"):
            raise DataFileError(config, "channels: rgb, bgr or grey; layout: nchw or nhwc")
        try:
            import onnxruntime
        except ImportError:
            raise ImportError("an ONNX judge needs onnxruntime: pip install onnxruntime") from None
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, faces: np.ndarray):
        x = faces.astype(np.float32)
        if self.channels == "grey":
            x = (x @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
        elif self.channels == "bgr":
            x = x[..., ::-1]
        x = (x * self.scale - self.mean) / self.std
        if self.layout == "nchw":
            x = np.transpose(x, (0, 3, 1, 2))
        y = np.asarray(self.session.run(None, {self.input: np.ascontiguousarray(x)})[0])
        if self.output == "va":
            return y[:, :2]
        if self.softmax:
            y = np.exp(y - y.max(-1, keepdims=True))
            y = y / y.sum(-1, keepdims=True)
        return {name: y[:, k] for k, name in enumerate(self.output)}


class Judge:
    """A loaded judge: ``judge(faces) -> (float[N, 2] V-A, {class: float[N]} or None)``."""

    def __init__(self, fn: Callable, name: str, places=None):
        self.fn, self.name, self.places = fn, name, places
        self.face_size = int(getattr(fn, "face_size", FACE_SIZE))

    def __call__(self, faces: np.ndarray) -> tuple[np.ndarray, dict | None]:
        faces = np.asarray(faces, np.uint8)
        out = self.fn(faces)
        n = len(faces)
        if isinstance(out, Mapping):
            probs = {str(k): np.asarray(v, np.float64).reshape(-1) for k, v in out.items()}
            if any(len(v) != n for v in probs.values()):
                raise ValueError(
                    f"judge {self.name}: {n} faces, class probabilities of another length"
                )
            return project_classes(probs, self.places), probs
        va = np.asarray(out, np.float64)
        if va.shape != (n, 2) or not np.isfinite(va).all():
            raise ValueError(
                f"judge {self.name}: expected float[{n}, 2] finite V-A or a mapping of class "
                f"probabilities, got {type(out).__name__} of shape {getattr(va, 'shape', '?')}"
            )
        return va, None


def load_judge(spec: str | os.PathLike, *, places: Mapping | None = None) -> Judge:
    """The judge named by ``spec``: ``FILE.onnx``, ``FILE.py:NAME`` or ``package.module:NAME``.

    ``places`` (class -> (valence, arousal)) replaces :data:`CLASS_VA` for a judge
    that answers in classes.
    """
    s = str(spec)
    if s.lower().endswith(".onnx"):
        path = Path(s)
        if not path.is_file():
            raise DataFileError(path, "judge model not found")
        return Judge(_OnnxJudge(path), path.name, places)
    return Judge(_load_callable(s), s, places)


def concordance(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two float[N] (population moments)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    den = x.var() + y.var() + (mx - my) ** 2
    return float(2 * cov / den) if den > 0 else float("nan")


def _pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    sx, sy = x.std(), y.std()
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy)) if sx * sy > 0 else np.nan


def _slope(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    vx = x.var()
    return float(((x - x.mean()) * (y - y.mean())).mean() / vx) if vx > 0 else float("nan")


def judge_report(target: np.ndarray, judged: np.ndarray, photo: np.ndarray) -> dict:
    """Per-run agreement of a judge with the targets.

    Args:
        target: float[N, 2] the targets' V-A.
        judged: float[N, 2] the judge's V-A of the outputs.
        photo: float[N, 2] the judge's V-A of each output's source photo.

    Returns:
        For "valence" and "arousal": ``r`` and ``slope`` of the judged change
        (judged - photo) against the target, and ``ccc`` of the judged V-A with
        the target; and ``n``.
    """
    target, judged, photo = (np.asarray(a, np.float64) for a in (target, judged, photo))
    change = judged - photo
    out: dict = dict(n=int(len(target)))
    for k, name in enumerate(("valence", "arousal")):
        out[name] = dict(
            r=_pearson(target[:, k], change[:, k]),
            slope=_slope(target[:, k], change[:, k]),
            ccc=concordance(target[:, k], judged[:, k]),
        )
    return out
