"""Traced programs kept on disk, so that a fresh process skips tracing and lowering.

XLA's persistent compilation cache (:mod:`vafx._compiled._jax_config`) saves compiling,
but every new process still traces the Python function and lowers it to
StableHLO before it can look the compiled program up; for the fit, the
renderer and the Poisson blend that is most of the first image's time (about
7 s of 10 on a 2-core CPU). :func:`persistent` wraps a jitted function so that
its first call with given shapes exports the program (:mod:`jax.export`) into
``<compilation cache>/vafx-programs/``; later processes deserialize it, and
XLA's cache then supplies the executable.

A program's key holds the function's name, the vafx version and a digest of
its source files, the jax and jaxlib versions,
the backend and device kind, the x64 flag, the argument tree, shapes and
dtypes, and a fingerprint of the static arguments, so an edit of vafx (a new
version) or of the inputs never reads a stale program. Anything that cannot be
exported (an argument inside another trace, a static value without a stable
fingerprint, an export error) falls back to plain :func:`jax.jit`, silently
and with the same results. ``VAFX_JAX_CACHE=0`` turns both caches off;
``VAFX_PROGRAMS=0`` only this one (to measure what it saves).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import logging
import os
import pickle
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._io._atomic import atomic_write_bytes
from .._version import __version__

log = logging.getLogger("vafx")
_LOCK = threading.Lock()
_FORMAT = 1


def _folder() -> Path | None:
    from ._jax_config import ENV, OFF

    if any(os.environ.get(v, "").strip().lower() in OFF for v in (ENV, "VAFX_PROGRAMS")):
        return None
    root = jax.config.jax_compilation_cache_dir
    if not root or "://" in str(root):
        return None
    return Path(root) / "vafx-programs"


def _fingerprint(x) -> str:
    """A text that names a static argument's value across processes (or ValueError)."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return repr(x)
    if isinstance(x, np.dtype) or (isinstance(x, type) and issubclass(x, np.generic)):
        return f"dtype:{np.dtype(x).str}"
    if isinstance(x, np.ndarray):
        return f"array:{x.dtype.str}{x.shape}:{hashlib.sha256(x.tobytes()).hexdigest()[:16]}"
    if isinstance(x, dict):
        items = sorted((repr(k), _fingerprint(v)) for k, v in x.items())
        return f"{type(x).__qualname__}{{{','.join(f'{k}:{v}' for k, v in items)}}}"
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return f"{type(x).__qualname__}({','.join(_fingerprint(v) for v in x)})"
    if isinstance(x, (tuple, list)):
        return f"({','.join(_fingerprint(v) for v in x)})"
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        fields = (f"{f.name}={_fingerprint(getattr(x, f.name))}" for f in dataclasses.fields(x))
        return f"{type(x).__qualname__}({','.join(fields)})"
    raise ValueError(f"no stable fingerprint for a {type(x).__name__}")


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of every module of the installed vafx (kernels included).

    The version alone would let a developer's edited, not yet renumbered code
    read programs traced from the code before the edit.
    """
    root = Path(__file__).parent.parent  # the vafx package, not this folder
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _environment() -> str:
    import jaxlib

    dev = jax.devices()[0]
    return (
        f"vafx {__version__} code {_code_digest()} jax {jax.__version__} jaxlib {jaxlib.__version__} "
        f"{dev.platform}:{dev.device_kind} x64={jax.config.jax_enable_x64} format={_FORMAT}"
    )


def _struct(x) -> jax.ShapeDtypeStruct:
    if isinstance(x, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(x.shape, jax.dtypes.canonicalize_dtype(x.dtype))
    return jax.ShapeDtypeStruct(np.shape(x), jax.dtypes.canonicalize_dtype(jnp.result_type(x)))


def _canon(x):
    """An argument leaf as the array the compiled program takes (x64 off: float64 -> float32)."""
    if isinstance(x, jax.Array):
        return x
    dt = jax.dtypes.canonicalize_dtype(jnp.result_type(x))
    return x if isinstance(x, np.ndarray) and x.dtype == dt else np.asarray(x, dt)


class _Program:
    """A compiled program called like the function (static arguments bound), and its output tree."""

    def __init__(self, compiled, out_tree, fallback=None):
        self.compiled, self.out_tree, self.fallback = compiled, out_tree, fallback

    def __call__(self, **dynamic):
        if self.compiled is None:
            return self.fallback(**dynamic)
        leaves = [_canon(x) for x in jax.tree.leaves(dynamic)]
        return jax.tree.unflatten(self.out_tree, self.compiled(*leaves))


def _build(jitted, name, tree, structs, static) -> _Program:
    """Load the exported program from disk, or export and store it; compile it."""

    def flat(*leaves):
        out = jitted(**jax.tree.unflatten(tree, leaves), **static)
        leaves_out, holder["tree"] = jax.tree.flatten(out)
        return leaves_out

    holder: dict = {}
    folder = _folder()
    key = None
    if folder is not None:
        text = "\n".join([
            name, _environment(), str(tree), repr([(s.shape, s.dtype.str) for s in structs]),
            _fingerprint(sorted(static.items())),
        ])  # fmt: skip
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        path = folder / f"{name.rsplit('.', 1)[-1]}-{key}.bin"
        try:
            blob = pickle.loads(path.read_bytes())
            if blob["key"] == text:
                exp = jax.export.deserialize(blob["exported"])
                compiled = jax.jit(exp.call).lower(*structs).compile()
                return _Program(compiled, blob["out_tree"])
        except FileNotFoundError:
            pass
        except Exception as e:  # a damaged or foreign file: export it again
            log.debug("program %s: not reusable (%s)", path.name, e)
        exp = jax.export.export(jax.jit(flat))(*structs)
        try:
            data = dict(key=text, exported=bytes(exp.serialize()), out_tree=holder["tree"])
            atomic_write_bytes(path, pickle.dumps(data))
        except Exception as e:  # noqa: BLE001 - unwritable cache: keep going without it
            log.debug("program %s: not stored (%s)", path.name, e)
        compiled = jax.jit(exp.call).lower(*structs).compile()
        return _Program(compiled, holder["tree"])
    compiled = jax.jit(flat).lower(*structs).compile()
    return _Program(compiled, holder["tree"])


_SIZES: dict = {}


def grown_sizes(key: str, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """``sizes`` grown elementwise to the largest ever stored under ``key``, across processes.

    Static capacities (a rasterizer plan) that differ a little from face to
    face would make every process trace and compile its own program; grown
    to the largest seen and kept in ``<programs>/sizes.json``, they settle after
    a few photos and every later process reuses the stored program. Without a
    programs folder the growth stays in the process.
    """
    folder = _folder()
    path = None if folder is None else folder / "sizes.json"
    with _LOCK:
        if path is not None and not _SIZES.get("__read__"):
            try:
                import json

                _SIZES.update({k: tuple(v) for k, v in json.loads(path.read_text()).items()})
            except (OSError, ValueError):
                pass
            _SIZES["__read__"] = True
        old = _SIZES.get(key)
        new = (
            tuple(sizes)
            if old is None or len(old) != len(sizes)
            else tuple(max(a, b) for a, b in zip(sizes, old))
        )
        if new != old:
            _SIZES[key] = new
            if path is not None:
                import json

                table = {k: list(v) for k, v in _SIZES.items() if k != "__read__"}
                try:
                    atomic_write_bytes(path, json.dumps(table, sort_keys=True).encode())
                except OSError as e:
                    log.debug("sizes not stored (%s)", e)
        return new


def persistent(fun=None, *, static_argnames: tuple[str, ...] = ()):
    """:func:`jax.jit` whose traced programs persist on disk (see the module docstring).

    Static arguments are passed by keyword. Called inside another trace (with
    tracers), it is the plain jitted function. ``wrapper.prepare(*args,
    **kwargs)`` (arrays or :class:`jax.ShapeDtypeStruct`) returns the compiled
    program for those shapes, safe to call from several threads.
    """
    if fun is None:
        return functools.partial(persistent, static_argnames=static_argnames)
    jitted = jax.jit(fun, static_argnames=static_argnames)
    name = f"{fun.__module__}.{fun.__qualname__}"
    signature = inspect.signature(fun)
    memo: dict = {}

    def split(args, kwargs):
        """(dynamic arguments by name, static arguments by name)."""
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        named = dict(bound.arguments)
        return named, {k: named.pop(k) for k in static_argnames if k in named}

    def prepare(*args, **kwargs):
        dynamic, static = split(args, kwargs)
        leaves, tree = jax.tree.flatten(dynamic)
        structs = tuple(_struct(x) for x in leaves)
        # compiled for the default device, which `jax.default_device` sets per thread
        device = str(jax.config.jax_default_device)
        mkey = (tree, tuple((s.shape, s.dtype) for s in structs), tuple(sorted(static.items())),
                device)  # fmt: skip
        with _LOCK:
            prog = memo.get(mkey)
            if prog is None:
                try:
                    prog = _build(jitted, name, tree, structs, static)
                except Exception as e:  # noqa: BLE001 - fall back to jit, same results
                    log.debug("program %s: plain jit (%s)", name, e)
                    prog = _Program(None, None, functools.partial(jitted, **static))
                if len(memo) > 64:
                    memo.clear()
                memo[mkey] = prog
        return prog

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        dynamic, _ = split(args, kwargs)
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(dynamic)):
            return jitted(*args, **kwargs)
        return prepare(*args, **kwargs)(**dynamic)

    wrapper.prepare = prepare
    wrapper.lower = jitted.lower
    wrapper.jitted = jitted
    return wrapper
