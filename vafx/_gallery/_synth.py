"""A synthetic 4D gallery made from a morphable model, so that vafx runs without licensed data.

What it is: sequences of meshes in dense correspondence with the model's
template (the ICT face region by default), each an onset -> apex -> offset
enactment of one expression by one synthetic subject, every frame labelled
with a valence and arousal derived from where psychology places the expressed
emotion on the circumplex (see :mod:`vafx._gallery._facs`), scaled by the
frame's expression intensity, plus annotation noise.

What it is not: recorded faces. Expressions are linear blends of the model's
ARKit/FACS shapes driven by textbook AU prototypes, and labels follow from the
expressions by construction, so the relation between 3D shape and V-A is far
cleaner than in 4DFAB or any recorded, human-annotated data. Use it to run and
test the pipeline, never to claim accuracy.

Variation, so that bins hold varied data: identities from the model's prior
(scaled by ``identity_scale``); per subject, log-normal gains per AU
(``au_gain_sd``), a left/right asymmetry (``asymmetry_sd``) and a personal
V-A scale; per sequence, a peak intensity in [``min_peak``, 1] and jittered
timing; per frame, N(0, ``va_noise``) annotation noise on V-A.

Deterministic: every subject and sequence draws from its own
``numpy.random.SeedSequence((seed, subject, expression, repeat))``, so a resumed
run regenerates exactly the sequences it has not committed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable

import numpy as np

from .._model._template import Template, template_from_model
from . import _facs
from ._store import Gallery, GalleryWriter, SequenceData

#: Version of the generator's rules; part of a gallery's fingerprint, so a resume
#: never mixes sequences from two versions.
GENERATOR = 4


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Settings of :func:`synthesize_gallery` (all stored in the manifest).

    Attributes:
        subjects: number of synthetic subjects.
        repeats: sequences per subject and expression.
        frames: frames per sequence after the neutral frame.
        region: model region of the template (None: the whole mesh).
        seed: the random seed.
        identity_scale: identity coefficients ~ N(0, identity_scale^2).
        au_gain_sd: standard deviation of the log of each subject's AU gains.
        asymmetry_sd: standard deviation of the left/right asymmetry.
        min_peak: lowest apex intensity of a sequence.
        va_noise: standard deviation of the annotation noise on V-A.
        angle_sd: standard deviation, in degrees, of each sequence's turn of
            its prototype's V-A about the origin (spreads the frames over the
            circumplex between the prototypes).
        expressions: prototype names to use (None: all the model supports).
    """

    subjects: int = 20
    repeats: int = 1
    frames: int = 24
    region: str | None = "face"
    seed: int = 0
    identity_scale: float = 0.8
    au_gain_sd: float = 0.25
    asymmetry_sd: float = 0.08
    min_peak: float = 1.0
    va_noise: float = 0.05
    angle_sd: float = 10.0
    expressions: tuple[str, ...] | None = None


def prototypes_for(model, names: tuple[str, ...] | None = None) -> list[_facs.Prototype]:
    """The expression prototypes a model can enact.

    Models with ARKit-named shapes (ICT) take every prototype of
    :mod:`vafx._gallery._facs`; the Surrey Face Model takes its own six
    basic-emotion blendshapes.
    """
    expr = tuple(model.expression_names)
    if set(_facs.SFM_EXPRESSIONS) <= set(expr):
        protos = [p for p in _facs.BASIC if p.name in _facs.SFM_EXPRESSIONS]
    elif "jawOpen" in expr:
        protos = list(_facs.ALL)
    else:
        raise ValueError(
            f"model {model.name!r}: a synthetic gallery needs ARKit-named expression shapes "
            "(the ICT model) or the SFM's six emotion blendshapes; this model has "
            f"{list(expr)[:6]}..."
        )
    if names is not None:
        known = {p.name: p for p in protos}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(
                f"unknown or unsupported expressions {missing}; known: {sorted(known)}"
            )
        protos = [known[n] for n in names]
    return protos


def intensity_profile(t: np.ndarray, onset: float, apex: float) -> np.ndarray:
    """Onset -> apex -> offset intensity over normalized time t in (0, 1].

    Smooth rise to 1 by ``onset``, plateau until ``apex``, smooth fall to 0.15
    at t = 1 (sequences end before full relaxation, as recordings do).
    """

    def smooth(x):
        x = np.clip(x, 0.0, 1.0)
        return x * x * (3 - 2 * x)

    rise = smooth(t / onset)
    fall = 1 - 0.85 * smooth((t - apex) / (1 - apex))
    return np.where(t <= apex, rise, fall)


