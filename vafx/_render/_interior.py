"""The mouth interior: the photo's own teeth where it shows them, shaded geometry where it does not.

A closed-mouth photo never shows teeth, gums or tongue; an open smile shows
some of them. Re-rendering an opened mouth needs both:

- **The photo's own interior** (:func:`mouth_polygon_mask`, :func:`photo_teeth_colour`):
  the fit's inner-lip landmarks (iBUG 60-67) outline what the photo shows of
  its mouth interior. A rendered interior point whose place on the fitted
  mesh falls inside that outline takes the photo's pixel there; the teeth
  mesh is rigid (the upper teeth move with the skull, the lower with the
  jaw), so the photo's teeth move with them. The brightest part of that
  region gives the photo's own tooth colour, lighting and white balance
  included.
- **Shaded geometry** (:func:`interior_colours`) for what the photo never
  showed: the ICT model's teeth, gums and tongue, and mouth socket, each
  with a base colour whose brightness and saturation follow the photo's
  skin (a greyscale photo gets a greyscale interior; a dim photo dim
  teeth), or the photo's own tooth colour where it shows teeth; shaded with
  the photo's estimated lighting on the deformed mesh's per-vertex normals
  (each tooth's rounded front catches the light), darkened by occlusion
  the deeper a point lies behind the front teeth (the cavity and the
  corners of the mouth fall into shadow), with a soft specular highlight on
  the teeth. :func:`soften` then anti-aliases the interior's edges against
  the lips and softens the hard seams between tooth blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._shading import sh_basis
from ._warp import _blur_axis, gaussian_blur

__all__ = [
    "corridor_tint",
    "interior_colours",
    "lip_shadow",
    "mouth_polygon_mask",
    "photo_teeth_colour",
    "soften",
    "tooth_seams",
]

#: Rec. 601 luma weights.
LUMA = (0.299, 0.587, 0.114)
#: The skin colour the mouth interior's base colours are set against (sRGB in
#: [0, 1], a light skin under white light): a photo whose skin is darker or
#: less saturated gets a darker or less saturated interior.
REF_SKIN = (0.78, 0.58, 0.48)
#: Kinds of interior vertex (:class:`vafx._render._face.RenderMesh` ``kind``).
NONE, TEETH, GUMS, SOCKET = 0, 1, 2, 3
#: Colour of each kind (sRGB in [0, 1]) in a photo whose skin is :data:`REF_SKIN`:
#: teeth about 1.7 times the skin's luma (before shading; the astronaut's front teeth
#: are 1.6 times her skin's mean), gums and tongue pink, the socket dark red.
ALBEDO = ((0.0, 0.0, 0.0), (1.12, 1.06, 0.94), (0.80, 0.42, 0.45), (0.35, 0.12, 0.13))
#: The lips' shadow (:func:`lip_shadow`): the opening's coverage blurred with this
#: sigma (pixels) ...
LIP_SHADOW_SIGMA = 2.0
#: ... and the darkest it makes the interior (where a fifth or less of the
#: neighbourhood is opening: the mouth's corners).
LIP_SHADOW_FLOOR = 0.35
#: How far the lips' deepest shadow moves the interior's hue toward the corridor's
#: (:func:`corridor_tint`).
CORRIDOR_MIX = 1.0
#: How far a tooth's colour moves toward the socket's hue where its occlusion is full
#: (:func:`interior_colours`: inter-reflection from the mouth's lining).
DEEP_TINT = 0.6
#: How much the seam between two teeth darkens them (:func:`tooth_seams`).
TOOTH_SEAM = 0.3
#: Fewest pixels of the photo's mouth outline that count as showing teeth.
MIN_TEETH_PIXELS = 12


def mouth_polygon_mask(points: jax.Array, h: int, w: int) -> jax.Array:
    """bool[H, W]: pixel centres inside the polygon ``points`` float[K, 2] (x, y), even-odd rule.

    Non-finite points give an empty mask.
    """
    x = jnp.arange(w, dtype=points.dtype)[None, :]
    y = jnp.arange(h, dtype=points.dtype)[:, None]
    a, b = points, jnp.roll(points, -1, axis=0)
    inside = jnp.zeros((h, w), bool)
    for k in range(points.shape[0]):
        (ax, ay), (bx, by) = a[k], b[k]
        crosses = (ay > y) != (by > y)
        t = (y - ay) / jnp.where(by == ay, 1.0, by - ay)
        inside = inside ^ (crosses & (x < ax + t * (bx - ax)))
    return inside & jnp.all(jnp.isfinite(points))


def photo_teeth_colour(
    photo: jax.Array, mask: jax.Array, skin: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The photo's tooth colour: (float[3], bool) the mean of the mask's bright part, and whether found.

    Bright part: luma above the mask's mean plus half its standard deviation
    (teeth against the dark cavity and lips). Not found when fewer than
    :data:`MIN_TEETH_PIXELS` pixels qualify, when they are not brighter than
    the mask's mean by 10% (a dark, toothless opening), or when they are darker
    than 1.05 times the skin ``skin`` float[3] (lips seen between closed lips;
    on a greyscale photo no hue tells them from teeth, brightness does).
    """
    lum = photo @ jnp.asarray(LUMA, photo.dtype)
    m = mask.astype(photo.dtype)
    n = jnp.maximum(jnp.sum(m), 1.0)
    mean = jnp.sum(lum * m) / n
    std = jnp.sqrt(jnp.maximum(jnp.sum(m * (lum - mean) ** 2) / n, 0.0))
    bright = mask & (lum > mean + 0.5 * std)
    nb = jnp.sum(bright)
    colour = jnp.sum(jnp.where(bright[..., None], photo, 0.0), (0, 1)) / jnp.maximum(nb, 1).astype(
        photo.dtype
    )
    c_l = colour @ jnp.asarray(LUMA, photo.dtype)
    found = (
        (nb >= MIN_TEETH_PIXELS) & (c_l > 1.1 * mean) & (c_l >= 1.05 * (skin @ jnp.asarray(LUMA)))
    )
    return colour, found


