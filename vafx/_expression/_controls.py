"""Controls beyond a V-A pair: emotion categories and facial action units.

An emotion category (the basic emotions and contempt, EMFACS; Du, Tao and
Martinez's compound categories) reaches a photo two ways:

- ``via="bins"`` (the paper's way): the category's place on the circumplex
  (:mod:`vafx._gallery._facs`) is the V-A target, and the image is the
  synthesis at that V-A, bin models and all;
- ``via="prototype"``: the category's FACS prototype (its AUs and intensities)
  is mapped through the AU table onto the face model's own expression shapes
  (ARKit-named blendshapes: the ICT model) and put on the fitted face.

Action units (``--au 12=0.8``, ``12R=0.8`` for the subject's right side only:
the side the subject calls right, the left of a frontal photo) go the second way. Intensities are in [0, 1]; a unilateral AU needs an AU whose
shapes come in left and right halves (``mouthSmile_L`` and ``_R``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .._gallery._facs import (
    AU_TO_ARKIT,
    BASIC,
    COMPOUND,
    Prototype,
    arkit_weights,
    combination_weights,
)
from .._va_space import validate_va
from ._deformation import eye_turn

__all__ = ["Target", "au_deformation", "au_weights", "emotions", "find_emotion", "parse_aus"]

VIA = ("bins", "prototype")


def emotions() -> tuple[Prototype, ...]:
    """The categories vafx synthesizes: the basic emotions and contempt, then Du et al.'s."""
    return BASIC + COMPOUND


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", str(name).strip().lower())


#: Everyday words for the basic categories.
ALIASES = {
    "happy": "happiness", "surprised": "surprise", "afraid": "fear", "fearful": "fear",
    "angry": "anger", "disgusted": "disgust", "sad": "sadness", "contemptuous": "contempt",
}  # fmt: skip


