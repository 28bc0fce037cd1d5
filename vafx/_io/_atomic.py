"""Atomic file writes: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_DURABLE = contextvars.ContextVar("vafx_atomic_durable", default=True)


@contextlib.contextmanager
def scratch() -> Iterator[None]:
    """Within this block, atomic writes skip ``fsync``: for files deleted after use.

    Each file still appears whole or not at all to other readers; what is
    given up is only its survival of a power cut, which scratch files (the
    default bin models' temporary gallery) do not need. fsync was a fifth of
    that gallery's writing time.
    """
    token = _DURABLE.set(False)
    try:
        yield
    finally:
        _DURABLE.reset(token)


def _file_mode() -> int:
    # mkstemp creates files readable by their owner only; a finished output
    # gets the usual mode (0o666 less the process's umask), as open() would.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place on success.

    The temporary file lives in the same folder (so the final ``os.replace`` is
    atomic on POSIX and Windows), is flushed to disk before the move, and is
    removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if _DURABLE.get():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
