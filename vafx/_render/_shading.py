"""The photo's lighting from its fitted face, and shading that follows new geometry.

A Lambertian face under distant light has, to a few percent, the irradiance of
a second-order spherical-harmonic (SH) lighting (Ramamoorthi and Hanrahan
2001; Basri and Jacobs 2003): ``I(v) = albedo(v) * B(n_v) . L`` with nine basis
functions ``B`` of the unit normal. :func:`estimate_lighting` fits ``L`` per
colour channel to the photo's colours at the fitted mesh's visible vertices,
with the albedo taken as constant and every vertex whose colour the model does
not explain (eyebrows, lips, hair over the forehead, glasses, specular spots)
down-weighted by iteratively reweighted least squares (Tukey's biweight, its
scale the weighted median absolute residual over every 8th vertex).

A deformation moves a surface point and turns its normal; the photo's pixel
there holds the old shading. :func:`shading_ratio` is the factor that takes it
to the new one, ``S(n_new) / S(n_old)`` with ``S = B . L`` of the grey level,
clipped to a plausible range. Where the normal does not change the ratio is
exactly 1, so a zero deformation gives the photo back bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["estimate_lighting", "sh_basis", "shading_ratio"]

#: Range of the shading ratio: a deformation can darken a pixel to 0.5 or
#: brighten it to 1.6 times its photo value (folds, raised cheeks), no more.
RATIO_RANGE = (0.5, 1.6)


def sh_basis(normals: jax.Array) -> jax.Array:
    """The nine real SH basis functions (bands 0-2, constants dropped): float[..., 9].

    Args:
        normals: float[..., 3] unit normals.
    """
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    one = jnp.ones_like(x)
    return jnp.stack([one, x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], -1)


def estimate_lighting(
    colours: jax.Array,
    normals: jax.Array,
    weights: jax.Array,
    *,
    iters: int = 8,
    ridge: float = 1e-3,
) -> jax.Array:
    """Second-order SH lighting of a face with constant albedo: float[C, 9].

    Args:
        colours: float[V, C] observed colours (any linear scale).
        normals: float[V, 3] unit normals, in the frame the lighting is wanted in.
        weights: float[V] prior weights (0: vertex not seen or not skin).
        iters: reweighting rounds after the first least-squares fit.
        ridge: Tikhonov weight on the band-1 and band-2 coefficients, relative to
            the data's total weight (keeps the fit defined when the visible
            normals span a narrow cone).

    Returns:
        ``L`` with ``colours ~= sh_basis(normals) @ L.T`` on the vertices it trusts.
    """
    basis = sh_basis(normals)  # [V, 9]
    reg = ridge * jnp.concatenate([jnp.zeros(1), jnp.ones(8)]).astype(basis.dtype)

    def solve(w):  # w: [V, C] -> L [C, 9]
        def one(wc, yc):
            a = basis.T @ (wc[:, None] * basis)
            a = a + jnp.diag(reg * jnp.maximum(jnp.sum(wc), 1.0))
            return jnp.linalg.solve(a, basis.T @ (wc * yc))

        return jax.vmap(one, in_axes=(1, 1))(w, colours)

    w0 = jnp.broadcast_to(weights[:, None], colours.shape).astype(basis.dtype)

    def body(_, lighting):
        r = colours - basis @ lighting.T
        # robust scale: 1.4826 x the weighted median of |r| per channel, over every
        # 4th vertex (XLA's CPU sort is slow: 4 ms for 3,000 values in 3 columns)
        mad = _weighted_median(jnp.abs(r[::4]), w0[::4])
        c = 4.685 * jnp.maximum(1.4826 * mad, 1e-4)
        u = jnp.clip(jnp.abs(r) / c[None, :], 0.0, 1.0)
        return solve(w0 * (1 - u * u) ** 2)

    return jax.lax.fori_loop(0, iters, body, solve(w0))


def _weighted_median(x: jax.Array, w: jax.Array) -> jax.Array:
    """Per column of x float[V, C] with weights w float[V, C]: float[C]."""
    order = jnp.argsort(x, axis=0)
    xs = jnp.take_along_axis(x, order, axis=0)
    cw = jnp.cumsum(jnp.take_along_axis(w, order, axis=0), axis=0)
    # the first place where the cumulative weight reaches half (a count, not a
    # searchsorted, which runs as a loop on the CPU)
    i = jnp.sum(cw < 0.5 * cw[-1:], axis=0)
    return xs[jnp.clip(i, 0, x.shape[0] - 1), jnp.arange(x.shape[1])]


def shading_ratio(lighting: jax.Array, old: jax.Array, new: jax.Array) -> jax.Array:
    """Grey-level shading under ``new`` normals over that under ``old``: float[...].

    Args:
        lighting: float[C, 9] from :func:`estimate_lighting`.
        old, new: float[..., 3] unit normals (the fitted and the deformed surface).

    Returns:
        The ratio, clipped to :data:`RATIO_RANGE`; exactly 1 where ``new == old``
        or where the old shading is too dark to divide by.
    """
    grey = jnp.mean(lighting, axis=0)
    s_old = sh_basis(old) @ grey
    s_new = sh_basis(new) @ grey
    floor = 0.05 * jnp.maximum(grey[0], 1e-6)
    ok = s_old > floor
    ratio = jnp.where(ok, s_new / jnp.where(ok, s_old, 1.0), 1.0)
    return jnp.where(jnp.all(new == old, axis=-1), 1.0, jnp.clip(ratio, *RATIO_RANGE))
