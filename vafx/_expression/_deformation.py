"""A target's deformation: the bin's expression for a V-A pair, carried onto the whole model.

The bin models live on the gallery's template (e.g. the ICT face region); the
face is fitted with the full morphable model. Their topologies must agree: the
template's vertex ids index the model, and its digest must match the model's
region (a mismatch is an error). Mouth-interior vertices (teeth, gums, mouth
socket), which the face region leaves out, move as the model's own expression
shapes move them (:func:`full_deformation`), so the teeth move with the jaw and
only with it.
"""

from __future__ import annotations

import numpy as np

from .._errors import VafxError
from .._model._morphable import MorphableModel
from .._va_space import validate_va
from ._bins import BinModels, bin_expression

__all__ = ["expression_for", "eye_turn", "full_deformation"]

MOUTH_REGIONS = ("mouth_socket", "gums_tongue", "teeth")


def _check_topology(model: MorphableModel, models: BinModels) -> np.ndarray:
    ids = models.vertex_ids
    if ids is None:
        if models.meta["vertices"] != model.mean.shape[0]:
            raise VafxError(
                f"bin models have {models.meta['vertices']} vertices and no model vertex ids; "
                f"the face model {model.name!r} has {model.mean.shape[0]}: topology mismatch"
            )
        return np.arange(model.mean.shape[0])
    if ids.max() >= model.mean.shape[0] or models.meta.get("model") not in ("", model.name):
        raise VafxError(
            f"bin models were fitted on a {models.meta.get('model')!r} template "
            f"({models.meta['vertices']} vertices) that does not belong to face model "
            f"{model.name!r}: topology mismatch"
        )
    from .._model._template import template_from_model

    region = models.meta.get("region") or None
    t = template_from_model(model, region)
    if t.digest() != models.meta["template_digest"]:
        raise VafxError(
            f"bin models' template (digest {models.meta['template_digest'][:12]}) differs from "
            f"model {model.name!r} region {region!r} ({t.digest()[:12]}): topology mismatch"
        )
    return ids


#: id(model) -> (model, template ids, mouth ids, :func:`_interior_solve`'s factors), per
#: model object as the renderer's meshes
_INTERIOR: dict = {}


