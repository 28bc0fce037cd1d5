"""A target's deformation: the bin's expression for a V-A pair, carried onto the whole model.

The bin models live on the gallery's template (e.g. the ICT face region); the
face is fitted with the full morphable model. Their topologies must agree: the
template's vertex ids index the model, and its digest must match the model's
region (a mismatch is an error). Mouth-interior vertices (teeth, gums, mouth
socket), which the face region leaves out, follow the nearest face-region
vertex, so the teeth move with the jaw.
"""

from __future__ import annotations

import functools

import numpy as np

from .._errors import VafxError
from .._io._derived import derived_arrays
from .._model._morphable import MorphableModel
from .._va_space import validate_va
from ._bins import BinModels, bin_expression

__all__ = ["expression_for", "full_deformation"]

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


@functools.lru_cache(maxsize=8)
def _mouth_followers(key, mean_bytes, region_ids_bytes, mouth_ids_bytes):
    """(mouth ids, their nearest region vertex in the mean shape), kept in vafx's cache."""
    from importlib.metadata import version

    def compute():
        from scipy.spatial import cKDTree  # 0.3 s to import: only when not in the cache

        mean = np.frombuffer(mean_bytes, np.float32).reshape(-1, 3)
        region = np.frombuffer(region_ids_bytes, np.int64)
        mouth = np.frombuffer(mouth_ids_bytes, np.int64)
        _, nearest = cKDTree(mean[region]).query(mean[mouth])
        return dict(mouth=mouth, source=region[nearest])

    # scipy's version in the key: its k-d tree picks among equally near vertices (the lips
    # meet at rest), and another release might pick another
    inputs = b"|".join([mean_bytes, region_ids_bytes, mouth_ids_bytes,
                        version("scipy").encode(), b"1"])  # fmt: skip
    got = derived_arrays("mouth-followers", inputs, compute)
    return np.asarray(got["mouth"]), np.asarray(got["source"])


def full_deformation(model: MorphableModel, models: BinModels, region_deformation) -> np.ndarray:
    """Carry a template deformation float[n_t, 3] onto the whole model: float[n, 3].

    Template vertices take their own offsets; mouth-interior vertices take the
    offset of the nearest template vertex (in the mean shape); the rest stay.
    """
    ids = _check_topology(model, models)
    d = np.zeros((model.mean.shape[0], 3), np.float32)
    d[ids] = region_deformation
    mouth = [np.asarray(model.regions[k]) for k in MOUTH_REGIONS if k in model.regions]
    if mouth and len(ids) < model.mean.shape[0]:
        mean = np.ascontiguousarray(np.asarray(model.mean, np.float32))
        m_ids, src = _mouth_followers(
            (model.name, mean.shape[0]),
            mean.tobytes(),
            np.asarray(ids, np.int64).tobytes(),
            np.concatenate(mouth).astype(np.int64).tobytes(),
        )
        d[m_ids] = d[src]
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
