"""Where vafx looks for data and keeps its cache."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "VAFX_DATA"
ENV_CACHE = "VAFX_CACHE"


def data_root() -> Path | None:
    """The folder named by ``VAFX_DATA`` (holding ``ict/``, ``sfm/``), or None."""
    v = os.environ.get(ENV_DATA)
    return Path(v).expanduser() if v else None


def cache_root() -> Path:
    """vafx's cache: ``$VAFX_CACHE``, else ``$XDG_CACHE_HOME/vafx``, else ``~/.cache/vafx``."""
    v = os.environ.get(ENV_CACHE)
    if v:
        return Path(v).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vafx"


def models_dir() -> Path:
    """Where ``vafx fetch-model`` puts downloaded models: ``<cache>/models``."""
    return cache_root() / "models"
