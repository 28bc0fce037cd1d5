"""Re-rendering fitted faces with new expressions into their photos (section 3.4, step 3).

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

Everything after the fit is one jit-compiled call over a batch of photos and a
batch of deformations (:func:`render_faces`): the work that depends only on a
photo's fit (its neutral z-buffer, vertex colours and their diffusion) is done
once per photo and shared by all its deformations.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._compiled._programs import grown_sizes, persistent
from .._errors import VafxError
from .._fit._fitting import Fit, image_vertices
from .._model._morphable import MorphableModel, model_shape, region_faces
from ..kernels.raster import (
    RasterPlan,
    interpolate,
    plan_overflow,
    raster_plan,
    rasterize,
    sample_bilinear,
)
from ._interior import (
    GUMS,
    LUMA,
    SOCKET,
    TEETH,
    corridor_tint,
    interior_colours,
    lip_shadow,
    mouth_polygon_mask,
    photo_teeth_colour,
    soften,
    tooth_seams,
)
from ._shading import RATIO_RANGE, _weighted_median, estimate_lighting, shading_ratio
from ._warp import detail_layers, extend_motion, feather, pixel_noise, sample_photo

__all__ = ["Rendered", "render_face", "render_faces", "vertex_normals"]

#: Base colours (sRGB in [0, 1]) of the ICT mouth interior, for a photo whose skin
#: is :data:`vafx._render._interior.REF_SKIN`.
MOUTH_COLOURS = {
    "teeth": (0.86, 0.83, 0.76),
    "gums_tongue": (0.70, 0.33, 0.36),
    "mouth_socket": (0.36, 0.12, 0.13),
}
PHOTO_REGIONS = ("face", "eyes")

#: Re-shading fades out where the photo saw the surface at a normal-to-view cosine
#: under twice this, and is off under it.
EDGE_ON = 0.2

PHOTO, FILLED, MOUTH = 1, 2, 3
_TEETH_TAG = len(PHOTO_REGIONS) + list(MOUTH_COLOURS).index("teeth")  # RenderMesh.tag
_KINDS = {"teeth": TEETH, "gums_tongue": GUMS, "mouth_socket": SOCKET}
#: Ways to render the mouth interior the photo never showed: "shaded" (geometry
#: under the photo's lighting, :mod:`vafx._render._interior`) or "flat" (base
#: colours scaled to the skin, the renderer before issue 37: the benchmark's baseline).
INTERIORS = ("shaded", "flat")
#: The fit's inner-lip landmarks (iBUG 60-67, 0-based), the outline of what a
#: photo shows of its mouth interior.
INNER_LIPS = slice(60, 68)


class Rendered(NamedTuple):
    """Output of :func:`render_face` (of :func:`render_faces`: leading axes [B, T]).

    Attributes:
        image: float32[H, W, 3] in [0, 1]: the photo with the re-rendered face.
        coverage: bool[H, W], pixels the rendered face covers.
        blend_mask: bool[H, W], where Poisson blending should solve: every
            pixel the re-rendering changed (at 8-bit precision), so that the
            blend's boundary values are pixels the render left equal to the photo.
        source: int8[H, W]: 0 photo untouched, 1 sampled from the photo,
            2 filled (surface hidden in the photo), 3 mouth interior.
        lighting: float32[3, 9], the photo's second-order SH lighting per
            colour channel, estimated from the fit (model-space normals;
            :func:`vafx._render._shading.estimate_lighting`), the same for every
            deformation of one photo.
        motion: float32[H, W], pixels: how far each pixel's content moved (the
            distance to the photo position it was sampled from; the face's
            motion, and around it the motion carried into the neck, hair and
            background; 0 where nothing moved).
    """

    image: np.ndarray
    coverage: np.ndarray
    blend_mask: np.ndarray
    source: np.ndarray
    lighting: np.ndarray
    motion: np.ndarray


class RenderMesh(NamedTuple):
    """The part of a model that is rendered, with what the renderer needs of it (a pytree).

    Attributes:
        faces: int32[F, 3], the photo regions' and mouth interior's triangles.
        tag: int32[F], region of each: 0 face, 1 eyes, 2 and up mouth interior.
        used: bool[V], vertices of those triangles.
        edges: int32[2, E], directed mesh edges (source, destination), by destination.
        mouth_base: float32[V, 3], the mouth interior's base colours (0 elsewhere).
        inner: int32[M], the mouth interior's vertices (M may be 0).
        skin: bool[V], vertices of the face region (what the lighting is fitted to).
        kind: int32[V], each vertex's kind of interior (:mod:`vafx._render._interior`:
            0 none, 1 teeth, 2 gums and tongue, 3 mouth socket).
        tooth: float32[V], each tooth's number (1, 2, ...: the teeth region's
            connected pieces, 32 on the ICT model), 0 off the teeth.
    """

    faces: jax.Array
    tag: jax.Array
    used: jax.Array
    edges: jax.Array
    mouth_base: jax.Array
    inner: jax.Array
    skin: jax.Array
    kind: jax.Array
    tooth: jax.Array


_MESHES: dict = {}  # id(model) -> (model, RenderMesh); the model kept so the id stays its own


def _edges(faces: np.ndarray, n: int) -> np.ndarray:
    """int32[2, E]: the mesh's directed edges (source, destination), sorted by destination."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    key = np.unique(np.concatenate([e[:, 1] * n + e[:, 0], e[:, 0] * n + e[:, 1]]))
    return np.stack([key % n, key // n]).astype(np.int32)


def _pieces(faces: np.ndarray, n: int) -> np.ndarray:
    """int64[n]: each vertex's connected piece of ``faces`` numbered 1, 2, ... (0: in none).

    Numbered in order of each piece's lowest vertex index (the same numbers every time).
    Each vertex takes the lowest index it is joined to, by label propagation with pointer
    jumping (numpy only: scipy's csgraph costs a first image 0.2 s to import).
    """
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]]).astype(np.int64)
    low = np.arange(n, dtype=np.int64)
    while True:
        m = np.minimum(low[e[:, 0]], low[e[:, 1]])
        new = low.copy()
        np.minimum.at(new, e[:, 0], m)
        np.minimum.at(new, e[:, 1], m)
        new = new[new]  # pointer jumping: a vertex takes its root's root
        if np.array_equal(new, low):
            break
        low = new
    used = np.zeros(n, bool)
    used[faces.ravel()] = True
    out = np.zeros(n, np.int64)
    out[used] = np.unique(low[used], return_inverse=True)[1] + 1
    return out


