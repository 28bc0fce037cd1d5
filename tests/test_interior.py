"""The mouth interior: the photo's own teeth, and shaded geometry matched to the photo."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vafx._render._interior import (
    GUMS,
    LIP_SHADOW_FLOOR,
    LUMA,
    NONE,
    REF_SKIN,
    SOCKET,
    TEETH,
    TOOTH_SEAM,
    corridor_tint,
    interior_colours,
    lip_shadow,
    mouth_polygon_mask,
    photo_teeth_colour,
    soften,
    tooth_seams,
)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(3, 9))
def test_polygon_mask_equals_matplotlib(seed, k):
    """Against matplotlib's Path.contains_points at the pixel centres (an independent test)."""
    from matplotlib.path import Path

    rng = np.random.default_rng(seed)
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(3, 12, k)
    pts = np.stack([16 + r * np.cos(ang), 14 + r * np.sin(ang)], -1)  # star-shaped, non-integer
    ours = np.asarray(mouth_polygon_mask(jnp.asarray(pts, jnp.float32), 28, 32))
    y, x = np.mgrid[0:28, 0:32]
    ref = Path(pts).contains_points(np.stack([x.ravel(), y.ravel()], -1)).reshape(28, 32)
    # a pixel centre within float32 rounding of an edge may go either way
    assert (ours != ref).sum() <= 1


def test_polygon_mask_of_nan_points_is_empty():
    pts = jnp.full((8, 2), jnp.nan, jnp.float32)
    assert not np.asarray(mouth_polygon_mask(pts, 10, 10)).any()


def _mouth_photo(teeth_level):
    """A 40 x 60 'photo': skin 0.6, a mouth opening with dark cavity and a band of teeth."""
    img = np.full((40, 60, 3), 0.6, np.float32)
    mask = np.zeros((40, 60), bool)
    mask[15:25, 15:45] = True
    img[mask] = 0.1  # cavity
    img[15:19, 18:42] = teeth_level  # upper teeth
    return jnp.asarray(img), jnp.asarray(mask)


def test_photo_teeth_are_found_and_their_colour_read():
    img, mask = _mouth_photo(0.92)
    colour, found = photo_teeth_colour(img, mask, jnp.full(3, 0.6, jnp.float32))
    assert bool(found)
    np.testing.assert_allclose(np.asarray(colour), 0.92, atol=1e-5)


def test_lips_between_closed_lips_are_not_teeth():
    # the bright part of the opening is no brighter than the skin: lips, not teeth
    img, mask = _mouth_photo(0.55)
    _, found = photo_teeth_colour(img, mask, jnp.full(3, 0.6, jnp.float32))
    assert not bool(found)
    _, found = photo_teeth_colour(img, jnp.zeros_like(mask), jnp.full(3, 0.6, jnp.float32))
    assert not bool(found)


def _interior(skin, teeth=(jnp.zeros(3), jnp.asarray(False))):
    kind = jnp.asarray([TEETH, TEETH, GUMS, SOCKET, SOCKET, NONE], jnp.int32)
    view = jnp.asarray([0.0, 0.0, 1.0])
    # the second tooth faces away: its winding is flipped (the ICT teeth's is not consistent)
    normals = jnp.asarray([[0, 0, 1], [0, 0, -1], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]],
                          jnp.float32)  # fmt: skip
    depth = jnp.asarray([0.0, 0.0, 1.0, 0.5, 20.0, 0.0])
    lighting = jnp.zeros((3, 9), jnp.float32).at[:, 0].set(1.0)
    return np.asarray(interior_colours(kind, normals, depth, jnp.arange(5), jnp.asarray(4.0), view,
                                       lighting, jnp.asarray(skin, jnp.float32), teeth))  # fmt: skip


def test_greyscale_photo_gets_a_grey_interior():
    out = _interior([0.5, 0.5, 0.5])
    np.testing.assert_allclose(out[:, 0], out[:, 1], atol=1e-6)
    np.testing.assert_allclose(out[:, 1], out[:, 2], atol=1e-6)
    # and a colour photo a coloured one: pink gums
    col = _interior([0.78, 0.58, 0.48])
    assert col[2, 0] > 1.3 * col[2, 1]


