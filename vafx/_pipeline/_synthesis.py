"""Affect synthesis on a photo: landmarks -> fit -> bin expression -> re-render -> Poisson blend.

The paper's section 3.4 as one call, :func:`synthesize`, plus its options
beyond the paper: continuous control (bilinear interpolation of the four
nearest bins' means, so that a small change of V-A gives a small change of
face), an intensity factor, and a sample from the bin's blendshape model
instead of its mean. The target's deformation (and the topology check of
bin models against the face model) is :mod:`vafx._expression._deformation`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._compiled._programs import persistent
from .._errors import VafxError
from .._evaluate._judges import MOVED_LITTLE, halo_measure, skin_fidelity
from .._expression._bins import BinModels
from .._expression._controls import Target, au_deformation, au_weights, find_emotion
from .._expression._deformation import expression_for, full_deformation
from .._fit._fitting import Fit, FitConfig, fit_landmarks, image_vertices
from .._fit._landmarks import detect_landmarks
from .._model._morphable import MorphableModel, model_shape
from .._render._blend import seamless_clone_batch
from .._render._face import INTERIORS, PHOTO, _render_cropped, compose_full
from .._version import __version__

__all__ = [
    "SynthesisBatch",
    "SynthesisResult",
    "fitted_expression",
    "synthesize",
    "synthesize_batch",
]

log = logging.getLogger("vafx")

#: Relative residual at which the Poisson blend stops (:func:`vafx.seamless_clone_batch`
#: ``rtol``); a blend that ends above it is a warning naming the image, and the sidecar's
#: ``blend.solve`` records it.
BLEND_RTOL = 1e-3

_WARNED: set = set()  # (bin models, bin) already named in a warning in this process

#: How the target expression meets the photo's own: "replace" takes the fitted
#: expression out first (the output shows the target, whatever the photo showed);
#: "add" puts the target on top of it (the paper, which assumes a neutral photo).
EXPRESSION_MODES = ("replace", "add")


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


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """Options of :func:`synthesize` (all recorded in the sidecar).

    ``max_side`` caps the working resolution: a face whose crop (the face with
    the blend's margin) is larger on its longer side is rendered and blended
    at this size and brought back to full resolution by resampling the photo
    at the same surface points (:func:`vafx._render._face.compose_full`), so the
    cost of a photo stops growing with its face; None renders every face at
    full resolution.
    """

    continuous: bool = False
    intensity: float = 1.0
    sample: bool = False
    seed: int = 0
    camera: str = "orthographic"
    blend: str = "normal"
    expression: str = "replace"
    shade: bool = True
    max_side: int | None = 1024
    interior: str = "shaded"
    warp: bool = True

    def __post_init__(self):
        if self.expression not in EXPRESSION_MODES:
            raise ValueError(f"expression: one of {EXPRESSION_MODES}, got {self.expression!r}")
        if self.interior not in INTERIORS:
            raise ValueError(f"interior: one of {INTERIORS}, got {self.interior!r}")
        if self.max_side is not None and self.max_side < 64:
            raise ValueError(f"max_side: at least 64 pixels or None, got {self.max_side}")


class SynthesisBatch(NamedTuple):
    """Output of :func:`synthesize_batch`: B photos x T targets.

    Attributes:
        images: uint8[B, T, H, W, 3].
        labels: float32[T, 2]: each target's label (the bin's median V-A, or
            the requested V-A with ``continuous``).
        bins: int32[T], the target bins.
        fits: the photos' :class:`vafx.Fit` (leading axis B).
        sidecars: B lists of T JSON-ready dicts.
    """

    images: np.ndarray
    labels: np.ndarray
    bins: np.ndarray
    fits: Fit
    sidecars: list


@persistent
def fitted_expression(model: MorphableModel, fits: Fit) -> jax.Array:
    """The fitted expressions as vertex offsets: float32[B, n, 3] (model units).

    What :func:`synthesize` takes out of each photo before it puts the target in
    (``SynthesisConfig(expression="replace")``): the fitted face minus the same
    face with a neutral expression.
    """

    def one(alpha, beta):
        return model_shape(model, alpha, beta) - model_shape(model, alpha, None)

    return jax.vmap(one)(fits.identity, fits.expression)


def _removed(model: MorphableModel, fit: Fit, config) -> dict | None:
    """The sidecar's record of the expression taken out of the photo (None: nothing was)."""
    if config.expression != "replace":
        return None
    w = np.asarray(fit.expression, np.float64)
    names = model.expression_names
    top = np.argsort(-np.abs(w), kind="stable")
    return dict(
        weights={names[i]: round(float(w[i]), 4) for i in top if abs(w[i]) >= 0.01},
    )


