"""Find and load a face model by name or path."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from .._errors import DataFileError, ModelNotFoundError
from .._paths import ENV_DATA, cache_root, data_root, models_dir
from ._cache import is_model_file, load_model_file, save_model
from ._eos import SFM_FILES, load_eos_model, load_sfm
from ._ict import ICT_INDEX_FILE, ICT_NEUTRAL, load_ict_folder, load_ict_npz
from ._morphable import MorphableModel

log = logging.getLogger("vafx")

MODEL_NAMES = ("ict", "sfm")
DEFAULT_MODEL = "ict"
ICT_NPZ = "ict_facekit_light.npz"
CONVERTED = "model.npz"


def _folder_key(folder: Path) -> str:
    h = hashlib.sha1(str(folder.resolve()).encode())
    for p in sorted(folder.iterdir()):
        if p.suffix in (".obj", ".json"):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_ict_folder_cached(folder: str | os.PathLike, *, require_complete: bool = True):
    """Load an upstream ICT folder, converting it once to vafx's model file.

    The converted file lives in ``<cache>/converted/`` and is keyed by the
    folder's path and its files' sizes and modification times, so an edited
    folder converts again.
    """
    folder = Path(folder)
    target = cache_root() / "converted" / f"ict-{_folder_key(folder)}-{int(require_complete)}.npz"
    if target.exists():
        try:
            return load_model_file(target)
        except DataFileError as e:
            log.warning("ignoring a damaged converted model (%s); converting again", e)
    model = load_ict_folder(folder, require_complete=require_complete)
    try:
        save_model(target, model)
    except OSError as e:  # a read-only cache must not stop the load
        log.warning("could not cache the converted model at %s: %s", target, e)
    return model


def load_model_path(path: str | os.PathLike) -> MorphableModel:
    """Load a model from a file or folder, recognising the format.

    Recognised: vafx model files (``.npz`` with ``__meta__``); the compact ICT
    ``.npz``; eos ``.bin`` models (with the SFM side files beside them when
    present); folders holding any of these, ``model.npz`` (what
    ``vafx fetch-model`` writes), an upstream ICT ``FaceXModel/`` folder, or
    eos's ``share/`` layout.

    Raises:
        ModelNotFoundError: nothing recognisable at ``path``.
        DataFileError: a recognised file is corrupt.
    """
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix == ".npz":
            return load_model_file(p) if is_model_file(p) else load_ict_npz(p)
        if p.suffix == ".bin":
            if p.name == SFM_FILES["model"]:
                return load_sfm(p.parent)
            return load_eos_model(p)
        raise DataFileError(p, "unknown model file type (expected .npz or an eos .bin)")
    if p.is_dir():
        if (p / CONVERTED).is_file():
            return load_model_file(p / CONVERTED)
        if (p / ICT_NPZ).is_file():
            return load_ict_npz(p / ICT_NPZ)
        if (p / ICT_NEUTRAL).is_file() and (p / ICT_INDEX_FILE).is_file():
            return load_ict_folder_cached(p)
        if (p / "FaceXModel").is_dir():
            return load_ict_folder_cached(p / "FaceXModel")
        if (p / SFM_FILES["model"]).is_file():
            return load_sfm(p)
    raise ModelNotFoundError(f"{p}: no face model found there")


def find_model(name: str) -> Path:
    """Where the model called ``name`` is: ``$VAFX_DATA/<name>``, then the cache.

    Raises:
        ModelNotFoundError: with the places looked at and how to get the model.
    """
    looked = []
    root = data_root()
    candidates = []
    if root is not None:
        candidates.append(root / name)
    candidates.append(models_dir() / name)
    for c in candidates:
        looked.append(str(c))
        if c.is_dir() and any(c.iterdir()):
            return c
    raise ModelNotFoundError(
        f"face model {name!r} not found (looked in: {', '.join(looked)}). "
        f"Run `vafx fetch-model {name}`, or set {ENV_DATA} to a folder holding {name}/, "
        "or pass a path with --model."
    )


def load_model(model: str | os.PathLike = DEFAULT_MODEL) -> MorphableModel:
    """Load a face model by name (``"ict"``, ``"sfm"``) or from a path.

    Args:
        model: a model name, looked up in ``$VAFX_DATA/<name>`` and then in the
            folder ``vafx fetch-model`` downloads to; or a file or folder path.

    Returns:
        The MorphableModel (float32 arrays on the default JAX device).
    """
    if isinstance(model, str) and model in MODEL_NAMES:
        return load_model_path(find_model(model))
    return load_model_path(model)
