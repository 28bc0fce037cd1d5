"""Regular grids over a box: bin indices, histograms and per-bin medians.

All functions are pure, jit-able and work on static shapes. Ragged data (a
different number of valid samples per call) is handled with a boolean mask
instead of slicing, so one compiled function serves every batch.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike


def grid_edges(low: float, high: float, n: int, dtype=jnp.float32) -> Array:
    """The ``n + 1`` edges of ``n`` equal bins over ``[low, high]``.

    Edges are computed in float64 and rounded once to ``dtype``, so that a value
    written as an edge in that dtype (``-0.8`` in float32, say) compares equal to
    the edge itself.

    Returns:
        float[n + 1], increasing.
    """
    return jnp.asarray(np.linspace(low, high, n + 1, dtype=np.float64), dtype=dtype)


def grid_bin_index(x: ArrayLike, edges: ArrayLike) -> Array:
    """Index of the bin holding each value of ``x``.

    Bin ``k`` is the half-open interval ``[edges[k], edges[k + 1])``, except the
    last bin, which is closed: ``[edges[n - 1], edges[n]]``. A value on an
    inner edge therefore belongs to the bin above it, and the upper end of the
    range belongs to the last bin. Values outside the range are clipped to the
    first or last bin; callers that must reject them validate first.

    Args:
        x: float[...], any batch shape.
        edges: float[n + 1], increasing.

    Returns:
        int32[...] in ``[0, n - 1]``.
    """
    x = jnp.asarray(x)
    edges = jnp.asarray(edges, dtype=x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else None)
    n = edges.shape[0] - 1
    idx = jnp.searchsorted(edges, x, side="right") - 1
    return jnp.clip(idx, 0, n - 1).astype(jnp.int32)


def histogram(index: ArrayLike, num_bins: int, mask: ArrayLike | None = None) -> Array:
    """Counts of integer bin indices.

    Args:
        index: int[...], values in ``[0, num_bins)``.
        num_bins: static number of bins.
        mask: bool[...] of the same shape, or None; False entries are not counted
            (padding).

    Returns:
        int32[num_bins].
    """
    index = jnp.ravel(jnp.asarray(index))
    weight = jnp.ones(index.shape, jnp.int32)
    if mask is not None:
        weight = jnp.ravel(jnp.asarray(mask)).astype(jnp.int32)
    return jnp.zeros((num_bins,), jnp.int32).at[index].add(weight, mode="drop")


def binned_median(
    values: ArrayLike, index: ArrayLike, num_bins: int, mask: ArrayLike | None = None
) -> Array:
    """Median of the values falling in each bin.

    For an even count the median is the mean of the two middle values (numpy's
    convention). Empty bins give NaN.

    Args:
        values: float[m, c], ``c`` columns whose medians are taken independently.
        index: int[m], bin of each row, in ``[0, num_bins)``.
        num_bins: static number of bins.
        mask: bool[m] or None; False rows are ignored (padding).

    Returns:
        float[num_bins, c].
    """
    values = jnp.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must have shape (m, c), got {values.shape}")
    if values.shape[0] == 0:  # no pairs: every bin is empty (static shape, so a host test)
        return jnp.full((num_bins, values.shape[1]), jnp.nan, values.dtype)
    index = jnp.asarray(index, jnp.int32)
    if mask is not None:
        index = jnp.where(jnp.asarray(mask), index, num_bins)  # padding sorts last
    counts = jnp.zeros((num_bins + 1,), jnp.int32).at[index].add(1)[:num_bins]
    starts = jnp.cumsum(counts) - counts
    lo = starts + jnp.maximum(counts - 1, 0) // 2
    hi = starts + counts // 2

    def one_column(col):
        order = jnp.lexsort((col, index))
        s = col[order]
        med = 0.5 * (s[lo] + s[hi])
        return jnp.where(counts > 0, med, jnp.nan)

    return jnp.stack([one_column(values[:, j]) for j in range(values.shape[1])], axis=-1)
