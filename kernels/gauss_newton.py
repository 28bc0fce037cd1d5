"""Damped Gauss-Newton (Levenberg-Marquardt) with a fixed iteration budget, on a manifold.

A problem is a residual function ``r(delta, point) -> float[M]`` of a tangent
vector ``delta`` (float[P]) at the current ``point`` (any pytree: rotations live
there, so there is no gimbal lock), a ``retract(point, delta) -> point``, and a
``refresh(point) -> point`` run before every iteration (e.g. to re-match
correspondences; it must not increase the cost). Each iteration solves
``(J^T J + mu diag(J^T J) + mu eps I) delta = -J^T r`` at delta = 0 with J from
forward-mode autodiff, and accepts the step only if the cost ``1/2 ||r||^2``
decreases (then mu shrinks), else mu grows. So the recorded cost never
increases. jit- and vmap-friendly; the iteration count is static.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["LMResult", "levenberg_marquardt"]


class LMResult(NamedTuple):
    """Result of :func:`levenberg_marquardt`.

    Attributes:
        point: the final point.
        cost: float scalar, 1/2 ||r||^2 at the final point.
        history: float[iters + 1], the cost before each iteration and at the end.
        accepted: int32, steps accepted.
    """

    point: Any
    cost: Array
    history: Array
    accepted: Array


def levenberg_marquardt(
    residual: Callable[[Array, Any], Array],
    retract: Callable[[Any, Array], Any],
    point: Any,
    num_params: int,
    iters: int,
    *,
    refresh: Callable[[Any], Any] | None = None,
    bounds: Callable[[Any], tuple[Array, Array]] | None = None,
    mu0: float = 1e-3,
) -> LMResult:
    """Minimize 1/2 ||residual(0, point)||^2 over the manifold of ``point``.

    Args:
        residual: (delta float[P], point) -> float[M].
        retract: (point, delta) -> the point moved by delta.
        point: the start.
        num_params: P (static).
        iters: iteration budget (static).
        refresh: run on the point before every iteration and after the last.
        bounds: point -> (lo, hi) float[P], the admissible steps (e.g. weights
            kept in [0, 1]). Parameters at a bound whose gradient points out
            are held fixed for the step (projected Newton), and the step is
            clipped to the box.
        mu0: initial damping.

    Returns:
        :class:`LMResult`.
    """
    refresh = refresh or (lambda p: p)
    zero = jnp.zeros((num_params,), jnp.result_type(float))

    def cost(p):
        r = residual(zero, p)
        return 0.5 * jnp.sum(r * r)

    def body(carry, _):
        p, mu, acc = carry
        p = refresh(p)
        r = residual(zero, p)
        c0 = 0.5 * jnp.sum(r * r)
        j = jax.jacfwd(residual)(zero, p)
        g = j.T @ r
        if bounds is not None:
            lo, hi = bounds(p)
            frozen = ((lo >= 0) & (g > 0)) | ((hi <= 0) & (g < 0))
            j = jnp.where(frozen[None, :], 0.0, j)
            g = jnp.where(frozen, 0.0, g)
        jtj = j.T @ j
        eye = jnp.eye(num_params, dtype=jtj.dtype)
        a = jtj + mu * (jnp.diag(jnp.diag(jtj)) + 1e-6 * eye)
        if bounds is not None:
            a = jnp.where(frozen[:, None] | frozen[None, :], eye, a)
        delta = -jnp.linalg.solve(a, g)
        if bounds is not None:
            delta = jnp.clip(jnp.where(frozen, 0.0, delta), lo, hi)
        cand = retract(p, delta)
        c1 = cost(cand)
        ok = jnp.isfinite(c1) & (c1 < c0)
        p = jax.tree.map(lambda new, old: jnp.where(ok, new, old), cand, p)
        mu = jnp.where(ok, jnp.maximum(mu / 3.0, 1e-9), jnp.minimum(mu * 4.0, 1e9))
        return (p, mu, acc + ok.astype(jnp.int32)), c0

    (p, _, acc), hist = jax.lax.scan(
        body, (point, jnp.asarray(mu0, zero.dtype), jnp.int32(0)), None, length=iters
    )
    p = refresh(p)
    final = cost(p)
    return LMResult(p, final, jnp.concatenate([hist, final[None]]), acc)
