"""Synthetic raw 3D scans with known correspondence, for testing and benchmarking registration.

A scan is made from a face of a morphable model (a random identity and
expression) the way a range scanner would see it, in another topology than
the template's: a cylindrical scanner (rays from a vertical axis behind the
head, as in Cyberware-style scanners) samples the outermost surface on a
regular (angle, height) grid of about ``spacing`` in both directions; the
samples are exact surface points (barycentric interpolation of the face's
triangles, found by vafx's rasterizer); the grid is triangulated where
neighbouring samples are adjacent on the surface. Then holes are cut out
(every vertex within a random radius of random centres), the vertices get
Gaussian noise along their normal, and the scan is moved by a random
similarity (rotation about a random axis, translation, optional scale).

The ground truth is the face itself in template order, in the template's
frame: a registration that brings the template onto the scan and back by the
estimated pose should land on it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._model._morphable import MorphableModel, model_shape
from .._model._template import Template
from ..kernels import raster
from ..kernels.camera import so3_exp


@dataclasses.dataclass(frozen=True)
class ScanConfig:
    """How :func:`synthetic_scan` samples and spoils a face.

    Attributes:
        spacing: sample spacing on the surface (model units; ICT: cm).
        noise: standard deviation of the vertex noise along the normal.
        holes: number of holes cut out.
        hole_radius: (min, max) radius of a hole.
        rotation: largest misalignment angle, degrees (about a random axis).
        translation: largest misalignment shift along each axis.
        scale: the scan's scale against the model (1 = same units).
        landmark_noise: standard deviation of the 3D landmarks' noise (per axis).
        identity_scale: standard deviation of the identity coefficients.
    """

    spacing: float = 0.15
    noise: float = 0.01
    holes: int = 3
    hole_radius: tuple[float, float] = (0.5, 1.2)
    rotation: float = 20.0
    translation: float = 3.0
    scale: float = 1.0
    landmark_noise: float = 0.1
    identity_scale: float = 0.8


class Scan(NamedTuple):
    """One synthetic scan and its ground truth.

    Attributes:
        verts: float32[N, 3], the scan's vertices (scan frame).
        faces: int32[F, 3], its triangles.
        landmarks: float32[68, 3], iBUG-68 landmarks on the scan (with noise),
            NaN where the template has none.
        truth: float32[n, 3], the true surface points of the template's
            vertices, in the template's frame.
        pose: (s, R float[3, 3], t float[3]): scan = s R truth + t.
    """

    verts: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray
    truth: np.ndarray
    pose: tuple


def _cylinder_samples(verts: np.ndarray, faces: np.ndarray, spacing: float):
    """Exact surface points on a cylindrical scanner's grid: (points[H, W, 3], hit[H, W])."""
    centre = verts.mean(0)
    axis_z = centre[2] - 0.6 * (verts[:, 2].max() - verts[:, 2].min())
    dx, dz = verts[:, 0] - centre[0], verts[:, 2] - axis_z
    theta, radius = np.arctan2(dx, dz), np.hypot(dx, dz)
    r_mean = float(np.median(radius))
    step = spacing / r_mean
    u = (theta - theta.min()) / step + 1
    v = (verts[:, 1].max() - verts[:, 1]) / spacing + 1
    # grid sizes rounded up to a multiple of 32: frames of a sequence share
    # one compiled rasterizer (the extra rows and columns stay empty)
    h, w = (32 * -(-(int(np.ceil(x.max())) + 2) // 32) for x in (v, u))
    screen = np.stack([u, v, -radius], 1).astype(np.float32)  # nearest = outermost
    plan = raster.raster_plan(screen[None], faces, h, w)
    frags = raster.rasterize(jnp.asarray(screen), jnp.asarray(faces), h, w, plan)
    pts = raster.interpolate(jnp.asarray(verts, jnp.float32), jnp.asarray(faces), frags)
    return np.asarray(pts), np.asarray(frags.triangle) >= 0


def _grid_mesh(points: np.ndarray, hit: np.ndarray, spacing: float):
    """Triangulate a grid of samples: two triangles per cell whose corners are all adjacent."""
    h, w = hit.shape
    ids = -np.ones((h, w), np.int64)
    ids[hit] = np.arange(hit.sum())
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    tris = np.concatenate(
        [np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)]
    )
    tris = tris[(tris >= 0).all(1)]
    verts = points[hit]
    e = np.stack(
        [np.linalg.norm(verts[tris[:, i]] - verts[tris[:, (i + 1) % 3]], axis=1) for i in range(3)]
    )
    tris = tris[(e < 4 * spacing).all(0)]  # no triangle across an occlusion edge
    return verts, tris


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit normals in NumPy (ragged scan sizes would recompile a jit)."""
    a, b, c = (verts[faces[:, k]].astype(np.float64) for k in range(3))
    fn = np.cross(b - a, c - a)
    n = np.zeros((len(verts), 3))
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(norm > 0, norm, 1)).astype(np.float32)


def _compact(verts: np.ndarray, faces: np.ndarray, keep: np.ndarray):
    """Drop vertices (and their triangles) not kept or on no triangle; renumber."""
    faces = faces[keep[faces].all(1)]
    used = np.zeros(len(verts), bool)
    used[faces.ravel()] = True
    remap = -np.ones(len(verts), np.int64)
    remap[used] = np.arange(used.sum())
    return verts[used], remap[faces].astype(np.int32)


def synthetic_scan(
    model: MorphableModel,
    template: Template,
    seed: int,
    config: ScanConfig = ScanConfig(),
    *,
    identity: np.ndarray | None = None,
    expression: np.ndarray | None = None,
) -> Scan:
    """A raw scan of a random face of ``model``, in correspondence with nothing.

    Args:
        model: the morphable model the template was cut from.
        template: the template (its ``vertex_ids`` choose the region scanned).
        seed: random seed of identity, expression, holes, noise and pose.
        config: sampling and spoiling.
        identity: standardised identity coefficients (default: drawn).
        expression: expression weights (default: 2-5 random shapes at 0.2-0.9).

    Returns:
        A :class:`Scan`.
    """
    if template.vertex_ids is None:
        raise ValueError("synthetic scans need a template cut from the model")
    rng = np.random.default_rng(seed)
    if identity is None:
        identity = config.identity_scale * rng.standard_normal(model.num_identity)
    if expression is None:
        expression = np.zeros(model.num_expressions)
        on = rng.choice(model.num_expressions, rng.integers(2, 6), replace=False)
        expression[on] = rng.uniform(0.2, 0.9, len(on))
    full = np.asarray(model_shape(model, jnp.asarray(identity), jnp.asarray(expression)))
    truth = full[template.vertex_ids].astype(np.float32)
    faces = np.asarray(template.faces, np.int32)

    pts, hit = _cylinder_samples(truth, faces, config.spacing)
    verts, tris = _grid_mesh(pts, hit, config.spacing)
    verts, tris = _compact(verts, tris, np.ones(len(verts), bool))
    # orient outward, as the template is
    nrm = _vertex_normals(verts, tris)
    out = verts - verts.mean(0)
    if np.mean(np.sum(nrm * out, 1)) < 0:
        tris = tris[:, [0, 2, 1]]
        nrm = -nrm
    keep = np.ones(len(verts), bool)
    for _ in range(config.holes):
        centre = verts[rng.integers(len(verts))]
        radius = rng.uniform(*config.hole_radius)
        keep &= np.linalg.norm(verts - centre, axis=1) > radius
    verts = verts + (config.noise * rng.standard_normal(len(verts)))[:, None] * nrm
    verts, tris = _compact(verts, tris, keep)

    lm = np.full((68, 3), np.nan, np.float32)
    ids = np.asarray(model.landmarks)
    remap = {int(m): i for i, m in enumerate(template.vertex_ids)}
    for k, m in enumerate(ids):
        if m >= 0 and int(m) in remap:
            lm[k] = truth[remap[int(m)]] + config.landmark_noise * rng.standard_normal(3)

    axis = rng.standard_normal(3)
    axis *= np.deg2rad(rng.uniform(0, config.rotation)) / np.linalg.norm(axis)
    r = np.asarray(so3_exp(jnp.asarray(axis, jnp.float32)), np.float64)
    t = rng.uniform(-config.translation, config.translation, 3)
    s = config.scale
    move = lambda p: (s * p @ r.T + t).astype(np.float32)  # noqa: E731
    return Scan(move(verts), tris, move(lm), truth, (s, r, t))
