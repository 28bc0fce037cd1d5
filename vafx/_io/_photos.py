"""Reading photos: uint8 RGB arrays, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._errors import DataFileError

__all__ = ["read_photo"]


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """A photo as uint8[H, W, 3] RGB; a clear error for unreadable files."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise DataFileError(path, "is empty (0 bytes)")
    try:
        img = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many kinds
        text = str(e)
        if "plugin" in text.lower() or "pip install" in text.lower():
            # imageio's fallback advice (install a video plugin) misleads for a photo
            text = "not an image format imageio reads, or the file is truncated or corrupt"
        raise DataFileError(path, f"cannot read the image ({text})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise DataFileError(path, f"expected an RGB image, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(img / (65535.0 if img.dtype == np.uint16 else 1.0) * 255, 0, 255).astype(
            np.uint8
        )
    return img[..., :3]