def sequence_labels(
    config: SynthConfig, subject: int, expression: int, repeat: int, proto, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One sequence's expression intensity float[F] and V-A labels float[F, 2].

    The labels need no mesh, so coverage of the V-A plane can be computed (and
    tested) for any configuration without generating the gallery
    (:func:`gallery_labels`). A frame's V-A is its prototype's apex V-A, turned
    about the origin by the sequence's angle (N(0, ``angle_sd``) degrees) and
    scaled by the subject's and the sequence's V-A scales, times
    intensity ** 0.8, plus N(0, ``va_noise``) annotation noise.
    """
    subj = np.random.default_rng(np.random.SeedSequence((config.seed, subject, 0x5A)))
    va_scale = subj.uniform(0.9, 1.1)
    q = np.random.default_rng(np.random.SeedSequence((config.seed, subject, expression, repeat)))
    peak = q.uniform(config.min_peak, 1.0)
    onset, apex = q.uniform(0.3, 0.45), q.uniform(0.55, 0.7)
    inten = peak * intensity_profile(t, onset, apex)
    # timing jitter off the plateau only: every sequence's apex reaches its peak
    noise = q.normal(0, 0.02, inten.shape)
    inten = np.clip(np.where(inten >= peak, inten, inten + noise), 0, 1)
    turn = np.radians(q.normal(0, config.angle_sd))
    c, s = np.cos(turn), np.sin(turn)
    apex_va = np.array([[c, -s], [s, c]]) @ np.asarray(proto.va) * va_scale * q.uniform(0.9, 1.1)
    va = (inten[:, None] ** 0.8) * apex_va
    va = np.clip(va + q.normal(0, config.va_noise, va.shape), -1, 1)
    return inten.astype(np.float32), va.astype(np.float32)


def gallery_labels(model_or_protos, config: SynthConfig = SynthConfig()) -> np.ndarray:
    """float32[N, 2]: the V-A of every frame :func:`synthesize_gallery` makes (no meshes)."""
    protos = (
        prototypes_for(model_or_protos, config.expressions)
        if hasattr(model_or_protos, "expression_names")
        else list(model_or_protos)
    )
    t = np.arange(1, config.frames + 1, dtype=np.float64) / config.frames
    out = [
        sequence_labels(config, s, e, r, p, t)[1]
        for s in range(config.subjects)
        for e, p in enumerate(protos)
        for r in range(config.repeats)
    ]
    return np.concatenate(out)


def _weights(model, proto, gains, asym) -> tuple[np.ndarray, np.ndarray]:
    """A prototype's apex weights float32[K], and what its AU combinations add (float32[K]).

    The first is clipped to [0, 1] frame by frame; the second comes on top
    (:data:`vafx._gallery._facs.COMBINATIONS`).
    """
    names = tuple(model.expression_names)
    w, extra = np.zeros(len(names), np.float32), np.zeros(len(names), np.float32)
    if proto.name in names and "jawOpen" not in names:
        w[names.index(proto.name)] = 1.0  # SFM: the emotion's own shape
        return w, extra
    for i, v in _facs.arkit_weights(proto.aus, names, gains, asym, combine=False):
        w[i] = v
    for i, v in _facs.combination_weights(proto.aus, names, gains, asym):
        extra[i] = v
    return w, extra


def synthesize_gallery(
    out: str | os.PathLike,
    model,
    config: SynthConfig = SynthConfig(),
    *,
    budget_bytes: int = 256 << 20,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    writer=None,
) -> Gallery:
    """Generate and store a synthetic gallery (see the module docstring).

    Args:
        out: the gallery folder.
        model: a :class:`vafx.MorphableModel` (ICT or SFM).
        config: the :class:`SynthConfig`.
        budget_bytes: frame buffer per checkpoint (bounds memory).
        overwrite: replace an existing gallery at ``out``.
        progress: called with (sequences done, total sequences).
        writer: called with (template, fingerprint) instead of opening a
            :class:`GalleryWriter` at ``out``; what it returns takes the
            sequences (``add``, ``skip``, ``sequences_done``, ``complete``, a
            context manager) and is returned. A writer with an ``add_blend``
            method is given each sequence as its blend weights instead
            (``add_blend(subject, name, weights float32[F, K], shapes
            float32[K, 3 n], va float32[F, 2])``, the frames' deformations being
            ``weights @ shapes``), and no mesh is computed: vafx's default bin
            models are made this way, without 2.3 GB of frames.

    Returns:
        The opened :class:`Gallery`; frames are labelled with their
        prototype's name and carry their intensity.
    """
    if config.subjects < 1 or config.repeats < 1 or config.frames < 1:
        raise ValueError("subjects, repeats and frames must be at least 1")
    protos = prototypes_for(model, config.expressions)
    template: Template = template_from_model(model, config.region)
    ids = template.vertex_ids
    mean = np.asarray(model.mean, np.float32)[ids]
    id_basis = (
        np.asarray(model.identity_basis, np.float32)[:, ids]
        * np.asarray(model.identity_std, np.float32)[:, None, None]
    ).reshape(model.identity_basis.shape[0], -1)
    ex_basis = (
        np.asarray(model.expression_basis, np.float32)[:, ids]
        * np.asarray(model.expression_std, np.float32)[:, None, None]
    ).reshape(model.expression_basis.shape[0], -1)
    n = len(ids)

    cfg = dataclasses.asdict(config)
    h = hashlib.sha256(json.dumps(dict(cfg, generator=GENERATOR), sort_keys=True).encode())
    h.update(template.digest().encode())
    h.update(np.ascontiguousarray(mean).tobytes()[: 1 << 20])
    h.update(ex_basis.tobytes()[: 1 << 20])
    source = dict(kind="synthetic", model=model.name, config=cfg)
    total = config.subjects * len(protos) * config.repeats
    t = np.arange(1, config.frames + 1, dtype=np.float64) / config.frames
    fingerprint = "synthetic:" + h.hexdigest()
    if writer is not None:
        opened = writer(template, fingerprint)
    else:
        opened = GalleryWriter(out, template, fingerprint, budget_bytes=budget_bytes,
                               overwrite=overwrite, source=source)  # fmt: skip
    with opened as w:
        if w.complete:
            return Gallery(out) if writer is None else w
        done = 0
        for s in range(config.subjects):
            subject = f"synth{s:04d}"
            rng = np.random.default_rng(np.random.SeedSequence((config.seed, s)))
            alpha = config.identity_scale * rng.standard_normal(id_basis.shape[0])
            neutral = (mean.reshape(-1) + alpha.astype(np.float32) @ id_basis).reshape(n, 3)
            # a subject's idiosyncrasy is the strength of its muscle actions; a gaze (AUs
            # 63, 64) is not one, and drawing none for it keeps every other draw as it was
            gains = {
                au: float(np.exp(config.au_gain_sd * rng.standard_normal()))
                for au in _facs.AU_TO_ARKIT
                if au not in _facs.GAZE_AUS
            }
            asym = float(config.asymmetry_sd * rng.standard_normal())
            for e, proto in enumerate(protos):
                weights, extra = _weights(model, proto, gains, asym)
                for r in range(config.repeats):
                    name = f"{proto.name.replace(' ', '_')}_{r}"
                    done += 1
                    if done <= w.sequences_done:
                        w.skip(f"{subject}/{name}")
                        continue
                    inten, va = sequence_labels(config, s, e, r, proto, t)
                    coeffs = np.clip(inten[:, None] * weights[None, :], 0, 1)
                    coeffs = (coeffs + inten[:, None] * extra[None, :]).astype(np.float32)
                    if hasattr(w, "add_blend"):
                        w.add_blend(subject, name, coeffs, ex_basis, va)
                        if progress is not None:
                            progress(done, total)
                        continue
                    frames = neutral.reshape(1, -1) + coeffs @ ex_basis
                    w.add(
                        SequenceData(
                            subject,
                            name,
                            neutral,
                            frames.reshape(-1, n, 3),
                            va.astype(np.float32),
                            [proto.name] * config.frames,
                            np.arange(1, config.frames + 1),
                            (0.0, 0.0),
                            0,
                            inten.astype(np.float32),
                        )
                    )
                    if progress is not None:
                        progress(done, total)
    return Gallery(out) if writer is None else w