@persistent(static_argnames=("camera",))
def _landmark_motion(model, fits, deform, *, camera):
    """The fits' landmark vertices in the image, as fitted and deformed.

    Returns (float[B, 68, 2], float[B, T, 68, 2]) pixels, NaN where a landmark
    has no vertex.
    """
    vid = jnp.maximum(fits.vertices, 0)  # [B, 68]

    def one(alpha, beta, fit, ids, d):  # d [T, n, 3]
        v = model_shape(model, alpha, beta)[ids]
        moved = jax.vmap(lambda dd: image_vertices(v + dd[ids], fit, camera)[:, :2])(d)
        return image_vertices(v, fit, camera)[:, :2], moved

    p0, p1 = jax.vmap(one)(fits.identity, fits.expression, fits, vid, deform)
    have = fits.vertices >= 0
    return jnp.where(have[..., None], p0, jnp.nan), jnp.where(have[:, None, :, None], p1, jnp.nan)


def _finite(x: float, digits: int):
    """A float rounded for JSON, None where it is NaN (nothing was measured)."""
    return round(float(x), digits) if np.isfinite(x) else None


def _points(p) -> list:
    """float[68, 2] pixels as JSON: rounded to 0.01 px, null where missing."""
    return [None if not np.isfinite(q).all() else [round(float(q[0]), 2), round(float(q[1]), 2)]
            for q in np.asarray(p, np.float64)]  # fmt: skip


def _blend_solve(info, n: int) -> dict:
    """Image ``n`` of a :class:`vafx.BlendInfo` [N, C] as the sidecar's record (worst channel)."""
    return dict(
        converged=bool(np.all(info.converged[n])),
        relative_residual=float(np.max(info.relative_residual[n])),
        iterations=int(np.max(info.iterations[n])),
    )


def _sidecar(name, va, label, b, models, model, fit, config, removed, lms, halo, skin, goal=None,
             weights=None, solve=None) -> dict:  # fmt: skip
    res = np.asarray(fit.residuals)
    has_va = bool(np.isfinite(va).all())
    side = dict(
        photo=name,
        target_va=[float(v) for v in np.asarray(va, np.float32)] if has_va else None,
        label_va=[float(v) for v in label] if np.isfinite(label).all() else None,
        bin=int(b) if b >= 0 else None,
        bin_status=["fitted", "mean only", "interpolated"][int(models.status[b])]
        if b >= 0
        else None,
        bin_frames=int(models.counts[b]) if b >= 0 else None,
        fit=dict(
            mean_landmark_error_px=float(np.nanmean(res)),
            final_cost=float(np.asarray(fit.cost)[-1]),
            scale=float(fit.scale),
        ),
        config=dataclasses.asdict(config),
        removed_expression=removed,
        landmarks=dict(
            fitted=_points(lms[0]),
            implied=_points(lms[1]),
        ),
        blend=dict(
            correction_mean=round(halo["mean"], 3),
            correction_blob=round(halo["blob"], 5),
            correction_max=halo["max"],
            # the Poisson solve: converged, relative residual, CG iterations (null: none)
            solve=None
            if solve is None
            else dict(solve, relative_residual=float(f"{solve['relative_residual']:.3g}")),
        ),
        skin=dict(
            brightness_change=_finite(skin["brightness"], 3),
            detail_ratio=_finite(skin["detail"], 4),
            pixels=skin["pixels"],
        ),
        versions=dict(vafx=__version__, jax=jax.__version__),
        model=model.name,
        bin_models=dict(params=models.meta["params"], gallery=models.meta.get("gallery", "")),
    )
    if goal is not None and goal.va is None:  # a category or action units
        side["target"] = goal.describe()
        if weights is not None:
            side["model_weights"] = weights
    # strict JSON: a NaN or infinity here is a bug to hear of, not a value to write
    return json.loads(json.dumps(side, allow_nan=False))


