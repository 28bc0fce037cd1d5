"""vafx's own model file: one uncompressed ``.npz`` that loads in a fraction of a second.

Any MorphableModel round-trips through it exactly. Keys: one per array field,
``region/<name>`` per region, and ``__meta__``: a JSON document with the format
name and version and the static fields.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_path
from ._morphable import MorphableModel, make_model

FORMAT = "vafx-morphable-model"
FORMAT_VERSION = 1
_ARRAYS = ("mean", "identity_basis", "identity_std", "expression_basis", "expression_std",
           "faces", "landmarks", "contour_right", "contour_left", "uv", "faces_uv",
           "colour_mean", "colour_basis", "colour_std")  # fmt: skip


def save_model(path: str | os.PathLike, model: MorphableModel) -> Path:
    """Write ``model`` to ``path`` (``.npz``) atomically; return the path."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": model.name,
        "units": model.units,
        "expression_names": list(model.expression_names),
        "expression_kind": model.expression_kind,
    }
    arrays = {k: np.asarray(getattr(model, k)) for k in _ARRAYS if getattr(model, k) is not None}
    arrays.update({f"region/{k}": np.asarray(v) for k, v in model.regions.items()})
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def is_model_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is an npz written by :func:`save_model`."""
    try:
        with zipfile.ZipFile(path) as z:
            return "__meta__.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_model_file(path: str | os.PathLike) -> MorphableModel:
    """Read a model written by :func:`save_model`.

    Raises:
        DataFileError: missing, truncated or corrupt file, another format or
            a newer format version, or inconsistent arrays.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise DataFileError(path, "not a vafx model file (no __meta__ entry)")
            meta = json.loads(z["__meta__"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT:
                raise DataFileError(path, f"format is {meta.get('format')!r}, not {FORMAT!r}")
            if meta.get("version", 0) > FORMAT_VERSION:
                raise DataFileError(
                    path,
                    f"format version {meta['version']} is newer than this vafx reads "
                    f"({FORMAT_VERSION}); upgrade vafx",
                )
            fields = {k: z[k] for k in _ARRAYS if k in z.files}
            regions = {k[len("region/") :]: z[k] for k in z.files if k.startswith("region/")}
    except DataFileError:
        raise
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DataFileError(path, f"cannot read the model (truncated or corrupt?): {e}") from None
    for k in ("mean", "faces"):
        if k not in fields:
            raise DataFileError(path, f"the model has no {k!r} array")
    try:
        return make_model(
            source=str(path),
            regions=regions,
            name=meta["name"],
            units=meta["units"],
            expression_names=meta["expression_names"],
            expression_kind=meta["expression_kind"],
            **fields,
        )
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, DataFileError):
            raise
        raise DataFileError(path, f"inconsistent model: {e}") from None
