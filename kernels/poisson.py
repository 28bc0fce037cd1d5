"""Sparse Poisson image blending (Perez, Gangnet and Blake, SIGGRAPH 2003).

Unknowns are the pixels of a mask; every other pixel keeps the target's value
(Dirichlet). For a mask pixel p with in-image 4-neighbours N_p the discrete
equation is

    |N_p| f_p - sum_{q in N_p, q in mask} f_q
        = sum_{q in N_p, q not in mask} t_q + sum_{q in N_p} v_pq,

with guidance v_pq = s_p - s_q ("normal") or, with mixed gradients, whichever
of s_p - s_q and t_p - t_q is larger in magnitude. Pixels beyond the image
border are not neighbours: where a mask touches the border the equation has a
natural (zero-flux) boundary there.

The solver works on the correction u = f - t (zero off the mask). Its system
A u = b is symmetric positive definite whenever every connected component of
the mask reaches a pixel outside it. A is never formed: it is a 5-point stencil
with per-edge weights. It is solved by conjugate gradients preconditioned with
one multigrid V-cycle (cell-centred 2 x 2 aggregation, Galerkin coarse
operators, damped Jacobi smoothing). Stopping rule: the relative residual
||b - A u||_2 <= rtol ||b||_2, or ``max_iters`` iterations; the true residual
reached is returned.

Every function works on one channel of one image with static shapes; vmap over
channels and images.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = [
    "PoissonOperator",
    "PoissonSolution",
    "Stencil",
    "apply_stencil",
    "mask_stencil",
    "num_levels",
    "poisson_operator",
    "poisson_rhs",
    "solve_poisson",
]


class Stencil(NamedTuple):
    """A symmetric 5-point operator on an H x W grid.

    ``(A u)_p = diag_p u_p - sum over the 4 neighbours q of w_pq u_q``.
    ``right[y, x]`` is the weight of the edge (y, x)-(y, x+1) and ``down[y, x]``
    that of (y, x)-(y+1, x); the last column of ``right`` and the last row of
    ``down`` are zero.
    """

    diag: Array  # float[H, W]
    right: Array  # float[H, W]
    down: Array  # float[H, W]


class PoissonSolution(NamedTuple):
    """Result of :func:`solve_poisson`.

    Attributes:
        value: float[H, W], the blended channel; equals the target off the mask.
        relative_residual: float scalar, ||b - A u||_2 / ||b||_2 reached (0 when
            b = 0, i.e. the target already solves the problem).
        iterations: int32 scalar, conjugate-gradient iterations used.
        converged: bool scalar, ``relative_residual <= rtol``.
    """

    value: Array
    relative_residual: Array
    iterations: Array
    converged: Array


class PoissonOperator(NamedTuple):
    """The correction system's operator with its multigrid hierarchy (a pytree).

    It depends on the mask only, so it serves every channel, and every image
    blended over the same mask; :func:`poisson_operator` builds it.

    Attributes:
        levels: tuple of (:class:`Stencil`, active bool[h, w]) pairs, fine to
            coarse; the first is the operator itself and the mask (within the image).
        coarse_inv: float[N, N], the inverse of the coarsest operator (N = h w
            of the coarsest level), or None where that grid is too large to
            invert and Jacobi sweeps stand in for it.
    """

    levels: tuple
    coarse_inv: Array | None


def _shift(u: Array, dy: int, dx: int) -> Array:
    """``out[..., y, x] = u[..., y + dy, x + dx]``, zero where that falls outside."""
    h, w = u.shape[-2:]
    src = u[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    pad = ((0, 0),) * (u.ndim - 2) + ((max(-dy, 0), max(dy, 0)), (max(-dx, 0), max(dx, 0)))
    return jnp.pad(src, pad)


def apply_stencil(s: Stencil, u: Array) -> Array:
    """``A u`` for a :class:`Stencil`. float[H, W] -> float[H, W]."""
    out = s.diag * u
    out = out - s.right * _shift(u, 0, 1) - _shift(s.right * u, 0, -1)
    return out - s.down * _shift(u, 1, 0) - _shift(s.down * u, -1, 0)


def mask_stencil(mask: Array, inside: Array) -> Stencil:
    """The Poisson operator of the correction system.

    Args:
        mask: bool[H, W], the unknown pixels.
        inside: bool[H, W], pixels of the image (False marks padding beyond
            its border, which never counts as a neighbour).

    Returns:
        On mask pixels ``diag = |N_p|`` and unit weights between neighbouring
        mask pixels; off the mask ``diag = 1`` and no edges (identity rows).
    """
    dtype = jnp.result_type(float)
    m = mask.astype(dtype)
    v = inside.astype(dtype)
    deg = _shift(v, 0, 1) + _shift(v, 0, -1) + _shift(v, 1, 0) + _shift(v, -1, 0)
    return Stencil(jnp.where(mask, deg, 1.0), m * _shift(m, 0, 1), m * _shift(m, 1, 0))


def poisson_rhs(
    source: Array, target: Array, mask: Array, inside: Array, mixed: bool = False
) -> Array:
    """Right-hand side b of the correction system ``A u = b``, ``u = f - target``.

    Args:
        source: float[H, W], one channel, already aligned with the target.
        target: float[H, W].
        mask: bool[H, W] (see :func:`mask_stencil`).
        inside: bool[H, W] (see :func:`mask_stencil`).
        mixed: mixed gradients (keep the stronger of the source and target
            gradients on every edge).

    Returns:
        float[H, W], zero off the mask.
    """
    b = jnp.zeros_like(target)
    # normal mode: g - gt is the difference of d = source - target across the edge, so
    # b is the graph Laplacian of d; one stencil over d fuses better than four over both
    d = source - target
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        if mixed:
            gs = source - _shift(source, dy, dx)
            gt = target - _shift(target, dy, dx)
            edge = jnp.where(jnp.abs(gs) > jnp.abs(gt), gs, gt) - gt
        else:
            edge = d - _shift(d, dy, dx)
        b = b + jnp.where(_shift(inside, dy, dx), edge, 0.0)
    return jnp.where(mask, b, 0.0)


def _even(x: Array, value=0) -> Array:
    """Pad the last two axes of ``x`` by one where they are odd."""
    h, w = x.shape[-2:]
    pad = ((0, 0),) * (x.ndim - 2) + ((0, h % 2), (0, w % 2))
    return jnp.pad(x, pad, constant_values=value) if h % 2 or w % 2 else x


def _coarsen(s: Stencil, active: Array) -> tuple[Stencil, Array]:
    """Galerkin coarse operator ``P^T A P / 2`` for 2 x 2 aggregates.

    Identity rows off the active set do not take part; an aggregate without
    active pixels gets an identity row. The factor 1/2 is the usual scaling of
    cell-centred multigrid (the Laplacian of the doubled spacing). An odd side
    is first padded by one inactive row or column.
    """
    s, active = Stencil(*map(_even, s)), _even(active, False)
    a = active.astype(s.diag.dtype)

    def quad(x, i, j):  # the (i, j) corner pixel of every 2 x 2 aggregate
        return x[..., i::2, j::2]

    internal = sum(quad(s.right, i, 0) + quad(s.down, 0, i) for i in (0, 1))
    diag = sum(quad(s.diag * a, i, j) for i in (0, 1) for j in (0, 1)) - 2 * internal
    right = quad(s.right, 0, 1) + quad(s.right, 1, 1)
    down = quad(s.down, 1, 0) + quad(s.down, 1, 1)
    right = jnp.pad(right[:, :-1], ((0, 0), (0, 1)))
    down = jnp.pad(down[:-1, :], ((0, 1), (0, 0)))
    act = _restrict(a) > 0
    diag = jnp.where(act, diag, 2.0)
    return Stencil(diag / 2, right / 2, down / 2), act


_MAX_DENSE = 1024  # pixels of the coarsest grid that is still inverted densely
_COARSE_SWEEPS = 30  # Jacobi sweeps on a coarsest grid larger than that


def _restrict(r: Array) -> Array:
    """Sums over 2 x 2 aggregates (odd sides padded). [..., H, W] -> [..., ceil(H/2), ceil(W/2)].

    Strided slices, not a reshape-and-sum: XLA fuses them into one elementwise
    loop, where the reduction ran three times slower on the CPU.
    """
    r = _even(r)
    return r[..., ::2, ::2] + r[..., 1::2, ::2] + r[..., ::2, 1::2] + r[..., 1::2, 1::2]


def _prolong(e: Array, h: int, w: int) -> Array:
    """Piecewise-constant prolongation to an H x W grid (the transpose of :func:`_restrict`)."""
    *c, hc, wc = e.shape
    e = jnp.broadcast_to(e[..., :, None, :, None], (*c, hc, 2, wc, 2))
    return e.reshape(*c, 2 * hc, 2 * wc)[..., :h, :w]


def _jacobi(s: Stencil, active: Array, u: Array, b: Array, sweeps: int, omega: float = 0.8):
    inv = jnp.where(active, omega / s.diag, 0.0)
    # a loop, not unrolled: XLA would fuse unrolled sweeps into ever wider stencils
    return jax.lax.fori_loop(0, sweeps, lambda _, u: u + inv * (b - apply_stencil(s, u)), u)


def _spd_inverse(a: Array) -> Array:
    """Inverse of a small symmetric positive definite matrix by Gauss-Jordan elimination.

    Diagonal pivots (positive for SPD), one rank-one update per column in a
    loop. Plain XLA on purpose: LAPACK's multithreaded triangular solves ran
    twenty times slower inside the solver than alone, competing with XLA's own
    threads for the cores. float[N, N] -> float[N, N].
    """
    n = a.shape[0]
    idx = jnp.arange(n)

    def step(k, x):
        # pivot k in place as one rank-one update: x - u r^T with u = column k
        # (p - 1 at k) and r = row k / p (1 + 1/p at k)
        row, col = x[k], x[:, k]
        p = row[k]
        u = jnp.where(idx == k, p - 1, col)
        r = jnp.where(idx == k, 1 + 1 / p, row / p)
        return x - u[:, None] * r[None, :]

    return jax.lax.fori_loop(0, n, step, a)


def _dense_inverse(s: Stencil) -> Array:
    """The inverse of the (small) coarsest operator as a dense matrix. float[N, N], N = H W."""
    h, w = s.diag.shape
    eye = jnp.eye(h * w, dtype=s.diag.dtype).reshape(h * w, h, w)
    a = apply_stencil(_lift(s, 3), eye).reshape(h * w, h * w)
    x = _spd_inverse(a)
    return x + x @ (jnp.eye(h * w, dtype=a.dtype) - a @ x)  # one Newton-Schulz refinement


def _lift(x, ndim: int):
    """Leading unit axes on the arrays of ``x`` (explicit broadcasting over channels)."""
    return jax.tree.map(lambda a: a.reshape((1,) * (ndim - a.ndim) + a.shape), x)


def _v_cycle(levels, coarse_inv: Array | None, b: Array, pre: int = 2, post: int = 2) -> Array:
    """One symmetric V-cycle for ``A e = b`` from ``e = 0`` (a fixed linear map).

    ``levels`` holds (stencil, active) pairs from fine to coarse, 2-D; ``b``
    may carry leading channel axes. The coarsest level is solved exactly with
    its dense inverse where it is small, else approximately by Jacobi sweeps.
    """
    (s, act), rest = _lift(levels[0], b.ndim), levels[1:]
    if not rest:
        if coarse_inv is None:  # too large to invert: many smoothing sweeps instead
            return _jacobi(s, act, jnp.zeros_like(b), b, _COARSE_SWEEPS)
        x = (b.reshape(*b.shape[:-2], -1) @ coarse_inv.T).reshape(b.shape)
        return jnp.where(act, x, 0.0)
    e = _jacobi(s, act, jnp.zeros_like(b), b, pre)
    r = jnp.where(act, b - apply_stencil(s, e), 0.0)
    coarse = _v_cycle(rest, coarse_inv, _restrict(r), pre, post)
    e = e + jnp.where(act, _prolong(coarse, *b.shape[-2:]), 0.0)
    return _jacobi(s, act, e, b, post)


def num_levels(h: int, w: int, coarsest: int = 64) -> int:
    """Multigrid levels for an H x W grid.

    Halve (rounding up) while the grid has more than ``coarsest`` pixels; the
    coarsest grid is solved directly, so it should stay small. 64 (an 8 x 8
    grid at most) against 256 before: the dense inverse of a 256-pixel grid
    and its product with the residual cost more than the two levels between,
    and building that inverse (vmapped over a batch of masks) dominated small
    crops (measured with bench/bench_poisson.py, 2026-12-02).
    """
    levels = 1
    while h * w > coarsest:
        h, w, levels = -(-h // 2), -(-w // 2), levels + 1
    return levels


def poisson_operator(
    mask: Array, inside: Array | None = None, *, levels: int | None = None, dtype=jnp.float32
) -> PoissonOperator:
    """Operator and multigrid hierarchy of the correction system over ``mask``.

    Args:
        mask: bool[H, W], the unknown pixels.
        inside: bool[H, W], image pixels (default all); False marks padding.
        levels: multigrid levels (static; default from the shape, see :func:`num_levels`).
        dtype: float dtype of the operator (static).

    Returns:
        :class:`PoissonOperator`. jit- and vmap-friendly: vmapping it over a
        batch of masks builds the hierarchies (and the coarse inverses, the
        costliest part) for all images in one pass.
    """
    mask = jnp.asarray(mask, bool)
    inside = jnp.ones_like(mask) if inside is None else jnp.asarray(inside, bool)
    mask = mask & inside
    levels = num_levels(*mask.shape) if levels is None else levels
    hier = [(Stencil(*(x.astype(dtype) for x in mask_stencil(mask, inside))), mask)]
    for _ in range(levels - 1):
        hier.append(_coarsen(*hier[-1]))
    coarse = hier[-1][0].diag.size
    coarse_inv = _dense_inverse(hier[-1][0]) if coarse <= _MAX_DENSE else None
    return PoissonOperator(tuple(hier), coarse_inv)


def solve_poisson(
    source: Array,
    target: Array,
    mask: Array,
    inside: Array | None = None,
    *,
    mixed: bool = False,
    rtol: float = 1e-4,
    max_iters: int = 50,
    levels: int | None = None,
    operator: PoissonOperator | None = None,
) -> PoissonSolution:
    """Blend ``source`` into ``target`` over ``mask``, all channels at once.

    The channels share the mask, so they share the operator, its multigrid
    hierarchy and the coarse inverse; each channel has its own conjugate-
    gradient scalars and the loop runs until every channel has converged.
    jit- and vmap-friendly (vmap over images); ``mixed``, ``max_iters`` and
    ``levels`` are static. Any shape works: a level with an odd side is padded
    by one inactive row or column before it is coarsened.

    Args:
        source: float[..., H, W], channels first, aligned with the target.
        target: float[..., H, W], same shape and dtype.
        mask: bool[H, W], the pixels to solve for. Every connected component
            must reach a pixel outside the mask, else the system is singular.
        inside: bool[H, W], image pixels (default all); False marks padding.
        mixed: mixed gradients.
        rtol: relative residual to reach, per channel.
        max_iters: iteration budget.
        levels: multigrid levels (default from the shape, see :func:`num_levels`).
        operator: the :func:`poisson_operator` of this ``mask`` and ``inside``,
            where it was built beforehand (shared between images with the same
            mask, or built vmapped for a batch); default: built here.

    Returns:
        :class:`PoissonSolution` with ``value`` float[..., H, W] and the
        diagnostics per channel (shape ``[...]``).
    """
    mask = jnp.asarray(mask, bool)
    inside = jnp.ones_like(mask) if inside is None else jnp.asarray(inside, bool)
    mask = mask & inside
    # traced before the operator on purpose: in this order XLA's CPU scheduler ran a
    # batch of 64 solves in 212 ms, in the other in 350 ms
    b = poisson_rhs(source, target, *_lift((mask, inside), target.ndim), mixed)
    if operator is None:
        operator = poisson_operator(mask, inside, levels=levels, dtype=target.dtype)
    hier, coarse_inv = list(operator.levels), operator.coarse_inv
    s, mask = _lift(hier[0], b.ndim)

    def matvec(u):
        return jnp.where(mask, apply_stencil(s, u), 0.0)

    def precond(r):
        return jnp.where(mask, _v_cycle(hier, coarse_inv, r), 0.0)

    def dot(x, y):
        return jnp.einsum("...hw,...hw->...", x, y)

    def div(x, y):
        return jnp.where(y > 0, x / jnp.where(y > 0, y, 1), 0.0)

    def col(x):
        return x[..., None, None]

    bnorm = jnp.sqrt(dot(b, b))
    tol = rtol * bnorm
    z0 = precond(b)
    state0 = (jnp.zeros_like(b), b, z0, dot(b, z0), bnorm, jnp.int32(0))

    def cond(st):
        *_, rnorm, k = st
        return jnp.any(rnorm > tol) & (k < max_iters)

    def body(st):
        u, r, p, rz, _, k = st
        ap = matvec(p)
        alpha = div(rz, dot(p, ap))
        u = u + col(alpha) * p
        r = r - col(alpha) * ap
        z = precond(r)
        rz_new = dot(r, z)
        p = z + col(div(rz_new, rz)) * p
        return u, r, p, rz_new, jnp.sqrt(dot(r, r)), k + 1

    u, *_, k = jax.lax.while_loop(cond, body, state0)
    rel = div(jnp.sqrt(dot(b - matvec(u), b - matvec(u))), bnorm)
    return PoissonSolution(target + u, rel, jnp.broadcast_to(k, rel.shape), rel <= rtol)