def _match(base: jax.Array, skin: jax.Array) -> jax.Array:
    """Colours float[..., 3] of a photo whose skin is REF_SKIN, as the photo would show them.

    The photo's light level is taken as its skin's luma over REF_SKIN's, and
    the colours' chroma is scaled by the skin's saturation against REF_SKIN's,
    so that a greyscale photo (no saturation) gets grey colours and a pale
    photo paler ones. No colour cast is read from the skin: skin colour varies
    between people far more than white balance does between photos (tried: a
    von Kries cast from the skin turned the astronaut's teeth green-grey).
    """
    luma = jnp.asarray(LUMA, base.dtype)
    ref = jnp.asarray(REF_SKIN, base.dtype)
    ref_l, skin_l = ref @ luma, skin @ luma
    # relative chroma (a dimmer photo of the same skin is as saturated); 0 on a greyscale photo
    sat = jnp.clip(
        jnp.linalg.norm(skin / jnp.maximum(skin_l, 1e-6) - 1.0)
        / jnp.linalg.norm(ref / ref_l - 1.0),
        0.0,
        1.0,
    )
    level = jnp.clip(skin_l / ref_l, 0.35, 1.6)
    bl = (base @ luma)[..., None]
    return level * (bl + sat * (base - bl))


def interior_colours(
    kind: jax.Array,
    normals: jax.Array,
    depth: jax.Array,
    inner: jax.Array,
    span: jax.Array,
    view: jax.Array,
    lighting: jax.Array,
    skin: jax.Array,
    teeth: tuple[jax.Array, jax.Array],
) -> jax.Array:
    """Shaded colours of the mouth interior's vertices: float[V, 3] (0 off the interior).

    Args:
        kind: int32[V], :data:`TEETH`, :data:`GUMS`, :data:`SOCKET` or :data:`NONE`.
        normals: float[V, 3] unit normals of the deformed mesh (model space).
        depth: float[V] the deformed mesh's image-space depth (smaller is nearer).
        inner: int32[M] the interior's vertices (M may be 0).
        span: float, the depth (same units as ``depth``) over which occlusion
            darkens the interior by a factor e.
        view: float[3] towards the camera, model space.
        lighting: float[3, 9] the photo's SH lighting (model-space normals).
        skin: float[3] the photo's mean skin colour.
        teeth: (float[3], bool) the photo's tooth colour and whether it has one.
    """
    albedo = _match(jnp.asarray(ALBEDO, normals.dtype), skin)  # [4, 3]
    col = albedo[kind]
    photo_teeth, have = teeth
    is_teeth = (kind == TEETH)[:, None]
    col = jnp.where(is_teeth & have, photo_teeth[None, :], col)
    # the interior's meshes are thin shells whose winding is not consistent (the ICT
    # teeth: the nearest fifth of their vertices average n . view = 0.08): every
    # normal is taken on the side that faces the camera
    normals = normals * jnp.where(normals @ view < 0, -1.0, 1.0)[:, None]
    # diffuse shading relative to a surface facing the camera: the photo's tooth colour
    # was seen facing it, and a synthetic base colour is meant as such
    grey = jnp.mean(lighting, axis=0)
    s_front = jnp.maximum(sh_basis(view) @ grey, 1e-3)
    rel = jnp.clip((sh_basis(normals) @ grey) / s_front, 0.3, 1.2)
    # and a facing term, so that each tooth's rounded front reads and the seams between
    # teeth fall off gently (not the full cosine, which stripes them)
    facing = jnp.clip(normals @ view, 0.0, 1.0)
    diffuse = (0.8 + 0.2 * rel) * jnp.where(kind == TEETH, 0.8 + 0.2 * facing, 0.85 + 0.15 * facing)
    # occlusion: darker the deeper behind the interior's front, on a scale of
    # `span` (the head's width / 8, about 2 cm)
    # the front: the nearest tooth (a minimum, not a percentile: XLA's CPU sort of the
    # 9,000 interior depths cost 3 ms an image; not the socket, whose rim lies at the lips)
    if inner.shape[0]:
        front = jnp.min(jnp.where(kind[inner] == TEETH, depth[inner], jnp.inf))
        front = jnp.where(jnp.isfinite(front), front, jnp.min(depth[inner]))
    else:
        front = jnp.zeros((), depth.dtype)
    deep = jnp.exp(-jnp.clip(depth - front, 0.0, None) / jnp.maximum(span, 1e-6))
    # the socket's lining near the front (seen between teeth and lips) is gum-coloured;
    # only deep in the cavity is it dark
    lining = deep[:, None] * albedo[None, GUMS] + (1 - deep[:, None]) * albedo[None, SOCKET]
    col = jnp.where((kind == SOCKET)[:, None], lining, col)
    # the gums between and above the teeth lie recessed behind them: shadowed like the
    # socket's lining (lit, they read as red drips between pale teeth)
    occlusion = jnp.where(kind == TEETH, 0.3 + 0.7 * deep, 0.25 + 0.5 * deep)
    # a soft highlight on the teeth: Blinn-Phong toward the light's main direction
    d = grey[1:4]
    light = d / jnp.maximum(jnp.linalg.norm(d), 1e-6)
    half = light + view
    half = half / jnp.maximum(jnp.linalg.norm(half), 1e-6)
    spec = 0.12 * jnp.clip(normals @ half, 0.0, 1.0) ** 24 * deep
    teeth_l = jnp.max(jnp.where(is_teeth, col, 0.0), axis=0, keepdims=True)
    out = col * (diffuse * occlusion)[:, None] + jnp.where(is_teeth, spec[:, None] * teeth_l, 0.0)
    # light reaches the recessed teeth (the side teeth, the lower row behind a dropped lip)
    # mostly after bouncing off the mouth's red lining: the deeper a tooth lies behind the
    # front, the more it takes the socket's hue, at its own luma (grey on a grey photo)
    tinted = _hue_at_luma(albedo[SOCKET], out)
    out = jnp.where(is_teeth, out + (DEEP_TINT * (1.0 - deep))[:, None] * (tinted - out), out)
    return jnp.where((kind != NONE)[:, None], out, 0.0)