def find_emotion(name: str) -> Prototype:
    """The category called ``name`` (as in ``vafx synthesize --list-emotions``; ``_`` for spaces;
    the basic ones also by their adjectives: happy, sad, angry, ...).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    table = {_key(p.name): p for p in emotions()}
    key = _key(name)
    hit = table.get(ALIASES.get(key, key))
    if hit is None:
        known = ", ".join(p.name.replace(" ", "_") for p in emotions())
        raise ValueError(f"emotion: unknown category {name!r}; known: {known}")
    return hit


def parse_aus(specs) -> dict:
    """Action units from ``["12=0.8", "6=0.5", "12R=1"]`` (or a dict): {AU or (side, AU): intensity}.

    Raises:
        ValueError: a malformed entry, an AU the table does not know, an
            intensity outside [0, 1], or an AU given twice on one side.
    """
    if isinstance(specs, dict):
        items = [(k, v) for k, v in specs.items()]
    else:
        items = []
        for spec in specs:
            m = re.fullmatch(r"\s*(\d+)\s*([LRlr]?)\s*=\s*([-+0-9.eE]+)\s*", str(spec))
            if m is None:
                raise ValueError(
                    f"--au: expected AU=INTENSITY such as 12=0.8 or 12R=0.8, got {spec!r}"
                )
            au, side = int(m.group(1)), m.group(2).upper() or None
            try:
                value = float(m.group(3))
            except ValueError:
                raise ValueError(f"--au: {spec!r}: the intensity is not a number") from None
            items.append(((side, au) if side else au, value))
    out: dict = {}
    for key, value in items:
        side, au = key if isinstance(key, tuple) else (None, key)
        name = f"AU {au}{side or ''}"
        if au not in AU_TO_ARKIT:
            raise ValueError(
                f"--au: {name}: not in vafx's AU table (known: "
                f"{', '.join(str(a) for a in sorted(AU_TO_ARKIT))})"
            )
        if side not in (None, "L", "R"):
            raise ValueError(f"--au: {name}: the side is L or R")
        value = float(value)
        if not (np.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"--au: {name}: intensity {value} is outside [0, 1]")
        k = (side, au) if side else au
        if k in out:
            raise ValueError(f"--au: {name} given twice")
        out[k] = value
    if not out:
        raise ValueError("--au: no action units given")
    return out


def _check_sides(model, aus: dict) -> None:
    names = set(model.expression_names)
    for key in aus:
        if not isinstance(key, tuple):
            continue
        side, au = key
        split = [b for b in AU_TO_ARKIT[au] if f"{b}_L" in names and f"{b}_R" in names]
        if not split:
            shapes = ", ".join(AU_TO_ARKIT[au])
            raise ValueError(
                f"--au: AU {au}{side}: AU {au} ({shapes}) has no left and right halves in "
                f"model {model.name!r}; give it without a side"
            )


def au_weights(model, aus: dict) -> np.ndarray:
    """The model's expression weights float32[k_exp] in [0, 1] for AUs (see :func:`parse_aus`).

    Raises:
        ValueError: the model's expression shapes are not ARKit-named
            blendshapes (the Surrey model's six emotions are not AUs), or a
            side is asked of an AU that has none.
    """
    if model.expression_kind != "blendshapes" or "mouthSmile_L" not in model.expression_names:
        raise ValueError(
            f"action units need a model with ARKit-named expression blendshapes (the ICT "
            f"model); {model.name!r} has {model.expression_kind} expressions"
        )
    _check_sides(model, aus)
    # the ICT model's _R shapes are the subject's right (measured with dlib on the astronaut
    # and grace_hopper: mouthSmile_R raises iBUG landmark 48, the subject's right corner)
    names = tuple(model.expression_names)
    w = np.zeros(model.num_expressions, np.float32)
    for i, value in arkit_weights(aus, names, combine=False):
        w[i] += value
    # each shape within its range; then what a combination of AUs adds on top
    # (:data:`vafx._gallery._facs.COMBINATIONS`: in 1+4, a higher inner brow)
    w = np.clip(w, 0.0, 1.0)
    for i, value in combination_weights(aus, names):
        w[i] += value
    return w


def au_deformation(model, aus: dict) -> np.ndarray:
    """Vertex offsets float32[n, 3] (model units) of AUs on the model's mean face.

    The ICT model's expression shapes are identity-independent offsets, so the
    same offsets apply to any fitted face. A gaze (AU 63, 64) also turns the
    eyeballs (:func:`vafx._expression._deformation.eye_turn`).
    """
    w = au_weights(model, aus)
    basis = np.asarray(model.expression_basis, np.float32)
    std = np.asarray(model.expression_std, np.float32)
    d = np.tensordot(w * std, basis, 1).astype(np.float32)
    turn = eye_turn(model, w)  # AU 63 and 64 turn the eyeballs, not only the lids
    return d if turn is None else d + turn


class Target(NamedTuple):
    """One synthesis target: a V-A pair, an emotion category, or action units.

    Attributes:
        va: (valence, arousal) in [-1, 1], or None.
        emotion: a category name (:func:`emotions`), or None.
        aus: action units ({AU or (side, AU): intensity}, or ``["12=0.8"]``), or None.
        via: for an emotion, "bins" (its circumplex V-A through the bin
            models, the paper) or "prototype" (its FACS prototype on the model).
    """

    va: tuple[float, float] | None = None
    emotion: str | None = None
    aus: dict | None = None
    via: str = "bins"

    def checked(self) -> Target:
        """The target with its fields validated and normalised (a clear error otherwise)."""
        given = [self.va is not None, self.emotion is not None, self.aus is not None]
        if sum(given) != 1:
            raise ValueError("a target is one of: va, emotion or aus")
        if self.via not in VIA:
            raise ValueError(f"via: one of {VIA}, got {self.via!r}")
        if self.va is not None:
            va = np.asarray(validate_va(np.asarray(self.va, np.float32), "va"), np.float32)
            return self._replace(va=(float(va[0]), float(va[1])))
        if self.emotion is not None:
            return self._replace(emotion=find_emotion(self.emotion).name)
        return self._replace(aus=parse_aus(self.aus))

    def describe(self) -> dict:
        """JSON-ready record of the target for the sidecar."""
        if self.emotion is not None:
            p = find_emotion(self.emotion)
            return dict(emotion=p.name, via=self.via, source=p.source,
                        aus=_aus_json(p.aus), placement_va=list(p.va))  # fmt: skip
        if self.aus is not None:
            return dict(aus=_aus_json(self.aus))
        return dict(va=list(self.va))


def _aus_json(aus: dict) -> dict:
    out = {}
    for key, value in aus.items():
        side, au = key if isinstance(key, tuple) else ("", key)
        out[f"{au}{side}"] = round(float(value), 4)
    return out
