"""Default bin models: built once per face model from the default synthetic gallery, then cached.

``vafx synthesize`` and ``vafx augment`` without ``--bins``, and
:func:`default_bin_models` in Python, use them. On first use vafx generates
the default synthetic gallery (:class:`vafx.SynthConfig` defaults: 20
subjects, 42 prototypes, 20,160 frames; docs/gallery.md) as blend weights of
the model's expression shapes (the frames themselves, 2.3 GB for ICT, are never
made), computes every bin's expression (the per-coordinate median of its frames
at the size of its stronger frames: ``EXPRESSION``, ``SIZE_QUANTILE``,
``MAGNITUDE``) and median label, and saves them. The bins' SPLOCS blendshapes,
needed only to *sample* a bin (``--sample``), need every frame: the gallery is stored in a
temporary folder of the cache, fitted and deleted, when first asked for, and
takes minutes where the means take seconds.

Cache entries are keyed by the face model (name and template digest), the
gallery generator's version, the synthetic gallery's settings, the bin
settings, the vafx version and a digest of vafx's code, so nothing built by
other code or for another model is ever read. A build holds a lock file: a
second process that asks meanwhile waits for the first and then reads its
result; the result is written atomically, so an interrupted build leaves
nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .._compiled._programs import _code_digest
from .._io._atomic import scratch
from .._paths import cache_root
from .._version import __version__

log = logging.getLogger("vafx")

#: SPLOCS settings of the default blendshape models: ``vafx bins fit``'s defaults.
MIN_FRAMES = 10
#: The default bins' expression (issue 38): each bin's per-coordinate median deformation
#: (:func:`vafx.fit_bins` ``expression``), at the size of its stronger frames (the
#: ``SIZE_QUANTILE`` quantile of their sizes), scaled up by at most ``MAGNITUDE``.
EXPRESSION = "median"
SIZE_QUANTILE = 0.75
MAGNITUDE = 2.0


def _region(model) -> str | None:
    return "face" if "face" in model.regions else None


def _prototypes_digest() -> str:
    """A digest of the gallery's prototypes and AU table (:mod:`vafx._gallery._facs`)."""
    from .._gallery import _facs

    table = dict(
        au=sorted((au, sorted(shapes.items())) for au, shapes in _facs.AU_TO_ARKIT.items()),
        combinations=sorted((list(k), sorted(v.items())) for k, v in _facs.COMBINATIONS.items()),
        prototypes=[
            (p.name, sorted((str(k), v) for k, v in p.aus.items()), p.va) for p in _facs.ALL
        ],
    )
    return hashlib.sha256(json.dumps(table).encode()).hexdigest()[:16]


def _settings(model, splocs: bool) -> dict:
    from .._gallery._synth import GENERATOR, SynthConfig
    from .._model._template import template_from_model
    from ..kernels.splocs import SplocsParams

    gallery = SynthConfig(region=_region(model))
    return dict(
        model=model.name,
        template=template_from_model(model, gallery.region).digest(),
        generator=GENERATOR,
        # the prototypes' table itself, so that an edited table never reads a stale entry
        prototypes=_prototypes_digest(),
        gallery=dataclasses.asdict(gallery),
        splocs=SplocsParams()._asdict() if splocs else None,
        min_frames=MIN_FRAMES,
        magnitude=MAGNITUDE,
        expression=EXPRESSION,
        size_quantile=SIZE_QUANTILE,
        vafx=__version__,
        # the code itself: an edit to the generator or the bins' statistics that kept the
        # version and the settings read bins the old code had built (seen while editing)
        code=_code_digest(),
    )


def default_bins_path(model, *, splocs: bool = False) -> Path:
    """Where the default bin models of ``model`` are (or will be) cached.

    ``<cache>/bins/<model>-<key>/means.npz`` (or ``splocs.npz``), the key a
    digest of everything the models depend on (see the module docstring).
    """
    s = _settings(model, splocs=False)
    key = hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "bins" / f"{model.name}-{key}" / ("splocs.npz" if splocs else "means.npz")


@contextlib.contextmanager
def _locked(path: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a file beside the entry), waiting if another has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no inter-process lock
            yield
            return
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process that is building {path.parent.name}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


