"""Arrays computed once from their inputs and kept in vafx's cache, memory-mapped on reading.

A fresh process pays for what it derives from a model before its first image, such as
decompressing the ICT model's npz (0.4 s on a 2-core CPU). :func:`derived_arrays` keeps such
arrays as ``.npy`` files in ``<cache>/derived/<kind>-<digest>/`` and maps them back.

The digest is of everything the arrays are computed from (the caller's ``key``: the
source file's identity, or the input arrays' bytes, and the rule's version), so an entry is
read only for the inputs that made it, and holds exactly what computing them again gives:
the same inputs give the same bytes, with a cold cache or a warm one. An entry is written
into a temporary folder and renamed whole; one that cannot be read is computed again.
``VAFX_DERIVED=0`` computes every time (and writes nothing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .._paths import cache_root

log = logging.getLogger("vafx")

_OFF = ("0", "false", "no", "off")


def _folder(kind: str, key: bytes) -> Path | None:
    if os.environ.get("VAFX_DERIVED", "").strip().lower() in _OFF:
        return None
    digest = hashlib.sha256(kind.encode() + b"\0" + key).hexdigest()[:24]
    return cache_root() / "derived" / f"{kind}-{digest}"


def file_identity(path: str | os.PathLike) -> bytes:
    """A key for a file's content: its resolved path, size, modification time and inode."""
    p = Path(path).resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}".encode()


def derived_arrays(
    kind: str, key: bytes, compute: Callable[[], Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``compute()``'s arrays, from the cache when an entry for ``(kind, key)`` exists.

    Args:
        kind: a name for the rule (the folder's prefix), e.g. ``"ict-npz"``.
        key: bytes naming every input of ``compute`` and the rule's version.
        compute: returns {name: array}; names are plain identifiers.

    Returns:
        {name: array}; read from the cache they are read-only memory maps.
    """
    folder = _folder(kind, key)
    if folder is not None and (folder / "names.txt").is_file():
        try:
            names = (folder / "names.txt").read_text().split()
            return {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in names}
        except (OSError, ValueError) as e:  # damaged: computed and written again below
            log.debug("derived %s: not readable (%s)", folder.name, e)
    arrays = {n: np.asarray(a) for n, a in compute().items()}
    if folder is not None:
        try:
            _write(folder, arrays)
        except OSError as e:  # an unwritable cache: keep going without it
            log.debug("derived %s: not stored (%s)", folder.name, e)
    return arrays


def _write(folder: Path, arrays: Mapping[str, np.ndarray]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".tmp", dir=folder.parent))
    try:
        for n, a in arrays.items():
            np.save(tmp / f"{n}.npy", a, allow_pickle=False)
        (tmp / "names.txt").write_text("\n".join(arrays))  # written last: the entry is whole
        if folder.exists():  # a damaged entry
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if (folder / "names.txt").is_file():  # another process wrote it meanwhile
            return
        raise
