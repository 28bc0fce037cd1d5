"""Rotations and cameras: SO(3) exponential map, projections, closed-form pose from points.

Conventions: model coordinates are right-handed with y up; image coordinates
are pixels with (0, 0) the top-left pixel's centre, u to the right, v down.
Both cameras look down the model's -z axis after rotation, so a frontal face
(nose towards +z) faces the camera.

- Scaled orthographic: ``(u, v) = (tx + s X'_x, ty - s X'_y)``, ``X' = R X``.
- Pinhole: ``X' = R X + t``; ``(u, v) = (cx + f X'_x / d, cy - f X'_y / d)`` with
  depth ``d = -X'_z`` (positive in front of the camera).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

__all__ = [
    "affine_camera",
    "euler_angles",
    "hat",
    "project_orthographic",
    "project_perspective",
    "rotation_from_euler",
    "so3_exp",
]


def hat(w: Array) -> Array:
    """The skew matrix of w: ``hat(w) @ x == cross(w, x)``. float[3] -> float[3, 3]."""
    z = jnp.zeros_like(w[0])
    return jnp.stack(
        [jnp.stack([z, -w[2], w[1]]), jnp.stack([w[2], z, -w[0]]), jnp.stack([-w[1], w[0], z])]
    )


def so3_exp(w: Array) -> Array:
    """Rotation matrix of the axis-angle vector w (Rodrigues), smooth at w = 0. float[3] -> float[3, 3]."""
    theta2 = jnp.sum(w * w)
    small = theta2 < 1e-8
    theta2s = jnp.where(small, 1.0, theta2)
    theta = jnp.sqrt(theta2s)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / theta2s)
    k = hat(w)
    return jnp.eye(3, dtype=w.dtype) + a * k + b * (k @ k)


def rotation_from_euler(yaw, pitch, roll) -> Array:
    """R = Rz(roll) Ry(yaw) Rx(pitch), angles in radians (yaw about y, pitch about x, roll about z)."""
    dt = jnp.result_type(float)
    ry = so3_exp(jnp.array([0.0, 1.0, 0.0], dt) * yaw)
    rx = so3_exp(jnp.array([1.0, 0.0, 0.0], dt) * pitch)
    rz = so3_exp(jnp.array([0.0, 0.0, 1.0], dt) * roll)
    return rz @ ry @ rx


def euler_angles(r: Array) -> Array:
    """(yaw, pitch, roll) in radians of R = Rz(roll) Ry(yaw) Rx(pitch). float[3, 3] -> float[3]."""
    yaw = jnp.arcsin(jnp.clip(-r[2, 0], -1.0, 1.0))
    pitch = jnp.arctan2(r[2, 1], r[2, 2])
    roll = jnp.arctan2(r[1, 0], r[0, 0])
    return jnp.stack([yaw, pitch, roll])


def project_orthographic(x: Array, r: Array, t: Array, s) -> Array:
    """Scaled orthographic projection. x: float[..., 3]; r: [3, 3]; t: [2]; s scalar -> float[..., 2]."""
    xr = x @ r.T
    return jnp.stack([t[0] + s * xr[..., 0], t[1] - s * xr[..., 1]], axis=-1)


def project_perspective(x: Array, r: Array, t: Array, f, c: Array) -> tuple[Array, Array]:
    """Pinhole projection. t: float[3] (model units); f: pixels; c: float[2] principal point.

    Returns:
        (uv float[..., 2], depth float[...] along the viewing direction).
    """
    xc = x @ r.T + t.reshape((1,) * (x.ndim - 1) + (3,))
    d = -xc[..., 2]
    ds = jnp.where(jnp.abs(d) > 1e-9, d, 1e-9)
    return jnp.stack([c[0] + f * xc[..., 0] / ds, c[1] - f * xc[..., 1] / ds], axis=-1), d


def affine_camera(points3d: Array, points2d: Array, weights: Array | None = None):
    """Closed-form scaled orthographic pose from correspondences (affine fit, then projection to SO(3)).

    Fits the 2 x 4 affine camera by weighted least squares (the "gold standard"
    algorithm of Hartley and Zisserman, without normalization: coordinates are
    centred), then takes the nearest scaled rotation (SVD).

    Args:
        points3d: float[L, 3].
        points2d: float[L, 2] pixels.
        weights: float[L] (0 drops a point), default ones.

    Returns:
        (R float[3, 3], t float[2], s scalar) for :func:`project_orthographic`.
    """
    w = jnp.ones(points3d.shape[0], points3d.dtype) if weights is None else weights
    sw = jnp.sum(w)
    c3 = jnp.sum(points3d * w[:, None], 0) / sw
    c2 = jnp.sum(points2d * w[:, None], 0) / sw
    a = (points3d - c3[None]) * jnp.sqrt(w)[:, None]
    b = (points2d - c2[None]) * jnp.sqrt(w)[:, None]
    b = b * jnp.array([[1.0, -1.0]], b.dtype)  # image v points down
    m = jnp.linalg.lstsq(a, b)[0].T  # [2, 3]: b ~ a @ m.T
    u, sv, vt = jnp.linalg.svd(m, full_matrices=False)
    r2 = u @ vt  # nearest matrix with orthonormal rows
    s = jnp.mean(sv)
    r3 = jnp.cross(r2[0], r2[1])
    r = jnp.stack([r2[0], r2[1], r3])
    t = c2 - s * (c3 @ r.T)[:2] * jnp.array([1.0, -1.0], c2.dtype)
    return r, t, s
