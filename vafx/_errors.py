"""Exceptions that name the file or value at fault."""

from __future__ import annotations

import os


class VafxError(Exception):
    """Base class of vafx's own errors."""


class DataFileError(VafxError, ValueError):
    """A file on disk is missing, truncated, corrupt or inconsistent.

    Attributes:
        path: the file at fault.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FitError(VafxError, ValueError):
    """A photo's landmarks cannot be fitted, or the fit failed its check.

    Attributes:
        name: the photo (or ``landmarks[i]``) at fault.
        problem: what is wrong, in words.
    """

    def __init__(self, name: str, problem: str):
        self.name = str(name)
        self.problem = problem
        super().__init__(f"{self.name}: {problem}")


class ModelNotFoundError(VafxError, FileNotFoundError):
    """No copy of a face model was found where vafx looked."""


class DownloadError(VafxError, OSError):
    """A download failed or its checksum did not match."""