def render_mesh(model: MorphableModel) -> RenderMesh:
    """The :class:`RenderMesh` of a model (computed once per model object)."""
    key = id(model)
    hit = _MESHES.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    n = model.mean.shape[0]
    out, tags = [], []
    for i, name in enumerate(PHOTO_REGIONS + tuple(MOUTH_COLOURS)):
        if name in model.regions:
            out.append(region_faces(model, name))
            tags.append(np.full(len(out[-1]), i, np.int32))
    f = np.concatenate(out).astype(np.int32)
    used = np.zeros(n, bool)
    used[f.ravel()] = True
    base = np.zeros((n, 3), np.float32)
    kind = np.zeros(n, np.int32)
    inner = []
    for name, colour in MOUTH_COLOURS.items():
        if name in model.regions:
            ids = np.asarray(model.regions[name])
            base[ids] = colour
            kind[ids] = _KINDS[name]
            inner.append(ids)
    inner = np.unique(np.concatenate(inner)) if inner else np.zeros(0, np.int64)
    skin = np.zeros(n, bool)
    if "face" in model.regions:
        skin[region_faces(model, "face").ravel()] = True
    tooth = np.zeros(n, np.float32)
    if "teeth" in model.regions:
        tooth = _pieces(region_faces(model, "teeth"), n).astype(np.float32)
    mesh = RenderMesh(
        jax.device_put(f),
        jax.device_put(np.concatenate(tags)),
        jax.device_put(used),
        jax.device_put(_edges(f, n)),
        jax.device_put(base),
        jax.device_put(inner.astype(np.int32)),
        jax.device_put(skin),
        jax.device_put(kind),
        jax.device_put(tooth),
    )
    if len(_MESHES) > 8:
        _MESHES.clear()
    _MESHES[key] = (model, mesh)
    return mesh