def _warn_empty(models: BinModels, bins, va, continuous: bool) -> None:
    """Log, once per bin models and bin, targets that fall in a bin without frames of its own."""
    if continuous:
        return  # interpolated between bin centres by design
    new = [
        (b, v) for b, v in zip(bins, va)
        if b >= 0 and int(models.status[b]) == 2 and (id(models), int(b)) not in _WARNED
    ]  # fmt: skip
    for b, _ in new:
        _WARNED.add((id(models), int(b)))
    if new:
        log.warning(
            "target V-A %s: bin(s) %s hold no gallery frames; their expression is interpolated "
            "from neighbouring bins' means (sidecar bin_status 'interpolated')",
            ", ".join(f"({v[0]:+.2f}, {v[1]:+.2f})" for _, v in new[:4]),
            sorted({int(b) for b, _ in new}),
        )


_ON_DEVICE: dict = {}  # (id(model), device id) -> (model, its copy on that device)


def _model_on(model: MorphableModel, dev) -> MorphableModel:
    """The model's copy on a device, made once per model and device (not per call)."""
    key = (id(model), dev.id)
    hit = _ON_DEVICE.get(key)
    if hit is None or hit[0] is not model:
        if len(_ON_DEVICE) > 16:
            _ON_DEVICE.clear()
        hit = _ON_DEVICE[key] = (model, jax.device_put(model, dev))
    return hit[1]


def _spread(img, goals, models, model, landmarks, fits, config, names, force, devs):
    """:func:`synthesize_batch` with the photos split over devices (threads), then joined."""
    from concurrent.futures import ThreadPoolExecutor

    groups = [g for g in np.array_split(np.arange(len(img)), len(devs)) if len(g)]

    def run(i):
        g, dev = groups[i], devs[i]
        with jax.default_device(dev):
            return synthesize_batch(
                img[g], goals, models, _model_on(model, dev),
                landmarks=None if landmarks is None else np.asarray(landmarks)[g],
                fits=None if fits is None else jax.tree.map(lambda x: np.asarray(x)[g], fits),
                config=config, names=[names[k] for k in g], force=force, devices=[dev],
            )  # fmt: skip

    with ThreadPoolExecutor(len(groups)) as pool:
        parts = list(pool.map(run, range(len(groups))))
    host = [jax.device_get(p.fits) for p in parts]
    return SynthesisBatch(
        np.concatenate([p.images for p in parts]),
        parts[0].labels,
        parts[0].bins,
        jax.tree.map(lambda *x: np.concatenate(x), *host),
        [s for p in parts for s in p.sidecars],
    )


def _one_target(va, emotion, aus, via) -> Target:
    if isinstance(va, Target):
        if emotion is not None or aus is not None:
            raise ValueError("give a Target, or emotion / aus, not both")
        return va
    if va is not None and (emotion is not None or aus is not None):
        raise ValueError("give one of va, emotion or aus")
    return Target(va=None if va is None else tuple(np.asarray(va, np.float32).tolist()),
                  emotion=emotion, aus=aus, via=via)  # fmt: skip