def _hue_at_luma(hue: jax.Array, colour: jax.Array) -> jax.Array:
    """float[..., 3]: the colour ``hue`` float[3] at the luma of each ``colour`` float[..., 3]."""
    luma = jnp.asarray(LUMA, colour.dtype)
    scale = (colour @ luma) / jnp.maximum(hue @ luma, 1e-3)
    return scale[..., None] * jnp.broadcast_to(hue, colour.shape)


def corridor_tint(colour: jax.Array, shadow: jax.Array, skin: jax.Array) -> jax.Array:
    """The interior's colours float[H, W, 3] with the hue of the lips' shadow.

    The cavity behind the side teeth (the buccal corridor) is dark and, under
    white light, reddish brown: the cheeks' lining in shadow. Darkened teeth
    alone keep their hue, a bluish-grey band beside warm lips. Where the lips'
    shadow ``shadow`` float[H, W] (:func:`lip_shadow`) falls, the colour moves
    toward the socket's (:data:`ALBEDO`, matched to the photo's ``skin``
    float[3]) at the pixel's own luma: by :data:`CORRIDOR_MIX` from a shadow
    halfway to :data:`LIP_SHADOW_FLOOR` down, proportionally above. A greyscale
    photo's socket is grey: nothing changes there.
    """
    tinted = _hue_at_luma(_match(jnp.asarray(ALBEDO[SOCKET], colour.dtype), skin), colour)
    toward = CORRIDOR_MIX * jnp.clip(2.0 * (1.0 - shadow) / (1.0 - LIP_SHADOW_FLOOR), 0.0, 1.0)
    return colour + toward[..., None] * (tinted - colour)


