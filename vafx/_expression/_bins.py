"""The 100 per-bin expression models (the paper's section 3.3).

For every V-A bin: the mean deformation of its frames (the expression used for
synthesis; or their per-coordinate median, ``fit_bins(expression="median")``, as
vafx's default bins use), the median V-A of its frames (its label), and a SPLOCS blendshape
model of the frames' deviations from that mean (components, and the statistics
of the frames' weights, for sampling new expressions).

Fitting runs all bins through one vmapped, jit-compiled SPLOCS call per chunk:
bins are sorted by frame count, padded to a power-of-two frame bucket, grouped
so that a chunk's arrays stay within ``chunk_bytes``, and a chunk's last group
padded with empty (fully masked) bins so that every bucket compiles once.

Bins with fewer than ``min_frames`` frames get their mean only (status
MEAN_ONLY); empty bins get the inverse-distance-weighted mean of the nearest
bins that have data (status INTERPOLATED) and their bin centre as label. Both
are reported by :func:`fit_bins` and stored per bin, never silent.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DataFileError
from .._io._atomic import atomic_path
from .._version import __version__
from ..kernels.splocs import Geodesics, SplocsParams, geodesic_table, splocs_fit

log = logging.getLogger("vafx")

FITTED, MEAN_ONLY, INTERPOLATED = 0, 1, 2
#: How a bin's frames make its expression (:func:`fit_bins` ``expression``).
BIN_EXPRESSIONS = ("mean", "median")
STATUS_NAMES = ("fitted", "mean only", "interpolated")
FORMAT = "vafx-bin-models"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class BinModels:
    """Per-bin expression models; arrays are numpy, indexed by bin (VAGrid numbering).

    Attributes:
        means: float32[B, n, 3], mean deformation per bin (template units).
        components: float32[B, K, n, 3], SPLOCS components (template units;
            weights are normalized to max |w| = 1).
        weight_mean, weight_std, weight_min, weight_max: float32[B, K],
            statistics of the bin's frames' weights.
        labels: float32[B, 2], median V-A (bin centre for interpolated bins).
        counts: int64[B], frames per bin in the gallery.
        fitted_frames: int64[B], frames the SPLOCS model was fitted on.
        status: int8[B], FITTED, MEAN_ONLY or INTERPOLATED.
        objective: float32[B, iters + 1] SPLOCS objective history (NaN: none).
        residual: float32[B, iters + 1] relative residual history.
        vertex_ids: int32[n] or None, template vertices in the source model.
        meta: template digest, units, model, region, grid, parameters.
    """

    means: np.ndarray
    components: np.ndarray
    weight_mean: np.ndarray
    weight_std: np.ndarray
    weight_min: np.ndarray
    weight_max: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    fitted_frames: np.ndarray
    status: np.ndarray
    objective: np.ndarray
    residual: np.ndarray
    vertex_ids: np.ndarray | None
    meta: dict

    @property
    def num_bins(self) -> int:
        return int(self.means.shape[0])

    @property
    def grid(self):
        from .._va_space import VAGrid

        return VAGrid(int(self.meta["grid"]))

    def summary(self) -> list[str]:
        """One line per bin with data, plus a count of the rest."""
        lines = []
        for b in range(self.num_bins):
            if self.status[b] == INTERPOLATED:
                continue
            res = self.residual[b][np.isfinite(self.residual[b])]
            lines.append(
                f"bin {b:3d}  V-A ({self.labels[b, 0]:+.2f}, {self.labels[b, 1]:+.2f})  "
                f"{self.counts[b]:7d} frames  {STATUS_NAMES[self.status[b]]:<10s}"
                + (f"  residual {res[-1]:.3f}" if len(res) else "")
            )
        n_int = int((self.status == INTERPOLATED).sum())
        n_mean = int((self.status == MEAN_ONLY).sum())
        why = (
            f"fewer than {self.meta['min_frames']} frames"
            if self.meta.get("splocs", True)
            else "means only were asked for"
        )
        lines.append(
            f"{int((self.status == FITTED).sum())} bins fitted, {n_mean} mean only ({why}), "
            f"{n_int} empty bins interpolated from their nearest neighbours"
        )
        return lines


def _median_frames(d: np.ndarray) -> np.ndarray:
    """float32[n, 3]: the per-coordinate median of frames ``d`` float32[m, n, 3].

    As ``np.median(d, axis=0)``, bit for bit (the mean of the two middle values when m
    is even), but by sorting each coordinate's m values in a contiguous row: numpy's
    vectorized sort is 3 times faster than the strided partition ``np.median`` runs.
    """
    m = len(d)
    rows = np.ascontiguousarray(d.reshape(m, -1).T)  # [3 n, m]
    rows.sort(axis=1)
    return (0.5 * (rows[:, (m - 1) // 2] + rows[:, m // 2])).reshape(d.shape[1:])


def _bucket(m: int) -> int:
    return max(32, 1 << math.ceil(math.log2(max(m, 1))))


def _interpolate_empty(means, labels, status, grid):
    """Inverse-square-distance mean of the 4 nearest bins with data, for each empty bin.

    Equally near bins are taken in the order of their numbers.
    """
    centres = np.array(grid.centres())
    have = np.nonzero(status != INTERPOLATED)[0]
    if len(have) == 0:
        raise ValueError("the gallery has no expression frames: nothing to fit")
    for b in np.nonzero(status == INTERPOLATED)[0]:
        d2 = ((centres[have] - centres[b]) ** 2).sum(axis=1)
        near = have[np.argsort(d2, kind="stable")[:4]]
        w = 1.0 / ((centres[near] - centres[b]) ** 2).sum(axis=1)
        means[b] = np.tensordot(w / w.sum(), means[near], 1)
        labels[b] = centres[b]


def _bin_mesh(devices):
    """A 1-D mesh ``("bins",)`` over the devices, or None for one device."""
    from jax.sharding import Mesh

    if isinstance(devices, Mesh):
        if devices.devices.ndim != 1:
            raise ValueError(f"devices: a 1-D mesh, got axes {devices.axis_names}")
        mesh = Mesh(devices.devices, ("bins",))
    else:
        devs = list(jax.local_devices() if devices is None else devices)
        if not devs:
            raise ValueError("devices: none given")
        mesh = Mesh(np.array(devs), ("bins",))
    return None if mesh.size == 1 else mesh


def fit_bins(
    gallery,
    params: SplocsParams = SplocsParams(),
    *,
    support: tuple[float, float] | None = (0.04, 0.2),
    min_frames: int = 10,
    max_frames: int = 2000,
    chunk_bytes: int = 1 << 30,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    splocs: bool = True,
    devices=None,
    magnitude: float | None = None,
    expression: str = "mean",
    size_quantile: float | None = None,
) -> BinModels:
    """Fit the per-bin models of a gallery.

    Args:
        gallery: a :class:`vafx.Gallery`.
        params: SPLOCS settings (see :class:`vafx.kernels.splocs.SplocsParams`).
        support: (d_min, d_max) of the local supports as fractions of the
            template's bounding-box diagonal, replacing ``params``'s absolute
            values (None keeps those).
        min_frames: bins with fewer frames get their mean only.
        max_frames: bins with more frames fit SPLOCS on a random subset of
            this many (the mean uses every frame); bounds memory and time.
        chunk_bytes: memory budget of one vmapped chunk of bins.
        seed: seed of the subsets.
        progress: called with (chunks done, chunks).
        splocs: False: the bins' means and labels only (status MEAN_ONLY for
            every bin with data), in seconds; all that synthesis from bin means
            needs, without sampling (``SynthesisConfig(sample=True)``).
        devices: the devices that share each chunk of bins (a list of
            ``jax.Device``, or a 1-D ``jax.sharding.Mesh``); None: all local
            devices. With D devices a chunk's bins are split D ways along the
            vmapped axis (``NamedSharding`` over a mesh axis ``"bins"``) and
            padded to a multiple of D (the padding repeats the chunk's last bin
            and is dropped). One device: exactly the single-device program.
        magnitude: None: each bin's expression as ``expression`` makes it (the
            paper: the mean). A number g >= 1: its direction at the frames'
            typical size, scaled by s / |e| (e the bin's expression, s the
            frames' typical size |d_i|, see ``size_quantile``), at most g. A
            bin that mixes expressions (anger, fear and disgust in one bin)
            loses much of each to the averaging (a factor 1.7 on the default
            gallery's negative high-arousal bins); the scaled expression shows
            as strongly as the bin's frames do. Labels are unchanged;
            ``meta["magnitude"]`` records it.
        expression: "mean": each bin's expression is the mean of its frames'
            deformations (the paper). "median": their per-coordinate median, a
            consensus: where frames of antagonistic expressions share a bin
            (brows raised in surprise, lowered in tension, at (0.1, 0.7)) the
            mean cancels them into a faint blend of both, the median keeps
            what most frames do and drops what a minority does. Every frame
            counts either way, so the label (their median V-A) is the same.
            SPLOCS models the frames' deviations from their mean either way.
        size_quantile: the frames' typical size for ``magnitude``: None, the
            mean of |d_i|; a number q in (0, 1], their q-quantile (0.75: the
            size of the bin's stronger frames, nearer its sequences' apexes
            than its onsets).

    Returns:
        :class:`BinModels`.
    """
    t = gallery.template
    n = t.num_vertices
    grid = gallery.grid
    nb = grid.num_bins
    k = params.num_components if splocs else 0  # means only: no components to store
    if support is not None:
        diag = float(np.linalg.norm(t.vertices.max(axis=0) - t.vertices.min(axis=0)))
        params = params._replace(support_min=support[0] * diag, support_max=support[1] * diag)
    counts = gallery.counts()
    if counts.sum() == 0:
        raise ValueError(f"{gallery.path}: the gallery has no expression frames")
    labels = np.array(gallery.medians(), np.float32)
    means = np.zeros((nb, n, 3), np.float32)
    comps = np.zeros((nb, k, n, 3), np.float32)
    wstats = np.zeros((4, nb, k), np.float32)
    fitted = np.zeros(nb, np.int64)
    status = np.where(
        counts == 0,
        INTERPOLATED,
        np.where((counts < min_frames) | (not splocs), MEAN_ONLY, FITTED),
    )
    objective = np.full((nb, params.num_iters + 1), np.nan, np.float32)
    residual = np.full((nb, params.num_iters + 1), np.nan, np.float32)
    if splocs:
        geo = geodesic_table(t.vertices, t.faces, params.support_max)
        graph = Geodesics(jnp.asarray(geo.neighbours), jnp.asarray(geo.distances))
    rng = np.random.default_rng(seed)

    if magnitude is not None and not magnitude >= 1:
        raise ValueError(f"magnitude: None or a factor >= 1, got {magnitude}")
    if expression not in BIN_EXPRESSIONS:
        raise ValueError(f"expression: one of {BIN_EXPRESSIONS}, got {expression!r}")
    if size_quantile is not None and not 0 < size_quantile <= 1:
        raise ValueError(f"size_quantile: None or a number in (0, 1], got {size_quantile}")
    gains = np.ones(nb, np.float64)

    def express(b: int, d: np.ndarray, mu: np.ndarray | None = None) -> None:
        # the bin's expression, then its gain: the expression at its frames' typical size
        if expression == "median":
            means[b] = _median_frames(d)
        else:
            means[b] = d.mean(axis=0) if mu is None else mu
        if magnitude is None or counts[b] == 0:
            return
        rows = d.reshape(len(d), -1)
        sizes = np.sqrt(np.einsum("ij,ij->i", rows, rows).astype(np.float64))
        typical = sizes.mean() if size_quantile is None else np.quantile(sizes, size_quantile)
        norm = float(np.linalg.norm(means[b].astype(np.float64)))
        gains[b] = min(max(float(typical) / norm, 1.0), magnitude) if norm > 0 else 1.0

    # bins are independent: their medians (numpy releases the GIL) run two at a time while
    # the next bin's frames are read here; at most three bins' frames are held at once
    with ThreadPoolExecutor(2) as pool:
        pending: list = []
        for b in np.nonzero(status == MEAN_ONLY)[0]:
            pending.append(pool.submit(express, int(b), gallery.bin_deltas(int(b))))
            if len(pending) == 2:
                pending.pop(0).result()
        for f in pending:
            f.result()

    todo = sorted(np.nonzero(status == FITTED)[0].tolist(), key=lambda b: -counts[b])
    per_frame = n * 3 * 4 * 3  # data, masked copy, products
    groups: list[tuple[int, list[int]]] = []
    by_bucket: dict[int, list[int]] = {}
    for b in todo:
        by_bucket.setdefault(_bucket(min(int(counts[b]), max_frames)), []).append(b)
    for fb, bins in sorted(by_bucket.items(), reverse=True):
        size = max(1, min(len(bins), chunk_bytes // (fb * per_frame + k * n * 3 * 4 * 8)))
        for i in range(0, len(bins), size):
            groups.append((fb, bins[i : i + size], size))
    # the graph is an argument, not a closed-over constant: baked into the program it made
    # each compiled executable 240 MB (ICT), slow to compile and to read from the cache
    fit = jax.jit(jax.vmap(splocs_fit, in_axes=(0, 0, None, None)), static_argnums=3)
    mesh = _bin_mesh(devices)
    nd = 1 if mesh is None else mesh.size
    for gi, (fb, bins, size) in enumerate(groups):
        size = -(-size // nd) * nd  # a multiple of the devices
        x = np.zeros((size, fb, n, 3), np.float32)
        mask = np.zeros((size, fb), bool)
        scales = np.ones(size, np.float32)
        for j, b in enumerate(bins):
            d = gallery.bin_deltas(int(b))
            mu = d.mean(axis=0, dtype=np.float64).astype(np.float32)
            express(int(b), d, mu)
            if len(d) > max_frames:
                d = d[np.sort(rng.choice(len(d), max_frames, replace=False))]
            m = len(d)
            x[j, :m] = d - mu
            rms = float(np.sqrt(np.mean(x[j, :m].astype(np.float64) ** 2)))
            scales[j] = rms if rms > 0 else 1.0
            x[j, :m] /= scales[j]
            mask[j, :m] = True
            fitted[b] = m
        if len(bins) < size:  # padding: the last bin again (discarded below)
            x[len(bins) :], mask[len(bins) :] = x[len(bins) - 1], mask[len(bins) - 1]
        if mesh is None:
            state = jax.device_get(fit(jnp.asarray(x), jnp.asarray(mask), graph, params))
        else:
            from jax.sharding import NamedSharding, PartitionSpec

            spread = NamedSharding(mesh, PartitionSpec("bins"))
            state = jax.device_get(
                fit(jax.device_put(x, spread), jax.device_put(mask, spread), graph, params)
            )
        for j, b in enumerate(bins):
            comps[b] = state.components[j] * scales[j]
            w = state.weights[j][mask[j]]
            wstats[:, b] = [w.mean(0), w.std(0), w.min(0), w.max(0)]
            objective[b] = state.objective[j]
            residual[b] = state.residual[j]
            if not np.isfinite(state.objective[j]).all():
                raise FloatingPointError(f"bin {b}: SPLOCS produced non-finite values")
        if progress is not None:
            progress(gi + 1, len(groups))
    means *= gains[:, None, None].astype(np.float32)  # SPLOCS above ran on the plain mean
    _interpolate_empty(means, labels, status, grid)
    for b in np.nonzero(status != FITTED)[0]:
        log.info("bin %d: %s (%d frames)", b, STATUS_NAMES[status[b]], counts[b])
    meta = dict(
        format=FORMAT,
        version=FORMAT_VERSION,
        vafx=__version__,
        template_digest=t.digest(),
        vertices=n,
        units=t.units,
        model=t.model,
        region=t.region,
        grid=grid.n,
        params=params._asdict(),
        min_frames=min_frames,
        max_frames=max_frames,
        splocs=bool(splocs),
        seed=seed,
        magnitude=magnitude,
        expression=expression,
        size_quantile=size_quantile,
        gallery=str(gallery.path),
        gallery_fingerprint=gallery.manifest.get("fingerprint", ""),
    )
    return BinModels(
        means, comps, *wstats, labels, counts.astype(np.int64), fitted, status.astype(np.int8),
        objective, residual, t.vertex_ids, meta,
    )  # fmt: skip


_ARRAYS = (
    "means", "components", "weight_mean", "weight_std", "weight_min", "weight_max",
    "labels", "counts", "fitted_frames", "status", "objective", "residual",
)  # fmt: skip
_COMPONENT_ARRAYS = ("components", "weight_mean", "weight_std", "weight_min", "weight_max")


def save_bin_models(path: str | os.PathLike, models: BinModels) -> Path:
    """Write one versioned, compressed .npz (sparse components compress well), atomically."""
    path = Path(path)
    arrays = {name: getattr(models, name) for name in _ARRAYS}
    if models.vertex_ids is not None:
        arrays["vertex_ids"] = models.vertex_ids
    arrays["__meta__"] = np.frombuffer(json.dumps(models.meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def load_bin_models(path: str | os.PathLike, *, components: bool = True) -> BinModels:
    """Read a file written by :func:`save_bin_models` (no gallery needed).

    Args:
        path: the .npz file.
        components: False skips the SPLOCS components and weight statistics
            (most of a fitted file's size and of its reading time; synthesis
            from bin means does not use them): they come back with 0
            components, and sampling a bin says so.
    """
    path = Path(path)
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            if meta.get("format") != FORMAT:
                raise DataFileError(path, "not a vafx bin-models file")
            if meta.get("version", 0) > FORMAT_VERSION:
                raise DataFileError(
                    path, f"format version {meta['version']} is newer than this vafx"
                )
            skip = () if components else _COMPONENT_ARRAYS
            arrays = {name: z[name] for name in _ARRAYS if name not in skip}
            if not components:
                nb = len(arrays["means"])
                arrays["components"] = np.zeros((nb, 0, *arrays["means"].shape[1:]), np.float32)
                for name in _COMPONENT_ARRAYS[1:]:
                    arrays[name] = np.zeros((nb, 0), np.float32)
            vids = z["vertex_ids"] if "vertex_ids" in z else None
    except DataFileError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataFileError(
            path, f"not a readable vafx bin-models file, truncated or corrupt ({e})"
        ) from None
    for name in ("means", "labels", "components"):
        if not np.isfinite(arrays[name]).all():
            raise DataFileError(path, f"its bin {name} hold NaN or infinite values")
    return BinModels(**arrays, vertex_ids=vids, meta=meta)


def bin_expression(
    models: BinModels,
    target,
    *,
    sample: bool = False,
    key: jax.Array | None = None,
    intensity: float = 1.0,
) -> np.ndarray:
    """An expression deformation from a bin (the paper's "synthetic face minus template").

    Args:
        models: :class:`BinModels`.
        target: a bin number, or a (valence, arousal) pair whose bin is used.
        sample: draw weights w_k ~ N(mean_k, std_k), clipped to the bin's
            observed [min_k, max_k], and return mean + sum_k w_k C_k (an unseen
            expression of the bin) instead of the mean.
        key: PRNG key for ``sample``.
        intensity: multiplies the deformation.

    Returns:
        float32[n, 3] deformation in template units.
    """
    if isinstance(target, (int, np.integer)):
        b = int(target)
        if not 0 <= b < models.num_bins:
            raise ValueError(f"bin {b} is outside 0..{models.num_bins - 1}")
    else:
        from .._va_space import validate_va

        b = int(models.grid.bin_index(validate_va(np.asarray(target, np.float32), "target")))
    d = models.means[b].copy()
    if sample:
        if models.components.shape[1] == 0:
            raise ValueError(
                "these bin models hold bin means only (no SPLOCS blendshapes) and cannot be "
                "sampled: fit them with `vafx bins fit` without --means-only, or use the "
                "default models with --sample (vafx.default_bin_models(model, splocs=True))"
            )
        if key is None:
            raise ValueError("sample=True needs a PRNG key")
        z = np.asarray(jax.random.normal(key, (models.components.shape[1],)))
        w = np.clip(
            models.weight_mean[b] + z * models.weight_std[b],
            models.weight_min[b],
            models.weight_max[b],
        )
        d = d + np.tensordot(w, models.components[b], 1)
    return (intensity * d).astype(np.float32)
