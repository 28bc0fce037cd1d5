"""The valence-arousal plane cut into a regular grid of square bins.

The paper uses 10 x 10 bins of 0.2 x 0.2 over [-1, 1]^2. Bins are numbered
row-major over (valence, arousal): ``bin = i_v * n + i_a`` where ``i_v`` and
``i_a`` are the valence and arousal indices. Along each axis bin ``k`` is
``[e_k, e_{k+1})`` and the last bin is closed, so a value on an inner edge
goes to the bin above it and ``+1.0`` belongs to the last bin.

Functions take V-A values as float[..., 2] arrays whose last axis is
(valence, arousal), for any batch shape.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from .kernels import binned_median, grid_bin_index, grid_edges, histogram

VA_LOW = -1.0
VA_HIGH = 1.0


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def validate_va(va: ArrayLike, name: str = "va") -> Array:
    """Check V-A values at an API boundary and return them as a float array.

    Runs in plain Python on concrete values; under ``jit`` (traced values) it
    only checks the shape, since values are not known until run time.

    Args:
        va: float[..., 2], (valence, arousal) in [-1, 1].
        name: the argument's name, for the error message.

    Raises:
        ValueError: the last axis is not 2, or a value is non-finite or outside
            [-1, 1]; the message names the first offending value and its index.
    """
    if _is_traced(va):
        if va.shape[-1:] != (2,):
            raise ValueError(f"{name} must have shape (..., 2), got {va.shape}")
        return va
    arr = np.asarray(va)
    if arr.ndim == 0 or arr.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (..., 2) of (valence, arousal), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr) | (arr < VA_LOW) | (arr > VA_HIGH)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        pair_idx = where[:-1]
        pair = arr[pair_idx]
        axis = ("valence", "arousal")[where[-1]]
        at = f" at index {pair_idx}" if pair_idx else ""
        problem = "is not finite" if not np.isfinite(arr[where]) else "is outside [-1, 1]"
        raise ValueError(
            f"{name}: {axis} {arr[where]} of the pair ({pair[0]}, {pair[1]}){at} {problem}"
        )
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
    return jnp.asarray(arr, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class VAGrid:
    """A regular n x n grid of square bins over the V-A plane [-1, 1]^2.

    Hashable and immutable, so it can be a static argument of ``jit``.

    Attributes:
        n: bins per axis (10 in the paper; 5 and 20 work the same way).
    """

    n: int = 10

    def __post_init__(self):
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"grid resolution n must be a positive integer, got {self.n!r}")

    @property
    def num_bins(self) -> int:
        """Number of bins, ``n * n``."""
        return self.n * self.n

    @property
    def width(self) -> float:
        """Side of one bin, in V-A units (0.2 for n = 10)."""
        return (VA_HIGH - VA_LOW) / self.n

    def edges(self, dtype=jnp.float32) -> Array:
        """Bin edges along either axis. float[n + 1]."""
        return grid_edges(VA_LOW, VA_HIGH, self.n, dtype)

    def axis_centres(self) -> Array:
        """Bin centres along either axis. float32[n]."""
        e = np.linspace(VA_LOW, VA_HIGH, self.n + 1)
        return jnp.asarray(0.5 * (e[:-1] + e[1:]), jnp.float32)

    def centres(self) -> Array:
        """Centre (valence, arousal) of every bin, in bin order. float32[n * n, 2]."""
        c = np.asarray(self.axis_centres())
        v, a = np.meshgrid(c, c, indexing="ij")
        return jnp.asarray(np.stack([v.ravel(), a.ravel()], -1), jnp.float32)

    def bounds(self) -> Array:
        """Bounds of every bin: ``[[v_lo, v_hi], [a_lo, a_hi]]``. float32[n * n, 2, 2]."""
        e = np.linspace(VA_LOW, VA_HIGH, self.n + 1)
        lo, hi = e[:-1], e[1:]
        iv, ia = np.meshgrid(np.arange(self.n), np.arange(self.n), indexing="ij")
        iv, ia = iv.ravel(), ia.ravel()
        b = np.stack([np.stack([lo[iv], hi[iv]], -1), np.stack([lo[ia], hi[ia]], -1)], 1)
        return jnp.asarray(b, jnp.float32)

    def bin_ij(self, va: ArrayLike) -> Array:
        """(valence index, arousal index) of each V-A pair.

        Args:
            va: float[..., 2] in [-1, 1] (validated unless traced).

        Returns:
            int32[..., 2].
        """
        va = validate_va(va)
        e = self.edges(va.dtype)
        return jnp.stack([grid_bin_index(va[..., 0], e), grid_bin_index(va[..., 1], e)], -1)

    def bin_index(self, va: ArrayLike) -> Array:
        """Flat bin number ``i_v * n + i_a`` of each V-A pair.

        Args:
            va: float[..., 2] in [-1, 1] (validated unless traced).

        Returns:
            int32[...] in ``[0, n * n)``.
        """
        ij = self.bin_ij(va)
        return ij[..., 0] * self.n + ij[..., 1]

    def ij_to_index(self, iv: ArrayLike, ia: ArrayLike) -> Array:
        """Flat bin number from per-axis indices. int32[...]."""
        return jnp.asarray(iv, jnp.int32) * self.n + jnp.asarray(ia, jnp.int32)

    def index_to_ij(self, index: ArrayLike) -> Array:
        """Per-axis indices from a flat bin number. int32[..., 2]."""
        index = jnp.asarray(index, jnp.int32)
        return jnp.stack([index // self.n, index % self.n], -1)

    def counts(self, va: ArrayLike, mask: ArrayLike | None = None) -> Array:
        """Number of V-A pairs in each bin (the paper's Fig. 3 histogram).

        Args:
            va: float[..., 2].
            mask: bool[...] or None; False entries (padding) are not counted.

        Returns:
            int32[n, n], indexed ``[i_v, i_a]``.
        """
        idx = self.bin_index(va)
        return histogram(idx, self.num_bins, mask).reshape(self.n, self.n)

    def medians(self, va: ArrayLike, mask: ArrayLike | None = None) -> Array:
        """Median valence and arousal of the pairs in each bin (the bins' labels).

        Args:
            va: float[..., 2].
            mask: bool[...] or None; False entries (padding) are ignored.

        Returns:
            float[n, n, 2], indexed ``[i_v, i_a]``; NaN for empty bins.
        """
        va = validate_va(va)
        idx = self.bin_index(va).reshape(-1)
        flat = va.reshape(-1, 2)
        m = None if mask is None else jnp.asarray(mask).reshape(-1)
        return binned_median(flat, idx, self.num_bins, m).reshape(self.n, self.n, 2)

    def __repr__(self) -> str:
        return f"VAGrid(n={self.n}, bin width={self.width:g})"
