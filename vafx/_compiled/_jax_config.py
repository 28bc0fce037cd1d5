"""The persistent compilation cache that the library and the ``vafx`` command share.

XLA's compiled programs are kept on disk, so that a new process skips
compiling what an earlier one compiled (the first image of a fresh process:
docs/synthesis.md). vafx turns the cache on when it is imported, in
``<cache>/jax`` (``$VAFX_CACHE``, else ``~/.cache/vafx``), and caches every
program however quickly it compiled (JAX's default keeps only programs that
took over a second; vafx's many small ones each cost 20-50 ms to compile).

Choices that stand: a cache folder set with ``JAX_COMPILATION_CACHE_DIR`` or
``jax.config`` before vafx is imported, and
``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``. ``VAFX_JAX_CACHE=0`` turns the
whole thing off; ``VAFX_JAX_CACHE=/some/folder`` moves it.
"""

from __future__ import annotations

import os

ENV = "VAFX_JAX_CACHE"
OFF = ("0", "off", "no", "false")


def configure_compilation_cache() -> str | None:
    """Turn on the shared cache (see the module docstring); returns its folder, or None when off."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        return None
    import jax

    from .._paths import cache_root

    folder = jax.config.jax_compilation_cache_dir
    if not folder:
        folder = str(setting and os.path.expanduser(setting) or cache_root() / "jax")
        jax.config.update("jax_compilation_cache_dir", folder)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder
