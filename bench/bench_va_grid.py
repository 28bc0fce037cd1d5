"""V-A grid on a paper-sized gallery: bin index, Fig. 3 histogram and per-bin medians.

600,000 V-A labels (the paper's 4DFAB gallery size), 10 x 10 bins. Anchor: numpy
(np.digitize, np.bincount, and a sort-based per-bin median), on the same input in the same
process. Run: python bench/bench_va_grid.py
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_seconds, report  # noqa: E402

import vafx  # noqa: E402


def numpy_grid(va: np.ndarray, n: int = 10):
    edges = np.linspace(-1, 1, n + 1).astype(va.dtype)
    ij = np.clip(np.searchsorted(edges, va, side="right") - 1, 0, n - 1)
    idx = ij[:, 0] * n + ij[:, 1]
    counts = np.bincount(idx, minlength=n * n)
    order = np.lexsort((va[:, 0], idx))
    sv = va[order, 0]
    order_a = np.lexsort((va[:, 1], idx))
    sa = va[order_a, 1]
    starts = np.cumsum(counts) - counts
    lo, hi = starts + np.maximum(counts - 1, 0) // 2, starts + counts // 2
    med = np.stack([0.5 * (sv[lo] + sv[hi]), 0.5 * (sa[lo] + sa[hi])], -1)
    return idx, counts, np.where(counts[:, None] > 0, med, np.nan)


def main():
    m = 600_000
    rng = np.random.default_rng(0)
    va = np.clip(rng.normal(0, 0.4, (m, 2)), -1, 1).astype(np.float32)
    grid = vafx.VAGrid(10)

    @jax.jit
    def ours(x):
        return grid.bin_index(x), grid.counts(x), grid.medians(x)

    x = jnp.asarray(va)
    idx, counts, med = ours(x)
    ridx, rcounts, rmed = numpy_grid(va)
    assert np.array_equal(np.asarray(idx), ridx) and np.array_equal(
        np.asarray(counts).ravel(), rcounts
    )
    np.testing.assert_allclose(np.asarray(med).reshape(-1, 2), rmed, equal_nan=True)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, m={m}")
    report("bin index + counts + medians, 600k", median_seconds(lambda: ours(x)),
           median_seconds(lambda: numpy_grid(va)), "numpy")  # fmt: skip


if __name__ == "__main__":
    main()
