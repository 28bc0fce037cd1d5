"""Traced programs kept on disk (vafx._compiled._programs): same results as jax.jit, reused by a new process."""

from __future__ import annotations

import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vafx._compiled import _programs


class Pair(typing.NamedTuple):
    a: jax.Array
    b: jax.Array


class Table(dict):
    """A hashable dict, as static jit arguments must be (vafx's fit tables are one)."""

    def __hash__(self):
        return hash(tuple(sorted(self.items())))


def _toy(x, pair, *, power, table):
    return Pair(jnp.sum(x**power) + table["k"], pair.a * pair.b + x.mean())


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(_programs, "_folder", lambda: tmp_path / "programs")
    return tmp_path / "programs"


def _fresh():
    """A new wrapper (an empty in-memory table, as in a new process)."""
    return _programs.persistent(_toy, static_argnames=("power", "table"))


def test_equals_jit_and_is_reused_from_disk(folder, monkeypatch):
    x = jnp.arange(6.0).reshape(2, 3)
    pair = Pair(jnp.ones(3), jnp.full(3, 2.0))
    table = Table(k=3)
    want = jax.jit(functools.partial(_toy, power=2, table=table))(x, pair)
    got = _fresh()(x, pair, power=2, table=table)
    assert isinstance(got, Pair)
    np.testing.assert_array_equal(got.a, want.a)
    np.testing.assert_array_equal(got.b, want.b)
    assert len(list(folder.glob("_toy-*.bin"))) == 1

    def no_export(*a, **k):
        raise AssertionError("exported again although the program is on disk")

    monkeypatch.setattr(jax.export, "export", no_export)
    again = _fresh()(np.asarray(x), pair, power=2, table=table)  # numpy in: same program
    np.testing.assert_array_equal(again.b, want.b)


def test_static_values_and_shapes_are_part_of_the_key(folder):
    f = _fresh()
    x = jnp.ones((2, 3))
    pair = Pair(jnp.ones(3), jnp.ones(3))
    assert float(f(x, pair, power=2, table=Table(k=0)).a) == 6.0
    assert float(f(x, pair, power=3, table=Table(k=1)).a) == 7.0
    f(jnp.ones((4, 3)), pair, power=2, table=Table(k=0))
    assert len(list(folder.glob("_toy-*.bin"))) == 3


def test_damaged_file_is_exported_again(folder):
    x, pair = jnp.ones((2, 3)), Pair(jnp.ones(3), jnp.ones(3))
    _fresh()(x, pair, power=2, table=Table(k=0))
    (path,) = folder.glob("_toy-*.bin")
    path.write_bytes(b"not a program")
    assert float(_fresh()(x, pair, power=2, table=Table(k=0)).a) == 6.0
    assert path.read_bytes() != b"not a program"


def test_inside_a_trace_and_under_grad_it_is_plain_jit(folder):
    f = _fresh()
    pair = Pair(jnp.ones(3), jnp.ones(3))
    g = jax.grad(lambda x: f(x, pair, power=2, table=Table(k=0)).a)(jnp.ones((2, 3)))
    np.testing.assert_allclose(g, 2 * np.ones((2, 3)))
    out = jax.jit(lambda x: f(x, pair, power=2, table=Table(k=0)).a)(jnp.ones((2, 3)))
    assert float(out) == 6.0
    assert not folder.exists()  # nothing exported from inside a trace


def test_static_value_without_fingerprint_falls_back_to_jit(folder):
    class Opaque:
        def __getitem__(self, k):
            return 5

        def __hash__(self):
            return 1

        def __eq__(self, other):
            return isinstance(other, Opaque)

    out = _fresh()(jnp.ones((2, 3)), Pair(jnp.ones(3), jnp.ones(3)), power=1, table=Opaque())
    assert float(out.a) == 11.0
    assert not folder.exists()


def test_off_switch(monkeypatch, tmp_path):
    monkeypatch.setenv("VAFX_JAX_CACHE", "0")
    assert _programs._folder() is None
    from vafx._compiled._jax_config import configure_compilation_cache

    assert configure_compilation_cache() is None


def test_prepare_from_shapes_is_callable_from_threads(folder):
    import concurrent.futures

    f = _fresh()
    s = jax.ShapeDtypeStruct((2, 3), jnp.float32)
    prog = f.prepare(s, Pair(jax.ShapeDtypeStruct((3,), jnp.float32), jax.ShapeDtypeStruct((3,), jnp.float32)),
                     power=2, table=Table(k=0))  # fmt: skip
    pair = Pair(np.ones(3, np.float32), np.ones(3, np.float32))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda k: prog(x=np.full((2, 3), k, np.float32), pair=pair), range(4)))
    assert [float(o.a) for o in outs] == [6.0 * k * k for k in range(4)]