def _interior_solve(
    model: MorphableModel, ids: np.ndarray, mouth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The mouth interior's offsets from the template's, through the expression shapes.

    A template deformation d is written as the blend of the model's expression
    shapes nearest to it on the template (least squares, w = pinv(E_t) d), and
    the interior moves as that blend moves it: E_mouth pinv(E_t) d, kept as two
    factors (float32[3 m, K] and float32[K, 3 n_t]) so that it costs 2 K (m + n_t)
    operations a deformation.
    """
    hit = _INTERIOR.get(id(model))
    if (
        hit is not None
        and hit[0] is model
        and np.array_equal(hit[1], ids)
        and np.array_equal(hit[2], mouth)
    ):
        return hit[3]
    basis = np.asarray(model.expression_basis)  # [K, n, 3]
    region = basis[:, ids].reshape(len(basis), -1).astype(np.float64)  # [K, 3 n_t]
    inner = basis[:, mouth].reshape(len(basis), -1)  # [K, 3 m]
    # pinv(E_t) through the shapes' Gram matrix (K x K: 3 ms where an SVD of E_t took 60),
    # restricted to the shapes the template tells apart
    lam, vec = np.linalg.eigh(region @ region.T)
    keep = lam > lam.max(initial=0.0) * 1e-12
    solve = (vec[:, keep] / lam[keep]) @ (vec[:, keep].T @ region)  # [K, 3 n_t]
    factors = (
        np.ascontiguousarray(inner.T, np.float32),  # E_mouth
        solve.astype(np.float32),  # pinv(E_t)
    )
    if len(_INTERIOR) > 4:
        _INTERIOR.clear()
    _INTERIOR[id(model)] = (model, ids.copy(), mouth.copy(), factors)
    return factors


#: Degrees the eyeballs turn down at weight 1 of ARKit's eyeLookDown (up: eyeLookUp).
#: The ICT model's gaze shapes move only the lids that go with a gaze; its eyeballs are
#: rigid pieces, which vafx turns itself. 25 degrees: a gaze well down, not the eye's
#: limit (about 50), as the shape's lid (7.7 mm lower) covers half the iris.
GAZE_PITCH_DEG = 25.0

#: (eyeball region, side suffix of its gaze shapes)
EYEBALLS = (("eyeball_left", "_L"), ("eyeball_right", "_R"))


def eye_turn(model: MorphableModel, weights) -> np.ndarray | None:
    """Offsets float32[n, 3] (model units) that turn the eyeballs to the gaze in ``weights``.

    ``weights`` float[K] are the model's expression weights (ARKit names: each eye
    pitches by GAZE_PITCH_DEG x (eyeLookDown - eyeLookUp) of its side), about the
    centre of a sphere fitted to the eyeball's vertices of the mean face, about the
    model's x axis. None where the model has no eyeballs or no gaze shapes (the
    Surrey model), or the gaze is level.
    """
    names = list(model.expression_names)
    w = np.asarray(weights, np.float64)
    out = None
    for region, side in EYEBALLS:
        down, up = f"eyeLookDown{side}", f"eyeLookUp{side}"
        if region not in model.regions or down not in names or up not in names:
            continue
        turn = np.radians(GAZE_PITCH_DEG * (w[names.index(down)] - w[names.index(up)]))
        if turn == 0.0:
            continue
        ids = np.asarray(model.regions[region])
        v = np.asarray(model.mean, np.float64)[ids]
        # the sphere through the vertices (least squares): |v|^2 = 2 c.v + (r^2 - |c|^2)
        a = np.concatenate([2.0 * v, np.ones((len(v), 1))], axis=1)
        c = np.linalg.lstsq(a, np.sum(v * v, axis=1), rcond=None)[0][:3]
        p = v - c
        cos, sin = np.cos(turn), np.sin(turn)
        # a positive turn takes the front of the eye (+z) down (-y)
        y = p[:, 1] * cos - p[:, 2] * sin
        z = p[:, 1] * sin + p[:, 2] * cos
        if out is None:
            out = np.zeros((model.mean.shape[0], 3), np.float32)
        out[ids, 1] = y - p[:, 1]
        out[ids, 2] = z - p[:, 2]
    return out


def full_deformation(model: MorphableModel, models: BinModels, region_deformation) -> np.ndarray:
    """Carry a template deformation float[n_t, 3] onto the whole model: float[n, 3].

    Template vertices take their own offsets. Mouth-interior vertices (teeth,
    gums and tongue, mouth socket), which the template leaves out, move as the
    model's own expression shapes move them for the blend of those shapes
    nearest to the deformation on the template (least squares): in the ICT
    model only the jaw's shapes move the teeth, so the upper teeth stay with
    the skull, the lower teeth and tongue drop with the jaw as one piece, and
    a smile or a stretch of the lips leaves the teeth where they are. The
    rest (eyes, head) stays: a bin records the lids of a gaze, not the gaze
    (the eyeballs are not on the template, and the lids do not tell a gaze
    from a squint: a least-squares blend read wide eyes as eyes turned up), so
    only action units turn the eyes (:func:`eye_turn`).
    """
    ids = _check_topology(model, models)
    d = np.zeros((model.mean.shape[0], 3), np.float32)
    d[ids] = region_deformation
    mouth = [np.asarray(model.regions[k]) for k in MOUTH_REGIONS if k in model.regions]
    if mouth and len(ids) < model.mean.shape[0]:
        mouth = np.setdiff1d(np.concatenate(mouth), ids)
        shapes, solve = _interior_solve(model, np.asarray(ids), mouth)
        w = solve @ np.asarray(region_deformation, np.float32).reshape(-1)
        d[mouth] = (shapes @ w).reshape(-1, 3)
    return d


def expression_for(
    models: BinModels,
    va,
    *,
    continuous: bool = False,
    intensity: float = 1.0,
    sample: bool = False,
    key=None,
) -> tuple[np.ndarray, int, tuple[float, float]]:
    """The template deformation for a target V-A: (float[n_t, 3], bin, label).

    Args:
        models: :class:`vafx.BinModels`.
        va: (valence, arousal) in [-1, 1], or a :class:`vafx.Target`; None with
            ``emotion`` or ``aus``.
        continuous: interpolate the four nearest bins' means bilinearly in
            the V-A plane (bin centres as nodes) instead of the bin's mean.
        intensity: multiplies the deformation.
        sample: a sample from the bin's blendshape model (not with continuous).
        key: PRNG key for ``sample``.
    """
    va = np.asarray(validate_va(np.asarray(va, np.float32), "va"), np.float32)
    grid = models.grid
    # VAGrid.bin_index on the host (as kernels.binning.grid_bin_index: bins [lo, hi),
    # the last closed): no compiled program for one pair
    edges = np.linspace(-1.0, 1.0, grid.n + 1).astype(np.float32)  # as kernels.binning.grid_edges
    iv, ia = np.clip(np.searchsorted(edges, va, side="right") - 1, 0, grid.n - 1)
    b = int(iv * grid.n + ia)
    if continuous:
        if sample:
            raise ValueError("continuous and sample do not combine")
        n = grid.n
        centres = np.asarray(grid.axis_centres())
        fv = np.clip(np.interp(va[0], centres, np.arange(n)), 0, n - 1)
        fa = np.clip(np.interp(va[1], centres, np.arange(n)), 0, n - 1)
        i0, j0 = int(np.floor(fv)), int(np.floor(fa))
        i1, j1 = min(i0 + 1, n - 1), min(j0 + 1, n - 1)
        tv, ta = fv - i0, fa - j0
        d = (
            (1 - tv) * (1 - ta) * models.means[i0 * n + j0]
            + tv * (1 - ta) * models.means[i1 * n + j0]
            + (1 - tv) * ta * models.means[i0 * n + j1]
            + tv * ta * models.means[i1 * n + j1]
        )
        return (intensity * d).astype(np.float32), b, (float(va[0]), float(va[1]))
    d = bin_expression(models, b, sample=sample, key=key, intensity=intensity)
    lab = models.labels[b]
    return d, b, (float(lab[0]), float(lab[1]))
