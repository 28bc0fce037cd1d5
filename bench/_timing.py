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


def median_pair(
    ours: Callable[[], object],
    anchor: Callable[[], object],
    repeat: int = 15,
    warmup: int = 1,
    pause: float = 0.005,
) -> tuple[float, float]:
    """Median wall times of ``ours()`` and ``anchor()`` timed in alternation.

    Alternating puts both under the same conditions (other load on the machine,
    clock changes), which two separate loops do not. ``pause`` seconds of sleep
    follow every call: a thread pool (OpenCV's, XLA's) keeps its threads
    spinning for a while after a parallel call, and on a small machine they
    would slow whatever runs next (measured: vafx's batch blend 210 ms alone,
    up to 350 ms right after OpenCV's calls, 230 ms after a pause).
    """
    for _ in range(warmup):
        jax.block_until_ready(ours())
        jax.block_until_ready(anchor())
    times = ([], [])
    for _ in range(repeat):
        for fn, out in zip((ours, anchor), times):
            time.sleep(pause)
            t = time.perf_counter()
            jax.block_until_ready(fn())
            out.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def run_seconds(cmd, cwd, env) -> float:
    """Wall time of a fresh process running ``cmd`` (start to exit); its stderr on failure."""
    import subprocess

    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def data_dir() -> str:
    """The face models' folder: $VAFX_DATA, else ../shared/data beside the checkout."""
    import os
    from pathlib import Path

    return os.environ.get("VAFX_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data"
    )
