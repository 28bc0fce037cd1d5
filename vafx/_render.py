"""Re-rendering a fitted face with a new expression into its photo (section 3.4, step 3).

Choice of method (see docs/rendering.md): the deformed mesh is rasterized; every
covered pixel is mapped back to the same surface point (triangle and
barycentric coordinates) on the fitted, undeformed mesh, whose projection lies
in the photo; the photo is sampled there (bilinear). No texture map is
resampled, so the face keeps the photo's full resolution, and with zero
deformation every pixel maps to itself: the photo comes back exactly.

Surface the photo never showed is filled: points of the skin or eyes hidden in
the neutral view take colours diffused over the mesh from the visible vertices;
the ICT model's mouth interior (mouth socket, gums and tongue, teeth), which a
closed-mouth photo never shows, is shaded from base colours matched to the
photo's skin brightness, darker the deeper it lies behind the lips.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ._fitting import Fit, image_vertices
from ._model._morphable import MorphableModel, model_shape
from .kernels.raster import interpolate, raster_plan, rasterize, sample_bilinear

__all__ = ["Rendered", "render_face"]

#: Base colours (linear RGB in [0, 1]) of the ICT mouth interior.
MOUTH_COLOURS = {
    "teeth": (0.86, 0.83, 0.76),
    "gums_tongue": (0.70, 0.33, 0.36),
    "mouth_socket": (0.36, 0.12, 0.13),
}
PHOTO_REGIONS = ("face", "eyes")

PHOTO, FILLED, MOUTH = 1, 2, 3


class Rendered(NamedTuple):
    """Output of :func:`render_face`.

    Attributes:
        image: float32[H, W, 3] in [0, 1]: the photo with the re-rendered face.
        coverage: bool[H, W], pixels the rendered face covers.
        blend_mask: bool[H, W], where Poisson blending should solve (the face
            region's coverage, eroded by ``erode`` pixels, eyes and mouth kept).
        source: int8[H, W]: 0 photo untouched, 1 sampled from the photo,
            2 filled (surface hidden in the photo), 3 mouth interior.
    """

    image: np.ndarray
    coverage: np.ndarray
    blend_mask: np.ndarray
    source: np.ndarray


def _faces_of(model: MorphableModel, names) -> tuple[np.ndarray, np.ndarray]:
    faces = np.asarray(model.faces)
    out, tags = [], []
    for i, name in enumerate(names):
        if name not in model.regions:
            continue
        ids = np.asarray(model.regions[name])
        sel = np.isin(faces, ids).all(axis=1)
        out.append(faces[sel])
        tags.append(np.full(sel.sum(), i))
    return np.concatenate(out).astype(np.int32), np.concatenate(tags)


def _vertex_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _diffuse(
    colours: np.ndarray, known: np.ndarray, faces: np.ndarray, iters: int = 200
) -> np.ndarray:
    """Fill unknown vertex colours by repeated averaging over mesh neighbours (sparse matvecs)."""
    import scipy.sparse

    n = len(colours)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.concatenate([e, e[:, ::-1]]), axis=0)
    adj = scipy.sparse.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    c = np.where(known[:, None], colours, 0.0).astype(np.float64)
    have = known.astype(np.float64)
    for _ in range(iters):
        acc = adj @ (c * have[:, None])
        cnt = adj @ have
        upd = ~known & (cnt > 0)
        if not upd.any():
            break
        c[upd] = acc[upd] / cnt[upd, None]
        have = np.where(known | (cnt > 0), 1.0, have)
    return c


def render_face(
    photo,
    model: MorphableModel,
    fit: Fit,
    deformation=None,
    *,
    camera: str = "orthographic",
    erode: int = 2,
    depth_tolerance: float = 1.5,
) -> Rendered:
    """Re-render the fitted face with an added deformation into its photo.

    Args:
        photo: uint8 or float[H, W, 3] (float in [0, 1]).
        model: the morphable model the fit used.
        fit: its :class:`vafx.Fit` (one image).
        deformation: float[n, 3] vertex offsets in model units (e.g. a bin's
            mean expression mapped onto the model); None renders the fit as is.
        camera: the fit's camera.
        erode: pixels taken off the coverage for the blend mask.
        depth_tolerance: a surface point counts as visible in the photo when
            its neutral depth is within this of the neutral z-buffer (pixels
            for the orthographic camera, model units for perspective).

    Returns:
        :class:`Rendered`.
    """
    img = np.asarray(photo)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"photo: expected (H, W, 3), got {img.shape}")
    img = img[..., :3]
    h, w = img.shape[:2]
    persp = camera == "perspective"
    v0 = np.asarray(model_shape(model, fit.identity, fit.expression))
    v1 = v0 if deformation is None else v0 + np.asarray(deformation, np.float32)
    names = PHOTO_REGIONS + tuple(MOUTH_COLOURS)
    faces, tag = _faces_of(model, names)
    n_photo = len(PHOTO_REGIONS)
    p0 = np.asarray(image_vertices(jnp.asarray(v0), fit, camera))
    p1 = np.asarray(image_vertices(jnp.asarray(v1), fit, camera))
    f = jnp.asarray(faces)
    plan = raster_plan(np.stack([p0, p1]), faces, h, w)
    fr0 = rasterize(jnp.asarray(p0), f, h, w, plan, perspective=persp)
    fr1 = rasterize(jnp.asarray(p1), f, h, w, plan, perspective=persp)
    tri1 = np.asarray(fr1.triangle)
    cover = tri1 >= 0
    # the same surface point on the neutral mesh: its place in the photo and its depth
    uvz0 = np.asarray(interpolate(jnp.asarray(p0), f, fr1))
    z_buf0 = np.asarray(fr0.depth)
    yi = np.clip(np.rint(uvz0[..., 1]).astype(int), 0, h - 1)
    xi = np.clip(np.rint(uvz0[..., 0]).astype(int), 0, w - 1)
    inside = (
        (uvz0[..., 0] >= -0.5)
        & (uvz0[..., 0] <= w - 0.5)
        & (uvz0[..., 1] >= -0.5)
        & (uvz0[..., 1] <= h - 0.5)
    )
    seen = cover & inside & (np.abs(uvz0[..., 2] - z_buf0[yi, xi]) <= depth_tolerance)
    region = np.where(cover, tag[np.maximum(tri1, 0)], -1)
    # the mouth interior the photo shows (lips apart in the neutral fit) is sampled
    # like the skin; only the part it never showed is synthesized
    mouth = cover & (region >= n_photo) & ~seen
    sampled = np.asarray(sample_bilinear(jnp.asarray(img), jnp.asarray(uvz0[..., :2])))

    # colours of surface the photo never showed: diffused from visible vertices
    n = len(v0)
    photo_faces = faces
    pv = p0[:, :2]
    vy = np.clip(np.rint(pv[:, 1]).astype(int), 0, h - 1)
    vx = np.clip(np.rint(pv[:, 0]).astype(int), 0, w - 1)
    used = np.zeros(n, bool)
    used[photo_faces.ravel()] = True
    vis = (
        used
        & (np.abs(p0[:, 2] - z_buf0[vy, vx]) <= depth_tolerance)
        & (pv[:, 0] >= 0)
        & (pv[:, 0] < w)
        & (pv[:, 1] >= 0)
        & (pv[:, 1] < h)
    )
    vcol = np.zeros((n, 3), np.float32)
    vcol[vis] = np.asarray(sample_bilinear(jnp.asarray(img), jnp.asarray(pv[vis])))
    vcol = _diffuse(vcol, vis, photo_faces).astype(np.float32)
    filled = np.asarray(interpolate(jnp.asarray(vcol), f, fr1))

    # the mouth interior: base colours, matched to the skin, shaded, darker when deep
    skin = vcol[vis].mean(axis=0) if vis.any() else np.full(3, 0.6, np.float32)
    match = np.clip(skin.mean() / 0.6, 0.4, 1.4)
    base = np.zeros((n, 3), np.float32)
    for i, name in enumerate(MOUTH_COLOURS):
        if name in model.regions:
            base[np.asarray(model.regions[name])] = np.asarray(MOUTH_COLOURS[name]) * match
    normals = _vertex_normals(v1, faces)
    view = np.array([0.0, 0.0, 1.0]) @ np.asarray(fit.rotation)  # towards the camera, model space
    lambert = 0.35 + 0.65 * np.clip(normals @ view, 0.0, 1.0)
    inner = np.concatenate(
        [np.asarray(model.regions[k]) for k in MOUTH_COLOURS if k in model.regions]
        or [np.arange(0)]
    )
    front = np.percentile(p1[inner, 2], 2) if len(inner) else 0.0
    depth_span = max(0.08 * np.ptp(p1[:, 0]), 1e-6)  # about 2 cm on a head
    deep = np.exp(-np.clip(p1[:, 2] - front, 0, None) / depth_span)
    mcol = base * (lambert * (0.4 + 0.6 * deep))[:, None]
    mouth_img = np.asarray(interpolate(jnp.asarray(mcol.astype(np.float32)), f, fr1))

    out = img.copy()
    fill = cover & ~seen & ~mouth
    out[seen] = sampled[seen]
    out[fill] = filled[fill]
    out[mouth] = mouth_img[mouth]
    source = np.zeros((h, w), np.int8)
    source[seen], source[fill], source[mouth] = PHOTO, FILLED, MOUTH
    face_cov = cover & (region == 0) | mouth | (cover & (region == 1))
    mask = face_cov.copy()
    for _ in range(erode):
        m = mask.copy()
        m[1:] &= mask[:-1]
        m[:-1] &= mask[1:]
        m[:, 1:] &= mask[:, :-1]
        m[:, :-1] &= mask[:, 1:]
        mask = m
    return Rendered(np.clip(out, 0.0, 1.0), cover, mask, source)