def _targets(targets) -> list[Target]:
    """Targets as a list of checked :class:`vafx.Target` (V-A pairs become Target(va=...))."""
    if isinstance(targets, Target):
        targets = [targets]
    if isinstance(targets, np.ndarray) or (
        isinstance(targets, (list, tuple))
        and targets
        and not any(isinstance(t, Target) for t in targets)
    ):
        va = np.asarray(targets, np.float32)
        if va.ndim != 2 or va.shape[1] != 2 or len(va) == 0:
            raise ValueError(f"targets: expected (T, 2) valence-arousal pairs, got {va.shape}")
        return [Target(va=tuple(v)).checked() for v in va]
    if not isinstance(targets, (list, tuple)) or not targets:
        raise ValueError("targets: expected (T, 2) valence-arousal pairs or a list of vafx.Target")
    return [(t if isinstance(t, Target) else Target(va=tuple(t))).checked() for t in targets]


def _check_photos(photos, names) -> np.ndarray:
    img = np.asarray(photos)
    if img.dtype != np.uint8 or img.ndim != 4 or img.shape[3] < 3:
        raise ValueError(
            f"{', '.join(names[:3])}: expected uint8 RGB photos [B, H, W, 3] of one size, "
            f"got {img.dtype} {img.shape}"
        )
    return np.ascontiguousarray(img[..., :3])


