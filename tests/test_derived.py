"""Arrays derived once and kept in vafx's cache (vafx._io._derived), and what uses it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vafx._io import _derived


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAFX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAFX_DERIVED", raising=False)
    return tmp_path / "cache" / "derived"


def test_computed_once_then_read_for_the_same_key_only(cache):
    calls = []

    def compute(v):
        def f():
            calls.append(v)
            return dict(a=np.arange(5, dtype=np.float32) * v, names=np.array(["x", "yz"]))

        return f

    first = _derived.derived_arrays("toy", b"k1", compute(2))
    again = _derived.derived_arrays("toy", b"k1", compute(3))  # same key: read, not computed
    assert calls == [2]
    for k in first:
        np.testing.assert_array_equal(again[k], first[k])
        assert again[k].dtype == first[k].dtype
    other = _derived.derived_arrays("toy", b"k2", compute(3))
    assert calls == [2, 3] and other["a"][1] == 3
    assert len(list(cache.iterdir())) == 2 and not list(cache.glob("*.tmp"))


def test_a_damaged_entry_is_computed_again_and_off_writes_nothing(cache, monkeypatch):
    _derived.derived_arrays("toy", b"k", lambda: dict(a=np.ones(3)))
    (entry,) = cache.iterdir()
    (entry / "a.npy").write_bytes(b"garbage")
    got = _derived.derived_arrays("toy", b"k", lambda: dict(a=np.full(3, 7.0)))
    np.testing.assert_array_equal(got["a"], 7.0)
    np.testing.assert_array_equal(_derived.derived_arrays("toy", b"k", lambda: {})["a"], 7.0)
    monkeypatch.setenv("VAFX_DERIVED", "0")
    assert _derived.derived_arrays("toy", b"new", lambda: dict(a=np.zeros(1)))["a"][0] == 0
    assert len(list(cache.iterdir())) == 1


def test_a_changed_file_is_another_key(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(b"one")
    a = _derived.file_identity(p)
    p.write_bytes(b"three")
    assert _derived.file_identity(p) != a


def test_the_ict_model_read_through_the_cache_equals_the_file(cache, ict_dir, monkeypatch):
    from vafx._model._ict import load_ict_npz

    path = ict_dir / "ict_facekit_light.npz"
    load_ict_npz(path)  # computed and stored
    assert len(list(cache.glob("ict-npz-*"))) == 1
    cached = load_ict_npz(path)  # read back, memory-mapped
    monkeypatch.setenv("VAFX_DERIVED", "0")
    direct = load_ict_npz(path)
    for name in ("mean", "identity_basis", "expression_basis", "faces", "uv", "faces_uv",
                 "landmarks"):  # fmt: skip
        a, b = np.asarray(getattr(cached, name)), np.asarray(getattr(direct, name))
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert cached.expression_names == direct.expression_names


def _reference_pieces(faces, n):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    _, label = connected_components(g, directed=False)
    used = np.zeros(n, bool)
    used[faces.ravel()] = True
    out = np.zeros(n, np.int64)
    # numbered by each piece's lowest vertex
    lowest = {}
    for v in range(n):
        if used[v]:
            lowest.setdefault(label[v], v)
    order = {lab: i + 1 for i, lab in enumerate(sorted(lowest, key=lowest.get))}
    out[used] = [order[label[v]] for v in np.nonzero(used)[0]]
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39),
                                              st.integers(0, 39)), min_size=1, max_size=40))  # fmt: skip
def test_mesh_pieces_equal_scipys_connected_components(n, tris):
    from vafx._render._face import _pieces

    faces = np.array([[a % n, b % n, c % n] for a, b, c in tris], np.int64)
    np.testing.assert_array_equal(_pieces(faces, n), _reference_pieces(faces, n))
