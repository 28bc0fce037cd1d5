"""Atomic writes: all or nothing, with ordinary file permissions."""

import os

import pytest

from vafx._io._atomic import atomic_path, atomic_write_text


def test_success_replaces_whole_file_with_normal_mode(tmp_path):
    p = tmp_path / "sub" / "out.txt"
    atomic_write_text(p, "first")
    atomic_write_text(p, "second")
    assert p.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [f.name for f in p.parent.iterdir()] == ["out.txt"]


def test_failure_leaves_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]