def synthesize_batch(
    photos,
    targets,
    models: BinModels,
    model: MorphableModel,
    *,
    landmarks=None,
    fits: Fit | None = None,
    config: SynthesisConfig = SynthesisConfig(),
    names=None,
    force: bool = False,
    devices=None,
) -> SynthesisBatch:
    """B photos of one size, each synthesized at T target V-A pairs.

    One compiled call fits the B photos, one renders all B x T faces (the
    work that depends only on a photo's fit is done once per photo), one
    Poisson-blends all B x T images. Every image equals what
    :func:`synthesize` gives for that photo and target up to rounding (each
    image is blended on its own crop, padded to the batch's size bucket;
    tested: under 1e-4 of the pixels differ by more than one grey level).

    Args:
        photos: uint8[B, H, W, 3].
        targets: float[T, 2] (valence, arousal) in [-1, 1], for every photo.
        models: the per-bin models.
        model: the morphable model of the bin models' template.
        landmarks: float[B, 68, 2]; None detects them (vafx[detect]).
        fits: the photos' fits (leading axis B) to reuse instead.
        config: :class:`SynthesisConfig`.
        names: B photo names for messages and sidecars.
        force: accept fits that fail :func:`vafx.check_fits` (a landmark
            error far above a good fit's); landmarks that cannot belong to
            the photo are refused all the same.
        devices: local devices to spread the photos over (default: all). With
            D > 1 devices and B > 1 photos, the photos are split into D
            contiguous groups, each synthesized on its device (in a thread,
            with its own copy of the model); every image equals the one-device
            result up to the rounding that a batch's composition allows (as
            for batch against single calls).

    Returns:
        :class:`SynthesisBatch`.

    Raises:
        FitError: landmarks that do not belong to their photo, or a failed
            fit (the message names the photo).
    """
    img = np.asarray(photos)
    b = img.shape[0] if img.ndim == 4 else 0
    names = [f"photo {i}" for i in range(b)] if names is None else [str(n) for n in names]
    img = _check_photos(img, names)
    if len(names) != b:
        raise ValueError(f"names: expected {b}, got {len(names)}")
    goals = _targets(targets)
    devs = list(jax.local_devices() if devices is None else devices)
    if len(devs) > 1 and b > 1:
        return _spread(img, goals, models, model, landmarks, fits, config, names, force, devs)
    if fits is None:
        if landmarks is None:
            landmarks = np.stack([detect_landmarks(x, name=n) for x, n in zip(img, names)])
        fits = fit_landmarks(model, landmarks, img.shape[1:3], FitConfig(camera=config.camera),
                             names=names, check=not force)  # fmt: skip
    else:
        from .._fit._fitting import check_fits

        check_fits(fits, np.asarray(fits.landmarks), names=names, max_error=None)
    key = jax.random.key(config.seed) if config.sample else None
    va = np.full((len(goals), 2), np.nan, np.float32)  # the V-A asked for (NaN: none)
    exprs, weights = [], []
    for j, g in enumerate(goals):
        if g.va is not None or (g.emotion is not None and g.via == "bins"):
            va[j] = g.va if g.va is not None else find_emotion(g.emotion).va
            d, bin_, lab = expression_for(models, va[j], continuous=config.continuous,
                                          intensity=config.intensity, sample=config.sample,
                                          key=key)  # fmt: skip
            exprs.append((full_deformation(model, models, d), bin_, lab))
            weights.append(None)
        else:  # action units on the model's own shapes
            aus = find_emotion(g.emotion).aus if g.emotion is not None else g.aus
            w = au_weights(model, aus)
            lab = find_emotion(g.emotion).va if g.emotion is not None else (np.nan, np.nan)
            exprs.append((config.intensity * au_deformation(model, aus), -1, lab))
            names_e = model.expression_names
            weights.append({names_e[i]: round(float(w[i]), 4) for i in np.nonzero(w)[0]})
    _warn_empty(models, [e[1] for e in exprs], va, config.continuous)
    deform = np.stack([e[0] for e in exprs])[None]
    if config.expression == "replace":
        deform = deform - np.asarray(fitted_expression(model, fits))[:, None]
    if not np.isfinite(deform).all():
        bad = names[int(np.nonzero(~np.isfinite(deform).all(axis=(1, 2, 3)))[0][0])]
        raise VafxError(f"{bad}: the face's deformation is not finite (NaN in the fit given, or "
                        "in the bin models)")  # fmt: skip
    else:
        deform = np.broadcast_to(deform, (b, *deform.shape[1:]))
    bins = np.array([e[1] for e in exprs], np.int32)
    labels = np.array([e[2] for e in exprs], np.float32)
    t = len(va)
    try:
        r, boxes, working = _render_cropped(
            img, model, fits, np.ascontiguousarray(deform, np.float32), camera=config.camera,
            depth_tolerance=1.5, diffusion_steps=32, shade=config.shade, max_side=config.max_side,
            interior=config.interior, warp=config.warp,
        )  # fmt: skip
    except VafxError as e:  # the renderer's refusal, named by the photos it was drawing
        raise VafxError(f"{', '.join(map(str, names))}: {e}") from None
    if not np.isfinite(r.image).all():  # the renderer's output, checked on the host
        bad = names[int(np.nonzero(~np.isfinite(r.image).all(axis=(1, 2, 3, 4)))[0][0])]
        raise VafxError(f"{bad}: rendering gave NaN or infinite pixels (is its fit finite?)")
    ch, cw = int(boxes[0, 2]), int(boxes[0, 3])  # the crop, at the photo's resolution
    full = np.stack([img[k, y0 : y0 + ch, x0 : x0 + cw] for k, (y0, x0, _, _) in enumerate(boxes)])
    rh, rw = r.image.shape[2:4]  # the rendering's (the crop's, or the working resolution)
    under = (
        full if working is None else np.clip(np.rint(working.photos * 255), 0, 255).astype(np.uint8)
    )
    rendered = np.clip(np.rint(r.image * 255), 0, 255).astype(np.uint8)  # [B, T, rh, rw, 3]
    flat = rendered.reshape(b * t, rh, rw, 3)
    blended = flat.copy()
    under = np.repeat(under, t, axis=0)
    # solve over every pixel the render changed; the boundary is what it left alone
    masks = r.blend_mask.reshape(b * t, rh, rw)
    ok = masks.any(axis=(1, 2)) & ~masks.all(axis=(1, 2))
    solves: list = [None] * (b * t)  # the blend's convergence per image (None: no blend)
    if ok.any():
        # faces of one crop size: one compiled solve across targets, photos and processes
        key = f"synthesis:{rh}x{rw}"
        blended[ok], info = seamless_clone_batch(flat[ok], under[ok], masks[ok],
                                                 mode=config.blend, rtol=BLEND_RTOL,
                                                 size_key=key)  # fmt: skip
        for n, i in enumerate(np.nonzero(ok)[0]):
            solves[i] = _blend_solve(info, n)
            if not solves[i]["converged"]:
                log.warning(
                    "%s: the Poisson blend did not converge (relative residual %.2g after %d "
                    "iterations, tolerance %g): the face's edge may show",
                    names[i // t], solves[i]["relative_residual"], solves[i]["iterations"],
                    BLEND_RTOL,
                )  # fmt: skip
    cover = r.coverage.reshape(b * t, rh, rw)
    halos = [halo_measure(o, f, c) for o, f, c in zip(blended, flat, cover)]
    # the photo's own skin kept: over the face's photo-sampled pixels that moved little
    little = (r.source == PHOTO) & r.coverage & (r.motion <= MOVED_LITTLE)
    skins = [skin_fidelity(u, o, m) for u, o, m in
             zip(under, blended, little.reshape(b * t, rh, rw))]  # fmt: skip
    out = np.repeat(img[:, None], t, axis=1)
    for i in range(b * t):
        k, j = divmod(i, t)
        y0, x0 = int(boxes[k, 0]), int(boxes[k, 1])
        crop = blended[i]
        if working is not None:  # back to full resolution with the photo's own detail
            maps = jax.tree.map(lambda m: m.reshape(b * t, *m.shape[2:])[i], working.maps)
            correction = (blended[i].astype(np.float32) - flat[i]) / 255.0
            crop = compose_full(full[k].astype(np.float32) / 255.0, r.image[k, j], maps,
                                cover[i], correction, working.factor, working.p0[k],
                                working.p1[k, j], working.faces)  # fmt: skip
            crop = np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)
        out[k, j, y0 : y0 + ch, x0 : x0 + cw] = crop
    lm0, lm1 = (np.asarray(x) for x in _landmark_motion(model, fits, deform,
                                                         camera=config.camera))  # fmt: skip
    sidecars = []
    host = jax.device_get(fits)  # indexed on the host: no program per leaf and photo
    for i in range(b):
        fit_i = jax.tree.map(lambda x: x[i], host)
        removed = _removed(model, fit_i, config)
        sidecars.append([
            _sidecar(names[i], va[j], labels[j], bins[j], models, model, fit_i, config, removed,
                     (lm0[i], lm1[i, j]), halos[i * t + j], skins[i * t + j], goals[j],
                     weights[j], solves[i * t + j])
            for j in range(t)
        ])  # fmt: skip
    return SynthesisBatch(out, labels, bins, fits, sidecars)


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
    force: bool = False,
    emotion: str | None = None,
    aus=None,
    via: str = "bins",
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
        force: as :func:`synthesize_batch`.
        emotion: a category (``vafx synthesize --list-emotions``), instead of ``va``.
        aus: action units ({12: 0.8, ("R", 6): 0.5} or ["12=0.8", "6R=0.5"]), instead of ``va``.
        via: for ``emotion``: "bins" (its V-A placement through the bin models)
            or "prototype" (its FACS prototype on the model's expression shapes).

    Returns:
        :class:`SynthesisResult`; its label is the bin's (or the category's
        placement; NaN for action units), its bin -1 without one.
    """
    img = np.asarray(photo)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"{name}: expected a uint8 RGB photo, got {img.dtype} {img.shape}")
    if fit is None and landmarks is None:
        landmarks = detect_landmarks(img[..., :3], name=name)
    res = synthesize_batch(
        img[None], [_one_target(va, emotion, aus, via)], models, model,
        landmarks=None if landmarks is None else np.asarray(landmarks, np.float32)[None],
        fits=None if fit is None else jax.tree.map(lambda x: np.asarray(x)[None], fit),
        config=config, names=[name], force=force,
    )  # fmt: skip
    fit = jax.tree.map(lambda x: x[0], jax.device_get(res.fits))
    label = (float(res.labels[0, 0]), float(res.labels[0, 1]))
    return SynthesisResult(res.images[0, 0], label, int(res.bins[0]), fit, res.sidecars[0][0])
