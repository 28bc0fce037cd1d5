"""Shared timing helper for the benchmarks: warm-up apart, median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax


def median_seconds(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, results blocked until ready."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def report(name: str, ours: float, anchor: float, anchor_name: str) -> None:
    print(
        f"{name:<40s} vafx {ours * 1e3:9.2f} ms   {anchor_name} {anchor * 1e3:9.2f} ms   "
        f"ratio (anchor / vafx) {anchor / ours:6.2f}x"
    )