def lip_shadow(opening: jax.Array) -> jax.Array:
    """float[H, W] in [LIP_SHADOW_FLOOR, 1]: how much light the lips leave the mouth interior.

    ``opening`` bool[H, W] is the mouth's opening (every interior pixel
    rendered). Its coverage blurred with :data:`LIP_SHADOW_SIGMA` is 1 well
    inside a wide opening, about 1/2 along a straight lip and less in the
    narrow corners; the factor rises from :data:`LIP_SHADOW_FLOOR` at a
    coverage of 0.2 to 1 at 0.8. The lips and cheeks shade what lies just
    behind them (the side teeth in the corners most: the buccal corridor),
    which depth alone does not give: the ICT side teeth lie only 1-2 cm
    behind the front ones. On the astronaut, the real interior's luma falls from
    about 225 in the middle to 120 in a corner.
    """
    cover = gaussian_blur(opening.astype(jnp.float32), LIP_SHADOW_SIGMA)
    light = jnp.clip((cover - 0.2) / 0.6, 0.0, 1.0)
    return LIP_SHADOW_FLOOR + (1.0 - LIP_SHADOW_FLOOR) * light


def soften(colour: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Anti-aliasing of a layer: (float[H, W, C] colour, float[H, W] coverage).

    The layer's colours averaged over its own pixels with a [1, 2, 1] / 4
    kernel each way (its hard seams softened), and its coverage with the same
    kernel (its edge pixels mixed with what lies under them).
    """
    taps = jnp.asarray([0.25, 0.5, 0.25], colour.dtype)
    m = mask.astype(colour.dtype)
    alpha = _blur_axis(_blur_axis(m, taps, 0), taps, 1)
    acc = _blur_axis(_blur_axis(colour * m[..., None], taps, 0), taps, 1)
    return acc / jnp.maximum(alpha, 1e-6)[..., None], alpha


def tooth_seams(tooth: jax.Array, depth: jax.Array) -> jax.Array:
    """float[H, W] in [1 - TOOTH_SEAM, 1]: the darkening where one tooth meets another.

    ``tooth`` float[H, W] is the number of the tooth each pixel shows (see
    :class:`vafx._render._face.RenderMesh` ``tooth``; 0 off the teeth) and
    ``depth`` float[H, W] its depth (smaller is nearer). A pixel whose
    4-neighbour shows another tooth in front of it lies in a seam: between
    neighbouring teeth (the embrasure, where the light falls off into the gap
    behind the nearer tooth) and between the upper and the lower row. The seams
    are blurred with a [1, 2, 1] / 4 kernel each way, so that they read as soft
    grooves, not drawn lines. Without them a row of synthesized teeth, whose
    fronts face the camera alike, reads as one white slab.
    """
    t = jnp.round(tooth)
    tp, dp = jnp.pad(t, 1), jnp.pad(depth, 1)
    h, w = t.shape
    edge = jnp.zeros(t.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        n, nd = tp[dy : dy + h, dx : dx + w], dp[dy : dy + h, dx : dx + w]
        edge = edge | ((n > 0) & (n != t) & (nd <= depth))
    edge = edge & (t > 0)
    taps = jnp.asarray([0.25, 0.5, 0.25], tooth.dtype)
    soft = _blur_axis(_blur_axis(edge.astype(tooth.dtype), taps, 0), taps, 1)
    return 1.0 - TOOTH_SEAM * soft
