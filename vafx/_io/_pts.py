"""68-point iBUG landmark files: .pts (the 300-W format).

Coordinates are pixels, x right and y down, with (0, 0) the centre of the
top-left pixel. 300-W .pts files count from 1 (Matlab convention), so
:func:`read_pts` subtracts 1 and :func:`write_pts` adds it, unless
``one_based=False``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .._errors import DataFileError
from ._atomic import atomic_write_text

__all__ = ["read_pts", "write_pts"]


def read_pts(
    path: str | os.PathLike, one_based: bool = True, *, points: int | None = None
) -> np.ndarray:
    """Read a .pts landmark file: float32[n_points, 2] (x, y), 0-based pixels.

    Args:
        path: the file.
        one_based: the file counts from 1 (300-W); subtract 1.
        points: the number of points the caller needs (68 for fitting); another
            count is an error naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(path, f"cannot read ({e})") from None
    m = re.search(r"n_points:\s*(\d+)\s*\{(.*?)\}", text, re.S)
    if m is None:
        raise DataFileError(path, "not a .pts file (expected 'n_points: N' and a { ... } block)")
    n = int(m.group(1))
    try:
        pts = np.array(
            [[float(v) for v in line.split()] for line in m.group(2).strip().splitlines()]
        )
    except ValueError:
        raise DataFileError(path, "a point line does not hold two numbers") from None
    if pts.shape != (n, 2):
        raise DataFileError(path, f"declares {n} points but holds {len(pts)} (shape {pts.shape})")
    if not np.isfinite(pts).all():
        raise DataFileError(path, "holds NaN or infinite coordinates")
    if points is not None and n != points:
        raise DataFileError(
            path, f"holds {n} points; fitting needs the {points} iBUG points in their order"
        )
    return (pts - (1.0 if one_based else 0.0)).astype(np.float32)


def write_pts(path: str | os.PathLike, points, one_based: bool = True) -> Path:
    """Write float[n, 2] points as a .pts file (atomically)."""
    pts = np.asarray(points, np.float64) + (1.0 if one_based else 0.0)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected (n, 2), got {pts.shape}")
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    atomic_write_text(path, f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n")
    return Path(path)