def test_interior_follows_the_photo_and_darkens_into_the_cavity():
    out = _interior([0.78, 0.58, 0.48])
    luma = out @ np.array([0.299, 0.587, 0.114])
    skin = 0.78 * 0.299 + 0.58 * 0.587 + 0.48 * 0.114
    assert luma[0] > 1.3 * skin  # front teeth brighter than the skin
    assert abs(luma[1] - luma[0]) < 1e-6  # a flipped normal shades as the camera sees it
    assert luma[4] < 0.3 * luma[3] < luma[2]  # the deep socket dark, its front lining not
    assert (out[5] == 0).all()  # not interior
    dim = _interior([0.39, 0.29, 0.24]) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(dim[:5], 0.5 * luma[:5], rtol=1e-5)  # half the light: half as bright
    # the photo's own tooth colour replaces the synthetic one
    own = _interior([0.78, 0.58, 0.48], (jnp.asarray([0.9, 0.8, 0.7]), jnp.asarray(True)))
    assert own[0, 0] / own[0, 2] > 1.2 > out[0, 0] / out[0, 2]


def test_recessed_teeth_take_the_linings_hue_and_shade():
    """A tooth 3 cm behind the front one (a side tooth, seen in the buccal corridor) is
    darker and redder than the front tooth, by DEEP_TINT of its occlusion toward the
    socket's hue; on a greyscale photo it stays grey."""
    from vafx._render._interior import ALBEDO, DEEP_TINT, _match

    kind = jnp.asarray([TEETH, TEETH], jnp.int32)
    normals = jnp.asarray([[0, 0, 1], [0, 0, 1]], jnp.float32)
    view, lighting = jnp.asarray([0.0, 0.0, 1.0]), jnp.zeros((3, 9)).at[:, 0].set(1.0)

    def colours(skin):
        return np.asarray(interior_colours(kind, normals, jnp.asarray([0.0, 3.0]), jnp.arange(2),
                                           jnp.asarray(2.0), view, lighting,
                                           jnp.asarray(skin, jnp.float32),
                                           (jnp.zeros(3), jnp.asarray(False))))  # fmt: skip

    skin = np.array([0.78, 0.58, 0.48], np.float32)
    front, side = colours(skin)
    luma = np.array([0.299, 0.587, 0.114])
    # in shadow: occlusion 0.3 + 0.7 e^(-1.5) and the highlight's e^(-1.5) against 1 + 0.12
    # (0.57 with the teeth's old floor of 0.5, which left side teeth pale beside the cavity)
    deep = np.exp(-1.5)
    np.testing.assert_allclose(side @ luma / (front @ luma), (0.3 + 0.82 * deep) / 1.12, rtol=1e-4)
    hue = np.asarray(_match(jnp.asarray(ALBEDO[3], jnp.float32), jnp.asarray(skin)))
    chroma = lambda c: c / (c @ luma)  # noqa: E731
    t = DEEP_TINT * (1 - np.exp(-3.0 / 2.0))
    np.testing.assert_allclose(chroma(side), (1 - t) * chroma(front) + t * chroma(hue), rtol=1e-4)
    assert side[0] / side[2] > 1.3 * front[0] / front[2]  # redder
    grey = colours([0.5, 0.5, 0.5])
    np.testing.assert_allclose(grey[:, 0], grey[:, 2], atol=1e-6)


def test_soften_mixes_the_edge_and_keeps_the_inside():
    c = np.zeros((9, 9, 3), np.float32)
    m = np.zeros((9, 9), bool)
    m[3:6, 2:7] = True
    c[m] = 0.8
    col, alpha = (np.asarray(x) for x in soften(jnp.asarray(c), jnp.asarray(m)))
    np.testing.assert_allclose(col[m], 0.8, atol=1e-6)  # one colour stays that colour
    assert alpha[4, 4] == 1 and alpha[0, 0] == 0 and 0 < alpha[2, 4] < 0.5 < alpha[3, 4] < 1


def test_lip_shadow_darkens_the_corners_not_the_middle():
    """A lens-shaped opening: full light well inside, about two thirds along a lip, the floor
    in the narrow corners."""
    yy, xx = np.mgrid[:40, :80].astype(np.float32)
    half = 12.0 * np.clip(1 - ((xx - 40) / 36) ** 2, 0, None)  # half-height of the opening
    opening = np.abs(yy - 20) < half
    light = np.asarray(lip_shadow(jnp.asarray(opening)))
    assert light.min() >= LIP_SHADOW_FLOOR - 1e-6 and light.max() <= 1 + 1e-6
    assert light[20, 40] > 0.99  # the middle
    assert 0.55 < light[20 - 11, 40] < 0.8  # a pixel along the upper lip
    corner = opening & (np.abs(xx - 40) > 34)  # the last two columns each way: a pixel tall
    assert corner.any() and light[corner].max() < 0.5
    # the opening's mean light per column falls from the middle toward the corner
    cols = [light[:, x][opening[:, x]].mean() for x in range(40, 80) if opening[:, x].any()]
    assert np.mean(cols[-3:]) < np.mean(cols[:10]) - 0.3 and cols[-1] < cols[0] - 0.4


