"""Agreement metrics of the paper's equations (2) and (3): CCC, PCC and MSE.

Each reduces over axis 0 (the samples) and keeps the remaining axes, so a
(samples, 2) array of (valence, arousal) gives one value per dimension.
Moments are population moments (divide by N), computed in two passes
(means first, then centred products) for accuracy in float32.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike


def _moments(x: ArrayLike, y: ArrayLike):
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"predictions and targets differ in shape: {x.shape} vs {y.shape}")
    if x.shape[0] < 1:
        raise ValueError("need at least one sample along axis 0")
    mx = jnp.mean(x, axis=0, keepdims=True)
    my = jnp.mean(y, axis=0, keepdims=True)
    dx = x - mx
    dy = y - my
    vx = jnp.mean(dx * dx, axis=0)
    vy = jnp.mean(dy * dy, axis=0)
    cxy = jnp.mean(dx * dy, axis=0)
    return mx[0], my[0], vx, vy, cxy


def ccc(x: ArrayLike, y: ArrayLike) -> Array:
    """Lin's concordance correlation coefficient.

    ``2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)``. When the denominator is
    zero the two inputs are the same constant, and the agreement is perfect: 1.
    NaN in either input gives NaN (never a plausible number).

    Args:
        x, y: float[m, ...]; reduced over axis 0.

    Returns:
        float[...], in [-1, 1].
    """
    mx, my, vx, vy, cxy = _moments(x, y)
    den = vx + vy + (mx - my) ** 2
    safe = jnp.where(den > 0, den, 1)
    # den == 0 is the one constant; NaN (from a NaN input) fails both tests and stays NaN
    return jnp.where(den > 0, 2 * cxy / safe, jnp.where(den == 0, 1.0, jnp.nan).astype(den.dtype))


def pcc(x: ArrayLike, y: ArrayLike) -> Array:
    """Pearson's correlation coefficient ``s_xy / (s_x s_y)``.

    Undefined (NaN) when either input is constant.

    Args:
        x, y: float[m, ...]; reduced over axis 0.

    Returns:
        float[...], in [-1, 1] or NaN.
    """
    _, _, vx, vy, cxy = _moments(x, y)
    return cxy / jnp.sqrt(vx * vy)


def mse(x: ArrayLike, y: ArrayLike) -> Array:
    """Mean squared error ``mean((x - y)^2)``.

    Args:
        x, y: float[m, ...]; reduced over axis 0.

    Returns:
        float[...].
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"predictions and targets differ in shape: {x.shape} vs {y.shape}")
    return jnp.mean((x - y) ** 2, axis=0)