class _InMemoryGallery:
    """What :func:`vafx.synthesize_gallery` writes into when the frames need not be stored.

    A synthetic gallery's deformations (frame minus its sequence's neutral)
    are blends of the model's expression shapes: this keeps each frame's blend
    weights (53 numbers a frame for ICT, not 28,000: 4 MB for the default
    gallery, whose frames take 2.3 GB) and its V-A, and gives a bin's
    deformations back on request as weights @ shapes, so no mesh is ever
    computed (``synthesize_gallery``'s ``add_blend``). It stands in for the
    stored gallery in :func:`vafx.fit_bins` with ``splocs=False``, which asks
    for the template, the grid, the counts, the medians and each bin's
    deformations: the result equals that of the stored gallery up to float
    rounding (tested).
    """

    complete = False
    sequences_done = 0

    def __init__(self, template, fingerprint: str):
        from .._va_space import VAGrid

        self.template, self.grid = template, VAGrid(10)
        self.path = "default synthetic gallery (in memory)"
        self.manifest = dict(fingerprint=fingerprint)
        self._shapes: np.ndarray | None = None
        self._weights: list[np.ndarray] = []
        self._va: list[np.ndarray] = []
        self._bins: np.ndarray | None = None
        self.num_frames = self.num_sequences = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def skip(self, key: str) -> None:  # pragma: no cover - nothing is resumed
        pass

    def add(self, seq) -> None:
        raise TypeError("the in-memory default gallery takes blends (add_blend), not meshes")

    def add_blend(self, subject: str, name: str, weights, shapes, va) -> None:
        if self._shapes is None:
            self._shapes = np.asarray(shapes, np.float32)
        elif shapes is not self._shapes and not np.array_equal(shapes, self._shapes):
            raise ValueError(f"sequence {subject}/{name}: blends of other shapes than before")
        self._weights.append(np.asarray(weights, np.float32))
        self._va.append(np.asarray(va, np.float32).reshape(-1, 2))
        self.num_frames += len(va)
        self.num_sequences += 1

    def _gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, V-A, bin of every frame), joined once after the last sequence."""
        if self._bins is None or len(self._weights) > 1:
            self._weights, self._va = [np.concatenate(self._weights)], [np.concatenate(self._va)]
            self._bins = np.asarray(self.grid.bin_index(self._va[0])).reshape(-1)
        return self._weights[0], self._va[0], self._bins

    def counts(self) -> np.ndarray:
        return np.bincount(self._gathered()[2], minlength=self.grid.num_bins)

    def medians(self) -> np.ndarray:
        return np.asarray(self.grid.medians(self._gathered()[1])).reshape(-1, 2)

    def bin_deltas(self, b: int) -> np.ndarray:
        """float32[m, n, 3]: bin ``b``'s deformations, from their blend weights."""
        weights, _, bins = self._gathered()
        rows = weights[bins == b]
        return (rows @ self._shapes).reshape(len(rows), -1, 3)


def _log(msg: str) -> None:
    log.info("%s", msg)


def default_bin_models(
    model="ict",
    *,
    splocs: bool = False,
    report: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """The default bin models of a face model, built on first use and cached.

    Args:
        model: a :class:`vafx.MorphableModel`, or a model name or path for
            :func:`vafx.load_model`.
        splocs: also the bins' SPLOCS blendshapes (for sampling a bin; minutes
            to build on first use). Without, the bins' expressions and labels
            (all that synthesis from bin expressions needs; about 8 s on first
            use on a 2-core CPU).
        report: called with a line of text for each step of a build (or the
            wait for another process's build); default: the "vafx" logger.
        progress: called with (sequences done, total) while the gallery is
            generated, then (chunks done, total) while SPLOCS is fitted.

    Returns:
        :class:`vafx.BinModels`, on the model's face region ("face" where the
        model has one, else the whole mesh).
    """
    from .._gallery._synth import SynthConfig, synthesize_gallery
    from .._model._resolve import load_model
    from ._bins import fit_bins, load_bin_models, save_bin_models

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    say = report or _log
    path = default_bins_path(model, splocs=splocs)
    if path.exists():
        return load_bin_models(path)
    with _locked(path.parent / ".lock", say):
        if path.exists():  # built by the process we waited for
            return load_bin_models(path)
        t0 = time.perf_counter()
        what = "SPLOCS blendshapes (minutes)" if splocs else "bin expressions (seconds)"
        say(f"building the default bin models of {model.name}, {what}, once, into {path.parent}")
        # a folder per build: a killed build's leftovers are removed by the next
        gallery_dir = path.parent / "gallery.tmp"
        shutil.rmtree(gallery_dir, ignore_errors=True)
        try:
            cfg = SynthConfig(region=_region(model))
            say(f"generating the default synthetic gallery ({cfg.subjects} subjects)")
            if splocs:  # SPLOCS needs every frame: a stored gallery, deleted after
                with scratch():  # no fsync per file
                    g = synthesize_gallery(gallery_dir, model, cfg, progress=progress)
            else:  # the means need only sums per bin
                g = synthesize_gallery(gallery_dir, model, cfg, progress=progress,
                                       writer=_InMemoryGallery)  # fmt: skip
            say(f"{g.num_frames} frames in {g.num_sequences} sequences; fitting the bins")
            models = fit_bins(g, min_frames=MIN_FRAMES, splocs=splocs, magnitude=MAGNITUDE,
                              expression=EXPRESSION, size_quantile=SIZE_QUANTILE,
                              progress=progress if splocs else None)  # fmt: skip
            models.meta["gallery"] = f"default synthetic gallery of {model.name} (not kept)"
            models.meta["default"] = _settings(model, splocs)
            save_bin_models(path, models)
        finally:
            shutil.rmtree(gallery_dir, ignore_errors=True)
        say(f"default bin models ready in {time.perf_counter() - t0:.0f} s: {path}")
        return models
