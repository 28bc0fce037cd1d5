"""Affect synthesis on a photo: landmarks -> fit -> bin expression -> re-render -> Poisson blend.

The paper's section 3.4 as one call, :func:`synthesize`, plus its options
beyond the paper: continuous control (bilinear interpolation of the four
nearest bins' means, so that a small change of V-A gives a small change of
face), an intensity factor, and a sample from the bin's blendshape model
instead of its mean.

The bin models live on the gallery's template (e.g. the ICT face region); the
face is fitted with the full morphable model. Their topologies must agree: the
template's vertex ids index the model, and its digest must match the model's
region (a mismatch is an error). Mouth-interior vertices (teeth, gums, mouth
socket), which the face region leaves out, follow the nearest face-region
vertex, so the teeth move with the jaw.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import NamedTuple

import jax
import numpy as np

from ._bins import BinModels, bin_expression
from ._blend import seamless_clone
from ._errors import VafxError
from ._fitting import Fit, FitConfig, fit_landmarks
from ._landmarks import detect_landmarks
from ._model._morphable import MorphableModel
from ._render import render_face
from ._va_space import validate_va
from ._version import __version__

__all__ = ["SynthesisResult", "expression_for", "full_deformation", "synthesize"]

MOUTH_REGIONS = ("mouth_socket", "gums_tongue", "teeth")


class SynthesisResult(NamedTuple):
    """Output of :func:`synthesize`.

    Attributes:
        image: uint8[H, W, 3], the photo with the new affect.
        label: (valence, arousal): the bin's median V-A (the paper's label), or
            the requested V-A with ``continuous``.
        bin: the target bin.
        fit: the :class:`vafx.Fit` of the photo.
        sidecar: JSON-ready dict: label, bin, fit diagnostics, versions, parameters.
    """

    image: np.ndarray
    label: tuple[float, float]
    bin: int
    fit: Fit
    sidecar: dict


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
    from ._gallery._store import template_from_model

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
    from scipy.spatial import cKDTree

    mean = np.frombuffer(mean_bytes, np.float32).reshape(-1, 3)
    region = np.frombuffer(region_ids_bytes, np.int64)
    mouth = np.frombuffer(mouth_ids_bytes, np.int64)
    _, nearest = cKDTree(mean[region]).query(mean[mouth])
    return mouth, region[nearest]


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
        va: (valence, arousal) in [-1, 1].
        continuous: interpolate the four nearest bins' means bilinearly in
            the V-A plane (bin centres as nodes) instead of the bin's mean.
        intensity: multiplies the deformation.
        sample: a sample from the bin's blendshape model (not with continuous).
        key: PRNG key for ``sample``.
    """
    va = np.asarray(validate_va(np.asarray(va, np.float32), "va"), np.float32)
    grid = models.grid
    b = int(grid.bin_index(va))
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


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """Options of :func:`synthesize` (all recorded in the sidecar)."""

    continuous: bool = False
    intensity: float = 1.0
    sample: bool = False
    seed: int = 0
    camera: str = "orthographic"
    blend: str = "normal"


def synthesize(
    photo,
    va,
    models: BinModels,
    model: MorphableModel,
    *,
    landmarks=None,
    fit: Fit | None = None,
    config: SynthesisConfig = SynthesisConfig(),
    name: str = "photo",
) -> SynthesisResult:
    """A neutral photo and a target (valence, arousal) in; the same person with that affect out.

    Args:
        photo: uint8[H, W, 3].
        va: (valence, arousal) in [-1, 1].
        models: the per-bin models (:func:`vafx.fit_bins` / ``vafx bins fit``).
        model: the morphable model of the bin models' template.
        landmarks: float[68, 2]; None detects them (vafx[detect]).
        fit: a fit of this photo to reuse (skips landmarks and fitting).
        config: :class:`SynthesisConfig`.
        name: the photo's name for messages and the sidecar.

    Returns:
        :class:`SynthesisResult`.
    """
    img = np.asarray(photo)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"{name}: expected a uint8 RGB photo, got {img.dtype} {img.shape}")
    img = img[..., :3]
    if fit is None:
        if landmarks is None:
            landmarks = detect_landmarks(img, name=name)
        fit = fit_landmarks(model, landmarks, img.shape[:2], FitConfig(camera=config.camera))
    key = jax.random.key(config.seed) if config.sample else None
    d_t, b, label = expression_for(
        models, va, continuous=config.continuous, intensity=config.intensity,
        sample=config.sample, key=key,
    )  # fmt: skip
    d = full_deformation(model, models, d_t)
    r = render_face(img, model, fit, d, camera=config.camera)
    rendered = np.clip(np.rint(r.image * 255), 0, 255).astype(np.uint8)
    if r.blend_mask.any() and not r.blend_mask.all():
        out = seamless_clone(rendered, img, r.blend_mask, mode=config.blend)
    else:
        out = rendered
    res = np.asarray(fit.residuals)
    sidecar = dict(
        photo=name,
        target_va=[float(v) for v in np.asarray(va, np.float32)],
        label_va=list(label),
        bin=b,
        bin_status=["fitted", "mean only", "interpolated"][int(models.status[b])],
        bin_frames=int(models.counts[b]),
        fit=dict(
            mean_landmark_error_px=float(np.nanmean(res)),
            final_cost=float(np.asarray(fit.cost)[-1]),
            scale=float(fit.scale),
        ),
        config=dataclasses.asdict(config),
        versions=dict(vafx=__version__, jax=jax.__version__),
        model=model.name,
        bin_models=dict(params=models.meta["params"], gallery=models.meta.get("gallery", "")),
    )
    return SynthesisResult(out, label, b, fit, json.loads(json.dumps(sidecar)))