def test_tooth_seams_shade_the_farther_tooth_where_two_meet():
    """Two teeth side by side, the right one nearer: the seam lies on the left tooth's
    edge column (blurred half a pixel each way), not on the nearer tooth's, and a tooth's
    edge against no tooth (the cavity, the lips) is no seam."""
    h, w = 9, 12
    tooth = np.zeros((h, w), np.float32)
    tooth[:, 2:6], tooth[:, 6:10] = 3.0, 4.0
    depth = np.where(tooth == 4.0, 0.5, 1.0).astype(np.float32)
    s = np.asarray(tooth_seams(jnp.asarray(tooth), jnp.asarray(depth)))
    row = s[4]
    np.testing.assert_allclose(row[5], 1 - TOOTH_SEAM * 0.5, rtol=1e-6)  # the farther edge
    np.testing.assert_allclose(row[[4, 6]], 1 - TOOTH_SEAM * 0.25, rtol=1e-6)  # its blur
    np.testing.assert_array_equal(row[[0, 1, 2, 3, 7, 8, 9, 10, 11]], 1.0)
    # equal depths: a seam on both edge columns (each tooth is the other's neighbour)
    both = np.asarray(tooth_seams(jnp.asarray(tooth), jnp.ones((h, w), jnp.float32)))[4]
    np.testing.assert_allclose(both[[5, 6]], 1 - TOOTH_SEAM * 0.75, rtol=1e-6)
    # upper and lower rows meet along a horizontal seam, on the lower (farther) row
    rows = np.zeros((h, w), np.float32)
    rows[:4, 2:10], rows[4:, 2:10] = 1.0, 17.0
    d = np.where(rows == 17.0, 1.0, 0.5).astype(np.float32)
    col = np.asarray(tooth_seams(jnp.asarray(rows), jnp.asarray(d)))[:, 5]
    np.testing.assert_allclose(col[4], 1 - TOOTH_SEAM * 0.5, rtol=1e-6)
    assert col[0] == 1.0 and col[8] == 1.0


def test_the_ict_model_has_its_32_teeth(ict_model):
    """RenderMesh.tooth numbers the teeth region's pieces: 32 teeth, 16 above, 16 below."""
    from vafx._render._face import render_mesh

    mesh = render_mesh(ict_model)
    tooth = np.asarray(mesh.tooth).astype(int)
    assert tooth.max() == 32 and set(np.unique(tooth)) == set(range(33))
    assert (tooth > 0).sum() == (np.asarray(mesh.kind) == TEETH).sum()
    # each tooth lies on one side of the lips' gap: its vertices are all above or all below
    y = np.asarray(ict_model.mean)[:, 1]
    centres = np.array([y[tooth == k].mean() for k in range(1, 33)])
    gap = (centres.max() + centres.min()) / 2
    assert (centres > gap).sum() == 16


def test_corridor_tint_warms_the_lips_shadow_at_the_same_luma():
    """In the deepest shadow a grey tooth takes the socket's warm hue at its own luma; where
    there is no shadow, or on a greyscale photo, nothing changes."""
    grey = jnp.full((2, 3, 3), 0.5, jnp.float32)
    shadow = jnp.asarray([[LIP_SHADOW_FLOOR] * 3, [1.0] * 3], jnp.float32)
    out = np.asarray(corridor_tint(grey, shadow, jnp.asarray(REF_SKIN, jnp.float32)))
    np.testing.assert_allclose(out @ np.asarray(LUMA), 0.5, rtol=1e-5)  # luma kept
    assert out[0, 0, 0] > 1.5 * out[0, 0, 2]  # warm in the shadow
    np.testing.assert_allclose(out[1], 0.5, rtol=1e-6)  # untouched out of it
    skin_grey = jnp.full(3, 0.6, jnp.float32)
    np.testing.assert_allclose(np.asarray(corridor_tint(grey, shadow, skin_grey)), 0.5, rtol=1e-5)
