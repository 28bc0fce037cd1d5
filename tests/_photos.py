"""Shared test helpers for the shipped photo's landmarks."""

from __future__ import annotations

from importlib import resources

import numpy as np

import vafx


def astronaut_pts() -> np.ndarray:
    """The 68 landmarks shipped for scikit-image's astronaut: float32[68, 2]."""
    with resources.as_file(resources.files("vafx") / "data" / "astronaut.pts") as p:
        return vafx.read_pts(p)