def vertex_normals(vertices: jax.Array, faces: jax.Array) -> jax.Array:
    """Area-weighted unit vertex normals: float[V, 3] from vertices float[V, 3], faces int[F, 3]."""
    t = vertices[faces]
    fn = jnp.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    n = jnp.zeros_like(vertices)
    for k in range(3):
        n = n.at[faces[:, k]].add(fn)
    return n / jnp.maximum(jnp.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _diffuse(colours, known, edges, iters):
    """Fill unknown vertex colours by repeated averaging over the neighbours that have one.

    ``edges`` int32[2, E] (source, destination), sorted by destination.
    Returns (float[V, 3] colours, bool[V] reached). Vertices more than
    ``iters`` edges from any known one are not reached.
    """
    src, dst = edges[0], edges[1]
    n = colours.shape[0]

    def body(_, state):
        c, have = state
        wh = have[src].astype(c.dtype)
        cnt = jax.ops.segment_sum(wh, dst, n, indices_are_sorted=True)
        acc = jax.ops.segment_sum(c[src] * wh[:, None], dst, n, indices_are_sorted=True)
        upd = ~known & (cnt > 0)
        c = jnp.where(upd[:, None], acc / jnp.maximum(cnt, 1.0)[:, None], c)
        return c, have | (cnt > 0)

    return jax.lax.fori_loop(0, iters, body, (jnp.where(known[:, None], colours, 0.0), known))


def _unit(n):
    return n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _inside(uv, h, w):
    return (
        (uv[..., 0] >= -0.5)
        & (uv[..., 0] <= w - 0.5)
        & (uv[..., 1] >= -0.5)
        & (uv[..., 1] <= h - 0.5)
    )


def _lookup(buf, uv, h, w):
    yi = jnp.clip(jnp.rint(uv[..., 1]), 0, h - 1).astype(jnp.int32)
    xi = jnp.clip(jnp.rint(uv[..., 0]), 0, w - 1).astype(jnp.int32)
    return buf[yi, xi]


class _Canvas(NamedTuple):
    """What one photo's fit gives every rendering of it."""

    zbuf: jax.Array  # float[H, W], the neutral mesh's z-buffer
    colours: jax.Array  # float[V, 3], photo colours per vertex, hidden ones diffused
    skin: jax.Array  # float[3], mean colour of the visible vertices
    front: jax.Array  # float[3], mean colour of the visible skin that faces the camera
    normals: jax.Array  # float[V, 3], the fitted mesh's vertex normals (model space)
    lighting: jax.Array  # float[3, 9], the photo's SH lighting in model space
    smooth: jax.Array  # float[H, W, 3], the photo's smooth layer (:mod:`._warp`)
    detail: jax.Array  # float[H, W, 3], its detail layer
    mouth: jax.Array  # bool[H, W], what the photo shows of its mouth interior
    teeth: tuple  # (float[3], bool): the photo's tooth colour, and whether it shows teeth
    grain: jax.Array  # float[H, W]: the photo's grain pattern (fixed noise at its level)


def _masked_mean(x: jax.Array, mask: jax.Array, fallback: jax.Array) -> jax.Array:
    """Mean of the rows of x float[V, C] where mask bool[V]; ``fallback`` float[C] if none."""
    n = jnp.sum(mask)
    mean = jnp.sum(jnp.where(mask[:, None], x, 0.0), 0) / jnp.maximum(n, 1).astype(x.dtype)
    return jnp.where(n > 0, mean, fallback)


def _canvas(photo, v0, p0, view, lips, corner, mesh, *, plan, perspective, tol, iters, shade):
    h, w = photo.shape[:2]
    fr0 = rasterize(p0, mesh.faces, h, w, plan, perspective=perspective)
    vis = mesh.used & _inside(p0, h, w) & (jnp.abs(p0[:, 2] - _lookup(fr0.depth, p0, h, w)) <= tol)
    col = sample_bilinear(photo, p0[:, :2])
    skin = _masked_mean(col, vis, jnp.full((3,), 0.6, col.dtype))
    filled, reached = _diffuse(col, vis, mesh.edges, iters)
    normals = vertex_normals(v0, mesh.faces)
    # the skin lit as the mouth interior's front is: facing the camera (the mean over all
    # visible skin holds shaded cheeks and sides, darker than the teeth's light)
    front = _masked_mean(col, vis & mesh.skin & (normals @ view > 0.8), skin)
    if shade:
        # skin seen from the front: grazing views mix the face with what lies behind
        trust = vis & mesh.skin & (normals @ view > 0.3)
        # every 4th vertex: 27 unknowns need no 27k equations (2,300 on the ICT face)
        lighting = estimate_lighting(col[::4], normals[::4], trust[::4].astype(col.dtype))
    else:
        lighting = jnp.zeros((3, 9), col.dtype).at[:, 0].set(1.0)
    smooth, detail = detail_layers(photo)
    mouth = mouth_polygon_mask(lips, h, w)  # empty where the lips are NaN
    # the photo's grain (film grain, sensor noise), what synthesized colours lack: the
    # detail layer's robust spread (1.4826 x its median absolute luma; wrinkles, brows
    # and edges are sparse and do not raise it), every 4th vertex
    g = sample_bilinear(detail, p0[::4, :2]) @ jnp.asarray(LUMA, photo.dtype)
    level = 1.4826 * _weighted_median(jnp.abs(g)[:, None], vis[::4, None].astype(g.dtype))[0]
    # the same pattern for every target of this photo: made once here
    grain = level * pixel_noise(h, w, corner, photo.dtype)
    return _Canvas(fr0.depth, jnp.where(reached[:, None], filled, skin), skin, front,
                   normals, lighting, smooth, detail, mouth,
                   photo_teeth_colour(photo, mouth, skin), grain)  # fmt: skip


def _normalized_ratio(ratio, where, weight):
    """Shading ratios float[H, W] whose brightness-weighted mean change over ``where`` is zero.

    Only pixels whose surface turned (ratio != 1) change: each change d = ratio - 1
    becomes d - |d| c, with c = sum(w d) / sum(w |d|) over ``where`` (|c| <= 1), so
    that sum(w d') = 0: re-shading moves light around the face, never its overall
    brightness. The result is clipped to :data:`vafx._render._shading.RATIO_RANGE`.
    """
    d = jnp.where(where, ratio - 1.0, 0.0)
    c = jnp.sum(weight * d) / jnp.maximum(jnp.sum(weight * jnp.abs(d)), 1e-12)
    # kept within the ratio's range (a change of one sign among many of the other
    # can double: then the sum is zero only up to what the clip takes)
    return jnp.clip(1.0 + d - jnp.abs(d) * c, *RATIO_RANGE)


def _render_one(photo, p0, v1, p1, view, canvas, corner, mesh, *, plan, perspective, tol,
                interior, reuse_teeth, warp, maps=False):  # fmt: skip
    h, w = photo.shape[:2]
    f = mesh.faces
    fr1 = rasterize(p1, f, h, w, plan, perspective=perspective)
    cover = fr1.triangle >= 0
    # the same surface point on the neutral mesh: its place in the photo and its depth
    uvz0 = interpolate(p0, f, fr1)
    seen = (
        cover
        & _inside(uvz0, h, w)
        & (jnp.abs(uvz0[..., 2] - _lookup(canvas.zbuf, uvz0, h, w)) <= tol)
    )
    region = jnp.where(cover, mesh.tag[jnp.maximum(fr1.triangle, 0)], -1)
    n_photo = len(PHOTO_REGIONS)
    inner = cover & (region >= n_photo)
    # the photo shows its mouth interior only inside its inner-lip outline, and only
    # where it shows teeth: a closed mouth's outline is the dark line between the lips
    # (on grace_hopper in grey, the fitted mouth's teeth passed the depth test there
    # and took that line's pixels: dark blocks beside the synthesized front teeth)
    # and of the interior only what has not moved (the teeth are taken below, as rigid
    # pieces): where the fitted mouth leaves the socket or the tongue in view inside an
    # outline that shows teeth (the fit's lips never match the photo's exactly), their
    # points carried the photo's teeth along as the jaw dropped: a pale rim inside every
    # opened mouth on the astronaut
    pix = jnp.stack(jnp.meshgrid(jnp.arange(w), jnp.arange(h)), -1).astype(photo.dtype)
    still = jnp.sum((uvz0[..., :2] - pix) ** 2, axis=-1) < 0.25  # under half a pixel
    seen = seen & (~inner | (still & _lookup(canvas.mouth, uvz0, h, w) & canvas.teeth[1]))
    if reuse_teeth:
        # where the photo shows its mouth interior, a tooth's surface point takes the
        # photo's pixel (teeth move rigidly with the skull and the jaw); not the tongue
        # or the socket, which the photo's teeth hid: an opened jaw shows them between
        # the upper and the lower teeth
        # only where it shows teeth: a dark, toothless or barely parted opening (the lips
        # seen between closed lips) gave its lip pixels to the teeth beside the synthesized ones
        teeth = cover & (region == _TEETH_TAG) & canvas.teeth[1]
        seen = seen | (teeth & _inside(uvz0, h, w) & _lookup(canvas.mouth, uvz0, h, w))
    else:  # the photo's interior is taken as never seen (the interior benchmark)
        seen = seen & ~inner
    mouth = inner & ~seen
    disp = jnp.where(cover[..., None], uvz0[..., :2] - pix, 0.0)
    if warp:  # the motion carried into the neck, hair and background around the face
        disp = extend_motion(disp, cover, corner)
    uv = pix + disp
    sampled = sample_photo(canvas.smooth, canvas.detail, uv)
    filled = interpolate(canvas.colours, f, fr1)
    normals1 = vertex_normals(v1, f)
    n0 = _unit(interpolate(canvas.normals, f, fr1))
    ratio = shading_ratio(canvas.lighting, n0, _unit(interpolate(normals1, f, fr1)))
    # fade re-shading out toward the face's outline (no step against the warped
    # surroundings), and keep the face's overall brightness
    face = cover & seen & (region == 0)
    # and where the photo saw the surface edge-on: its few pixels there mix the surface
    # with what lies behind it, and its shading model is poorest (a lid's crease turned
    # to the light by a raised brow was brightened into orange streaks)
    facing = jnp.clip((n0 @ view - EDGE_ON) / EDGE_ON, 0.0, 1.0)
    ratio = 1.0 + (ratio - 1.0) * feather(cover) * facing
    ratio = _normalized_ratio(ratio, face, jnp.mean(sampled, -1))
    ratio = jnp.where(cover, ratio, 1.0)[..., None]
    sampled = sampled * ratio
    filled = filled * ratio

    if interior == "flat":  # the renderer before issue 37 (the benchmark's baseline)
        match = jnp.clip(jnp.mean(canvas.skin) / 0.6, 0.4, 1.4)
        match = match * (canvas.skin / jnp.maximum(jnp.mean(canvas.skin), 1e-3)) ** 0.25
        lambert = 0.6 + 0.4 * jnp.clip(normals1 @ view, 0.0, 1.0)
        if mesh.inner.shape[0]:
            front = jnp.percentile(p1[mesh.inner, 2], 2.0)
        else:
            front = jnp.zeros((), p1.dtype)
        depth_span = jnp.maximum(0.08 * jnp.ptp(p1[:, 0]), 1e-6)  # about 2 cm on a head
        deep = jnp.exp(-jnp.clip(p1[:, 2] - front, 0.0, None) / depth_span)
        mcol = mesh.mouth_base * match[None, :] * (lambert * (0.4 + 0.6 * deep))[:, None]
        mouth_img, alpha = interpolate(mcol, f, fr1), mouth.astype(photo.dtype)
    else:
        span = jnp.ptp(p1[:, 0]) / 8.0  # the head's width / 8: about 2 cm
        mcol = interior_colours(mesh.kind, normals1, p1[:, 2], mesh.inner, span,
                                view, canvas.lighting, canvas.front, canvas.teeth)  # fmt: skip
        mouth_img, alpha = soften(interpolate(mcol, f, fr1), mouth)
        tooth = interpolate(mesh.tooth[:, None], f, fr1)[..., 0]  # exact: one number a tooth
        seams = tooth_seams(jnp.where(region == _TEETH_TAG, tooth, 0.0), fr1.depth)
        shadow = lip_shadow(inner)
        mouth_img = corridor_tint(mouth_img * (shadow * seams)[..., None], shadow, canvas.front)

    moved = jnp.any(disp != 0.0, axis=-1)
    # what did not move is the photo itself (bit for bit, not smooth + detail)
    sampled = jnp.where((cover | moved)[..., None], sampled, photo)
    fill = cover & ~seen & ~mouth
    if interior != "flat":
        # synthesized colours get the photo's grain (a fixed noise pattern: same inputs,
        # same bytes), so that they do not read as smooth paint beside the photo's skin
        filled = filled + canvas.grain[..., None]
        mouth_img = mouth_img + canvas.grain[..., None]
    out = jnp.where(fill[..., None], filled, sampled)
    out = out + alpha[..., None] * (mouth_img - out)
    source = jnp.where(seen | (~cover & moved), jnp.int8(PHOTO), jnp.int8(0))
    source = jnp.where(fill, jnp.int8(FILLED), source)
    source = jnp.where(mouth, jnp.int8(MOUTH), source)
    motion = jnp.where(seen | ~cover, jnp.linalg.norm(disp, axis=-1), 0.0)
    # the blend mask (what changed) is computed by `_changed`, in its own compiled call:
    # inside this one it changed how XLA fused the rasterizer, and with it which of two
    # surfaces at nearly equal depth won some pixels, so that a batch and single calls
    # no longer rendered the same image
    r = Rendered(jnp.clip(out, 0.0, 1.0), cover, cover, source, canvas.lighting, motion)
    if not maps:
        return r
    # what a finer image needs to redo the sampling (:func:`compose_full`): where each
    # photo-sampled pixel comes from in the photo (inside the face and around it), and
    # its shading ratio
    photo_px = seen | ~cover
    return r, _Maps(uv, ratio[..., 0], photo_px, fr1.triangle)


class _Maps(NamedTuple):
    """Per pixel of a rendering: photo position sampled (float[H, W, 2]), ratio, seen, triangle.

    ``seen``: the pixel is the photo's, sampled at ``uv`` (the face's seen surface and
    everything around the face); ``triangle``: the deformed mesh's (-1 off it).
    """

    uv: jax.Array
    ratio: jax.Array
    seen: jax.Array
    triangle: jax.Array


@persistent(static_argnames=("plan", "camera", "tol", "iters", "sequential", "shade", "maps",
                             "interior", "reuse_teeth", "warp"))  # fmt: skip
def _render_batch(photos, v0, p0, p1, fits, deformations, lips, corners, mesh, *, plan, camera,
                  tol, iters, sequential, shade, interior, reuse_teeth, warp, maps=False):  # fmt: skip
    """photos [B, H, W, 3], v0 and p0 [B, V, 3], p1 and deformations [B, T, V, 3] -> [B, T] outputs.

    p0, p1: image-space vertices of the fitted and the deformed meshes
    (:func:`_image_vertices`, computed once for the plan and reused here);
    lips: float[B, 8, 2], the fits' inner-lip landmarks in the crop's pixels;
    corners: int32[B, 2], each crop's (y0, x0) relative to its face (the fit's nose tip;
    in the rendering's pixels): the origin of the grain pattern.
    """
    persp = camera == "perspective"
    b, t = deformations.shape[:2]

    def canvas(args):
        photo, v, p, fit, lp, corner = args
        return _canvas(photo, v, p, fit.rotation[2], lp, corner, mesh, plan=plan, perspective=persp,
                       tol=tol, iters=iters, shade=shade)  # fmt: skip

    def one(i):
        k, j = i // t, i % t
        fit = jax.tree.map(lambda x: x[k], fits)
        v1 = v0[k] + deformations[k, j]
        view = fit.rotation[2]  # towards the camera, in model space
        cv = jax.tree.map(lambda x: x[k], canvases)
        return _render_one(photos[k], p0[k], v1, p1[k, j], view, cv, corners[k], mesh, plan=plan,
                           perspective=persp, tol=tol, interior=interior,
                           reuse_teeth=reuse_teeth, warp=warp, maps=maps)  # fmt: skip

    if sequential:  # CPU: one image's working set stays in cache
        canvases = jax.lax.map(canvas, (photos, v0, p0, fits, lips, corners))
        out = jax.lax.map(one, jnp.arange(b * t))
    else:
        canvases = jax.vmap(lambda *a: canvas(a))(photos, v0, p0, fits, lips, corners)
        out = jax.vmap(one)(jnp.arange(b * t))
    return jax.tree.map(lambda x: x.reshape(b, t, *x.shape[1:]), out)


@persistent
def _changed(images, photos):
    """bool[B, T, H, W]: pixels whose 8-bit value differs from the photo's."""
    return jnp.any(jnp.rint(images * 255) != jnp.rint(photos[:, None] * 255), axis=-1)


def _capacities(plan: RasterPlan) -> tuple[int, ...]:
    return (*plan.levels, plan.large, plan.per_tile)


def _grown_plan(key: str, plan: RasterPlan) -> RasterPlan:
    """The plan, grown to hold every earlier one of this model and image size.

    Capacities only grow (kept across processes: :func:`vafx._compiled._programs.grown_sizes`),
    so after a few photos every face fits the same plan and the compiled
    renderer is reused instead of compiled anew for each photo whose triangle
    sizes differ a little.
    """
    k = len(plan.levels)
    sizes = grown_sizes(key, _capacities(plan))
    return RasterPlan(tuple(sizes[:k]), sizes[k], sizes[k + 1])


@persistent(static_argnames=("camera",))
def _image_vertices(model, fits, deformations, *, camera):
    """The fitted meshes v0 [B, V, 3] and their image-space vertices p0 [B, V, 3], p1 [B, T, V, 3]."""
    v0 = jax.vmap(lambda a, e: model_shape(model, a, e))(fits.identity, fits.expression)
    p0 = jax.vmap(lambda v, fi: image_vertices(v, fi, camera))(v0, fits)
    p1 = jax.vmap(lambda v, fi, d: jax.vmap(lambda dd: image_vertices(v + dd, fi, camera))(d))(
        v0, fits, deformations
    )
    return v0, p0, p1


def render_faces(
    photos,
    model: MorphableModel,
    fits: Fit,
    deformations=None,
    *,
    camera: str = "orthographic",
    depth_tolerance: float = 1.5,
    diffusion_steps: int = 32,
    shade: bool = True,
    interior: str = "shaded",
    reuse_teeth: bool = True,
    warp: bool = True,
) -> Rendered:
    """Re-render B fitted photos, each with T deformations, in one compiled call.

    Args:
        photos: uint8 or float[B, H, W, 3] (float in [0, 1]), one image size.
        model: the morphable model the fits used.
        fits: their :class:`vafx.Fit` with a leading axis B (``fit_landmarks``
            on a batch).
        deformations: float[T, n, 3] vertex offsets in model units applied to
            every photo, or float[B, T, n, 3] per photo; None renders the fits
            as they are (T = 1).
        camera: the fits' camera.
        depth_tolerance: a surface point counts as visible in the photo when
            its neutral depth is within this of the neutral z-buffer (pixels
            for the orthographic camera, model units for perspective).
        diffusion_steps: mesh edges over which the colours of visible
            vertices spread to hidden ones; farther ones take the skin's mean.
        shade: re-shade moved surface under the photo's lighting, estimated
            from the fit (:mod:`vafx._render._shading`); False keeps the photo's shading.
        interior: the mouth interior the photo never showed, one of
            :data:`INTERIORS`: "shaded" geometry under the photo's lighting
            (:mod:`vafx._render._interior`), or "flat" base colours (the
            renderer before issue 37, kept as the benchmark's baseline).
        reuse_teeth: where the photo shows its mouth interior (inside the fit's
            inner lips), interior points seen there take the photo's pixels,
            and the teeth the photo's tooth colour; False renders the whole
            interior from the skin alone, using nothing of the photo's.
        warp: carry the face's motion into the pixels around it (neck, hair,
            background; :func:`vafx._render._warp.extend_motion`); False leaves
            them as the photo's.

    Returns:
        :class:`Rendered` with leading axes [B, T] (numpy arrays).
    """
    img = np.asarray(photos)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim != 4 or img.shape[3] < 3:
        raise ValueError(f"photos: expected (B, H, W, 3), got {img.shape}")
    img = img[..., :3]
    b, h, w = img.shape[:3]
    lead = np.shape(np.asarray(fits.scale))
    if lead != (b,):
        raise ValueError(f"fits: expected a batch of {b} fits, got leading shape {lead}")
    n = model.mean.shape[0]
    if deformations is None:
        d = np.zeros((b, 1, n, 3), np.float32)
    else:
        d = np.asarray(deformations, np.float32)
        if d.ndim == 3:
            d = np.broadcast_to(d[None], (b, *d.shape))
        if d.ndim != 4 or d.shape[0] != b or d.shape[2:] != (n, 3):
            raise ValueError(
                f"deformations: expected (T, {n}, 3) or ({b}, T, {n}, 3), got {np.shape(deformations)}"
            )
    r, boxes, _ = _render_cropped(img, model, fits, d, camera=camera,
                               depth_tolerance=depth_tolerance,
                               diffusion_steps=diffusion_steps, shade=shade,
                               interior=interior, reuse_teeth=reuse_teeth,
                               warp=warp)  # fmt: skip
    t = d.shape[1]
    image = np.broadcast_to(img[:, None], (b, t, h, w, 3)).copy()
    cover = np.zeros((b, t, h, w), bool)
    changed = np.zeros((b, t, h, w), bool)
    source = np.zeros((b, t, h, w), np.int8)
    motion = np.zeros((b, t, h, w), np.float32)
    for k, (y0, x0, ch, cw) in enumerate(boxes):
        win = (k, slice(None), slice(y0, y0 + ch), slice(x0, x0 + cw))
        image[win] = r.image[k]
        cover[win] = r.coverage[k]
        changed[win] = r.blend_mask[k]
        source[win] = r.source[k]
        motion[win] = r.motion[k]
    return Rendered(image, cover, changed, source, r.lighting, motion)


#: Crop sizes are rounded up to multiples of this (pixels), so that photos of
#: different sizes whose faces are of about one size share compiled programs.
CROP_STEP = 32
#: Pixels kept around the projected mesh in a crop: sampling, the z-buffer test,
#: the blend's boundary ring and the face's motion carried into its surroundings
#: (:func:`vafx._render._warp.extend_motion`, zero from REACH = 18 pixels past the
#: face) all lie within it.
CROP_PAD = 22


def face_boxes(points, image_size, *, pad: int = CROP_PAD, step: int = CROP_STEP) -> np.ndarray:
    """One crop size for a batch, placed on each photo's face: int[B, 4] (y0, x0, h, w).

    Args:
        points: float[B, N, 2] image points (x, y) every crop must hold
            (the rendered meshes' vertices, fitted and deformed); non-finite ignored.
        image_size: (height, width) of the photos.
        pad: pixels kept around the points.
        step: the crop's height and width are multiples of it (or the photo's).

    Returns:
        int64[B, 4]; every box lies within the photo and has the same h and w.
    """
    h, w = int(image_size[0]), int(image_size[1])
    pts = np.asarray(points, np.float64)
    lo = np.zeros((len(pts), 2))
    hi = np.zeros((len(pts), 2))
    for k, p in enumerate(pts):
        p = p[np.isfinite(p).all(axis=1)]
        if len(p) == 0:
            lo[k], hi[k] = (0, 0), (w - 1, h - 1)
            continue
        lo[k] = np.clip(np.floor(p.min(axis=0)) - pad, 0, [w - 1, h - 1])
        hi[k] = np.clip(np.ceil(p.max(axis=0)) + pad, 0, [w - 1, h - 1])
    need = (hi - lo + 1).max(axis=0)  # (width, height)
    cw = min(int(-(-need[0] // step) * step), w)
    ch = min(int(-(-need[1] // step) * step), h)
    boxes = np.zeros((len(pts), 4), np.int64)
    for k in range(len(pts)):
        x0 = int(np.clip(lo[k, 0] - (cw - (hi[k, 0] - lo[k, 0] + 1)) // 2, 0, w - cw))
        y0 = int(np.clip(lo[k, 1] - (ch - (hi[k, 1] - lo[k, 1] + 1)) // 2, 0, h - ch))
        boxes[k] = (y0, x0, ch, cw)
    return boxes


class Working(NamedTuple):
    """How a crop was rendered at a coarser working resolution (see :func:`compose_full`).

    Attributes:
        factor: (fy, fx): crop pixels per working pixel along y and x (above 1).
        maps: the working rendering's :class:`_Maps`, leading axes [B, T].
        photos: float32[B, h, w, 3], the crops downscaled (what was rendered).
        p0, p1: float32[B, V, 3] and [B, T, V, 3], the fitted and deformed
            meshes' image-space vertices in the full-resolution crop.
        faces: int32[F, 3], the rendered triangles.
    """

    factor: tuple[float, float]
    maps: _Maps
    photos: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    faces: np.ndarray


def _render_cropped(img, model, fits, d, *, camera, depth_tolerance, diffusion_steps, shade,
                    max_side=None, interior="shaded", reuse_teeth=True, warp=True):  # fmt: skip
    """:func:`render_faces` on the crops around the faces: (Rendered [B, T], boxes, working).

    img uint8 or float[B, H, W, 3], d float32[B, T, n, 3]. Only the crop around
    each face (:func:`face_boxes`) is rasterized and rendered, so the work
    follows the face, not the photo; the renderer sees image-space vertices
    moved by the crop's corner, and every pixel it gives equals the full-frame
    render's up to that shift's rounding.

    With ``max_side``, a crop whose larger side exceeds it is rendered at a
    working resolution of that larger side (the photo downscaled with
    anti-aliasing, vertices scaled); ``working`` then holds what
    :func:`compose_full` needs to bring the result back to the crop's full
    resolution. Otherwise ``working`` is None and the rendering is the crop's.
    The Rendered images are float32 in [0, 1] at the rendering's resolution.
    """
    b, h, w = img.shape[:3]
    n = model.mean.shape[0]
    t = d.shape[1]
    mesh = render_mesh(model)
    d = jax.device_put(d)
    v0, p0, p1 = _image_vertices(model, fits, d, camera=camera)
    used = np.asarray(mesh.used)
    hp0, hp1 = np.asarray(p0), np.asarray(p1)
    pts = np.concatenate([hp0[:, used, :2], hp1[:, :, used, :2].reshape(b, -1, 2)], axis=1)
    boxes = face_boxes(pts, (h, w))
    ch, cw = int(boxes[0, 2]), int(boxes[0, 3])
    shift = np.zeros((b, 1, 3), np.float32)
    shift[:, 0, 0], shift[:, 0, 1] = boxes[:, 1], boxes[:, 0]
    hp0 = hp0 - shift
    hp1 = hp1 - shift[:, None]
    crops = np.stack([img[k, y0 : y0 + ch, x0 : x0 + cw] for k, (y0, x0, _, _) in enumerate(boxes)])
    crops = (
        crops.astype(np.float32) / 255.0 if crops.dtype == np.uint8 else crops.astype(np.float32)
    )
    working = None
    if max_side is not None and max(ch, cw) > max_side:
        from skimage.transform import resize

        f = max(ch, cw) / max_side
        wh, ww = max(int(round(ch / f)), 2), max(int(round(cw / f)), 2)
        fy, fx = ch / wh, cw / ww
        crops = np.stack([resize(c, (wh, ww), order=1, anti_aliasing=True) for c in crops])
        crops = crops.astype(np.float32)
        # pixel centres: x_work = (x + 0.5) / fx - 0.5; orthographic depth is in pixels too
        sc = np.array([1 / fx, 1 / fy, 1 / np.sqrt(fx * fy) if camera != "perspective" else 1.0],
                      np.float32)  # fmt: skip
        off = np.array([0.5 / fx - 0.5, 0.5 / fy - 0.5, 0.0], np.float32)
        full_p = (hp0, hp1)
        hp0, hp1 = hp0 * sc + off, hp1 * sc + off
        ch, cw = wh, ww
        working = (fy, fx)
    drawn = np.concatenate([hp0, hp1.reshape(b * t, n, 3)])
    need = raster_plan(drawn, mesh.faces, ch, cw)  # what the drawn meshes hold, counted
    plan = _grown_plan(f"raster:{model.name}:{n}:{mesh.faces.shape[0]}:{ch}x{cw}", need)
    # a plan at least the drawn meshes' own drops nothing; only a smaller capacity (a bug
    # to hear of) is counted, then refused
    if any(p < q for p, q in zip(_capacities(plan), _capacities(need))):
        dropped = plan_overflow(drawn, mesh.faces, ch, cw, plan)
        if dropped:
            raise VafxError(f"the raster plan {plan} would leave out {dropped} triangles of "
                            f"the faces drawn at {ch} x {cw}: nothing rendered")  # fmt: skip
    if interior not in INTERIORS:
        raise ValueError(f"interior: one of {INTERIORS}, got {interior!r}")
    crops = jax.device_put(crops)
    # the fits' inner lips in the rendering's pixels (the same shift and scale as the mesh)
    lips = np.asarray(fits.landmarks, np.float32)[:, INNER_LIPS] - shift[:, :, :2]
    if working is not None:
        lips = lips * sc[:2] + off[:2]
    if not reuse_teeth:  # nothing of the photo's interior is used, not even its tooth colour
        lips = np.full_like(lips, np.nan)
    # the grain pattern's origin: the fit's nose tip (iBUG 30), so that a face gets the same
    # pattern in any crop of its photo and wherever it stands in a larger canvas
    nose = np.asarray(fits.landmarks, np.float64)[:, 30, ::-1]
    corners = boxes[:, :2].astype(np.float64) - np.where(np.isfinite(nose), np.rint(nose), 0.0)
    if working is not None:
        corners = corners / np.array(working)
    corners = np.rint(corners).astype(np.int32)
    out = _render_batch(
        crops, v0, jax.device_put(hp0), jax.device_put(hp1), fits, d, jax.device_put(lips),
        jax.device_put(corners), mesh,
        plan=plan, camera=camera, tol=float(depth_tolerance), iters=int(diffusion_steps),
        sequential=jax.default_backend() == "cpu", shade=bool(shade), interior=interior,
        reuse_teeth=bool(reuse_teeth), warp=bool(warp), maps=working is not None,
    )  # fmt: skip
    if working is not None:
        out, maps = out
        working = Working(working, _Maps(*(np.asarray(x) for x in maps)), np.asarray(crops),
                          *full_p, np.asarray(mesh.faces))  # fmt: skip
    image, cover, _, source, lighting, motion = out
    changed = _changed(image, crops)
    r = Rendered(*(np.asarray(x) for x in (image, cover, changed, source, lighting, motion)))
    return r, boxes, working


def _bilinear_weights(n_out: int, n_in: int, factor: float):
    """Rows of the linear upsampling from n_in to n_out samples: (i0, i1, t) float[n_out]."""
    x = (np.arange(n_out) + 0.5) / factor - 0.5
    x = np.clip(x, 0, n_in - 1)
    i0 = np.minimum(np.floor(x).astype(np.int32), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (x - i0).astype(np.float32)


#: Rows of the full-resolution crop composed per step (bounds the memory of
#: :func:`compose_full`: about 30 floats per pixel of a block).
COMPOSE_ROWS = 128


@jax.jit
def _compose(photo, low, uv, ratio, seen, cover, correction, ys, xs, exact):
    """The full-resolution composite of one working rendering (see :func:`compose_full`).

    ``ys`` and ``exact``'s ``ny`` are padded to a multiple of COMPOSE_ROWS rows; the
    crop is composed block by block of rows and the padding dropped.
    """
    (y0, y1, ty), (x0, x1, tx) = ys, xs
    tri, ny, nx, p0, p1, faces = exact
    hh, ww = photo.shape[:2]
    fy = hh / low.shape[0]
    fx = ww / low.shape[1]
    smooth, detail = detail_layers(photo)
    s = seen.astype(photo.dtype)
    u = (cover & ~seen).astype(photo.dtype)
    # the working maps to upsample, stacked: seen, seen uv, seen ratio, unseen, unseen
    # colours, cover, correction (float[h, w, 12])
    stack = jnp.concatenate(
        [s[..., None], uv * s[..., None], (ratio * s)[..., None], u[..., None],
         low * u[..., None], cover.astype(photo.dtype)[..., None], correction], axis=-1,
    )  # fmt: skip
    p0xy, p1xy = p0[:, :2], p1[:, :2]
    rows = COMPOSE_ROWS
    gx = jnp.arange(ww, dtype=photo.dtype)

    def block(k):
        r0 = k * rows
        by0, by1, bty = (jax.lax.dynamic_slice_in_dim(a, r0, rows) for a in (y0, y1, ty))
        bny = jax.lax.dynamic_slice_in_dim(ny, r0, rows)
        m = stack[by0] * (1 - bty).reshape(-1, 1, 1) + stack[by1] * bty.reshape(-1, 1, 1)
        m = m[:, x0] * (1 - tx).reshape(1, -1, 1) + m[:, x1] * tx.reshape(1, -1, 1)
        ws, wu, wc = m[..., 0], m[..., 4], m[..., 8]
        safe = jnp.maximum(ws, 1e-6)
        uv_up = m[..., 1:3] / safe[..., None]
        uv_full = (uv_up + 0.5) * jnp.array([fx, fy], photo.dtype).reshape(1, 1, 2) - 0.5
        # where the nearest working pixel saw the photo through a triangle, the pixel's own
        # barycentric coordinates in that (deformed) triangle give its photo position
        # exactly (orthographic; to first order for perspective): sharp across the seams
        t = tri[bny][:, nx]
        near_seen = seen[bny][:, nx] & (t >= 0)
        tv = faces[jnp.maximum(t, 0)]  # [rows, W, 3]
        a = p1xy[tv]  # [rows, W, 3, 2]
        gy = (r0 + jnp.arange(rows)).astype(photo.dtype)
        q = jnp.stack(jnp.meshgrid(gx, gy), -1) - a[..., 0, :]
        e0, e1 = a[..., 1, :] - a[..., 0, :], a[..., 2, :] - a[..., 0, :]
        den = e0[..., 0] * e1[..., 1] - e0[..., 1] * e1[..., 0]
        ok = near_seen & (jnp.abs(den) > 1e-6)
        sd = jnp.where(ok, den, 1.0)
        b1 = (q[..., 0] * e1[..., 1] - q[..., 1] * e1[..., 0]) / sd
        b2 = (e0[..., 0] * q[..., 1] - e0[..., 1] * q[..., 0]) / sd
        bary = jnp.stack([1 - b1 - b2, b1, b2], -1)[..., None]  # [rows, W, 3, 1]
        uv_tri = jnp.sum(bary * p0xy[tv], axis=-2)
        uv_full = jnp.where(ok[..., None], uv_tri, uv_full)
        from_photo = sample_photo(smooth, detail, uv_full) * (m[..., 3] / safe)[..., None]
        synthetic = m[..., 5:8] / jnp.maximum(wu, 1e-6)[..., None]
        # the photo (its full detail) where the working pixels sampled it, in the face and
        # around it; the working colours where they were synthesized (fill, mouth interior)
        share = (ws / jnp.maximum(ws + wu, 1e-6))[..., None]
        del wc  # the whole crop is the rendering: the photo warped around the face
        return jnp.clip(share * from_photo + (1 - share) * synthetic + m[..., 9:12], 0.0, 1.0)

    out = jax.lax.map(block, jnp.arange(y0.shape[0] // rows))
    return out.reshape(-1, ww, 3)[:hh]


def compose_full(photo, low, maps: _Maps, cover, correction, factor, p0, p1, faces) -> np.ndarray:
    """A working-resolution rendering brought back to the crop's full resolution.

    Where the working pixels sampled the photo, the full-resolution photo is
    sampled at the same surface points (each pixel's barycentric coordinates
    in the triangle its nearest working pixel saw, so the map of photo
    positions is exact within triangles and sharp across its seams; around the
    face, the upsampled positions of the motion carried into the surroundings),
    with its detail layer at the nearest pixel (:mod:`vafx._render._warp`), so
    the face keeps the photo's full detail; synthesized
    colours (hidden skin, mouth interior) and the blend's correction (a
    membrane, smooth by construction) are upsampled bilinearly.

    Args:
        photo: float32[H, W, 3] in [0, 1], the crop at full resolution.
        low: float32[h, w, 3], the working rendering.
        maps: its :class:`_Maps` (one image).
        cover: bool[h, w], the working coverage.
        correction: float32[h, w, 3], blended minus rendered at working resolution.
        factor: (fy, fx), H / h and W / w.
        p0, p1: float32[V, 3], the fitted and deformed meshes' image-space
            vertices in the full-resolution crop.
        faces: int32[F, 3], the rendered triangles.

    Returns:
        float32[H, W, 3] in [0, 1].
    """
    hh, ww = photo.shape[:2]
    h, w = low.shape[:2]
    ys = _bilinear_weights(hh, h, factor[0])
    xs = _bilinear_weights(ww, w, factor[1])
    ny = np.clip(np.rint((np.arange(hh) + 0.5) / factor[0] - 0.5), 0, h - 1).astype(np.int32)
    nx = np.clip(np.rint((np.arange(ww) + 0.5) / factor[1] - 0.5), 0, w - 1).astype(np.int32)
    pad = -hh % COMPOSE_ROWS  # whole blocks of rows; the padding repeats the last row
    ys, ny = tuple(np.pad(a, (0, pad), mode="edge") for a in ys), np.pad(ny, (0, pad), mode="edge")
    exact = (maps.triangle, ny, nx, p0, p1, faces)
    return np.asarray(
        _compose(photo, low, maps.uv, maps.ratio, maps.seen, cover, correction, ys, xs, exact)
    )


def render_face(
    photo,
    model: MorphableModel,
    fit: Fit,
    deformation=None,
    *,
    camera: str = "orthographic",
    depth_tolerance: float = 1.5,
    diffusion_steps: int = 32,
    shade: bool = True,
    interior: str = "shaded",
    reuse_teeth: bool = True,
    warp: bool = True,
) -> Rendered:
    """Re-render one fitted face with an added deformation into its photo.

    Args:
        photo: uint8 or float[H, W, 3] (float in [0, 1]).
        model: the morphable model the fit used.
        fit: its :class:`vafx.Fit` (one image).
        deformation: float[n, 3] vertex offsets in model units (e.g. a bin's
            mean expression mapped onto the model); None renders the fit as is.
        camera, depth_tolerance, diffusion_steps, shade, interior, reuse_teeth,
            warp: as :func:`render_faces`.

    Returns:
        :class:`Rendered`.
    """
    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"photo: expected (H, W, 3), got {img.shape}")
    fits = jax.tree.map(lambda x: np.asarray(x)[None], fit)
    d = None if deformation is None else np.asarray(deformation, np.float32)[None]
    r = render_faces(img[None], model, fits, d, camera=camera, depth_tolerance=depth_tolerance,
                     diffusion_steps=diffusion_steps, shade=shade, interior=interior,
                     reuse_teeth=reuse_teeth, warp=warp)  # fmt: skip
    return Rendered(*(x[0, 0] for x in r))
