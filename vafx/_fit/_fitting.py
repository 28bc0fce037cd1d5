"""Fitting a morphable model to a photo's 68 iBUG landmarks (the paper's section 3.4, step 1).

Damped Gauss-Newton (:mod:`vafx.kernels.gauss_newton`) over pose, identity and
expression, with the model's priors: identity coefficients are standardised
(prior N(0, 1)); blendshape weights have a ridge prior and stay in [0, 1]; PCA
expression coefficients are N(0, 1). Rotations are updated multiplicatively
through the SO(3) exponential map, so there is no gimbal lock.

Face-contour landmarks (iBUG 1-8 and 10-17, 0-based 0-7 and 9-16) have no fixed
vertex: before every iteration each is matched to the nearest point of the
model's contour chain on its side, a polyline through the chain's projected
vertices (eos matches the nearest vertex; the polyline removes the
discretization error of sparse chains). Matching to the nearest point can only
lower the cost, and steps are accepted only when they lower it,
so the recorded cost never increases.

Cameras: ``"orthographic"`` (scaled orthographic, the default, as eos) and
``"perspective"`` (pinhole with a given focal length in pixels). Pose starts
from a closed-form affine fit of the mean shape's fixed landmarks.

Everything for one image is pure and jit-compiled; :func:`fit_landmarks` takes
one set of landmarks or a batch and vmaps.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._compiled._programs import persistent
from .._errors import FitError
from .._model._morphable import CONTOUR_LANDMARKS_LEFT, CONTOUR_LANDMARKS_RIGHT, MorphableModel
from ..kernels.camera import affine_camera, project_orthographic, project_perspective, so3_exp
from ..kernels.gauss_newton import levenberg_marquardt

__all__ = [
    "Fit",
    "FitConfig",
    "check_fits",
    "check_landmarks",
    "fit_landmarks",
    "fitted_vertices",
    "image_vertices",
]

#: How far outside the photo a landmark may lie, as a fraction of the photo's
#: larger side (faces cut by the frame keep their predicted chin or brow).
OUTSIDE_MARGIN = 0.25
#: A fit fails when its mean landmark error exceeds this fraction of the
#: inter-ocular distance (outer eye corners, the 300-W normalization). Good fits
#: of dlib landmarks on the shipped photos are near 0.02; 0.08 is where the
#: landmark literature counts a detection as failed.
MAX_FIT_ERROR = 0.08
_EYE_CORNERS = (36, 45)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Static settings of :func:`fit_landmarks`.

    Attributes:
        camera: "orthographic" or "perspective".
        iters: Gauss-Newton iterations.
        num_identity: identity modes to fit (None: all).
        fit_expression: also fit expression coefficients.
        sigma: landmark noise as a fraction of the landmarks' bounding-box
            diagonal; weighs the data against the priors (smaller: closer fit,
            more caricature).
        expression_prior: ridge weight on blendshape weights. 10 keeps the fitted
            expression to what the landmarks need: on scikit-image's astronaut and
            matplotlib's grace_hopper, 1.0 saturated cheekPuff and eyeWide at 1 for
            0.73 / 1.35 px mean landmark error, 10 gives 0.74 / 1.40 px with no weight
            above 0.76 (what expression replacement takes out of a photo).
        focal: focal length in pixels for "perspective" (None: the image's
            larger side x 1.5, about a 50 mm lens on full frame).
        contour: match face-contour landmarks to the contour chains (else
            use the model's fixed contour vertices where it has them).
        robust: scale of the Cauchy loss on each landmark's residual, in units
            of ``sigma`` (None: plain least squares). 10 leaves good fits
            almost as they are (residuals of a few pixels keep over 90% of
            their weight) and makes one landmark placed far from the face pull
            the fit by a small fraction of what it pulls with least squares
            (docs/reliability.md gives the figures).
    """

    camera: str = "orthographic"
    iters: int = 30
    num_identity: int | None = None
    fit_expression: bool = True
    sigma: float = 0.005
    expression_prior: float = 10.0
    focal: float | None = None
    contour: bool = True
    robust: float | None = 10.0

    def __post_init__(self):
        if self.camera not in ("orthographic", "perspective"):
            raise ValueError(f"camera: 'orthographic' or 'perspective', got {self.camera!r}")
        if self.iters < 1:
            raise ValueError("iters must be at least 1")
        if self.robust is not None and not self.robust > 0:
            raise ValueError(f"robust: a positive scale or None, got {self.robust}")


class Fit(NamedTuple):
    """A fitted face (one image; batched fits carry a leading axis).

    Attributes:
        identity: float[k_id] standardised identity coefficients.
        expression: float[k_exp] expression coefficients.
        rotation: float[3, 3] model-to-camera rotation.
        translation: float[3]: orthographic: (tx, ty, 0) pixels; perspective:
            model units in camera space.
        scale: orthographic pixels per model unit; perspective: the focal length.
        principal: float[2] principal point (perspective), pixels.
        landmarks: float[68, 2] projected model landmarks, pixels.
        residuals: float[68] pixel distance to the given landmarks (NaN where
            a landmark was missing or the model has no vertex for it).
        vertices: int32[68] model vertex used for each landmark (-1 none).
        cost: float[iters + 1] cost history (never increases).
    """

    identity: jax.Array
    expression: jax.Array
    rotation: jax.Array
    translation: jax.Array
    scale: jax.Array
    principal: jax.Array
    landmarks: jax.Array
    residuals: jax.Array
    vertices: jax.Array
    cost: jax.Array


class _Tables(dict):
    """Static index tables (hashable, so they can be a static jit argument)."""

    def __hash__(self):
        return hash(
            tuple(
                (k, tuple(np.ravel(v).tolist()) if isinstance(v, np.ndarray) else v)
                for k, v in sorted(self.items())
            )
        )

    def __eq__(self, other):
        return hash(self) == hash(other)


def _cauchy_factor(sq, c):
    """sqrt(rho(s) / s) for the Cauchy loss rho(s) = c^2 log(1 + s / c^2): float[...].

    Scaling a residual vector of squared norm ``s`` by it turns its square
    into ``rho(s)``, so Gauss-Newton on the scaled residuals minimizes the
    robust cost. Smooth at 0 (value 1), where the ratio is taken by its series.
    """
    u = sq / (c * c)
    small = u < 1e-4
    safe = jnp.where(small, 1.0, u)
    return jnp.sqrt(jnp.where(small, 1.0 - u / 2, jnp.log1p(safe) / safe))


def _setup(model: MorphableModel, config: FitConfig) -> _Tables:
    """Static index tables: the vertex subset the fit needs (numpy)."""
    lm = np.asarray(model.landmarks, np.int64).copy()
    right = np.asarray(model.contour_right, np.int64)
    left = np.asarray(model.contour_left, np.int64)
    use_contour = config.contour and len(right) > 0 and len(left) > 0
    contour_ids = list(CONTOUR_LANDMARKS_RIGHT) + list(CONTOUR_LANDMARKS_LEFT)
    if use_contour:
        lm[contour_ids] = -1
    fixed_valid = lm >= 0
    subset = (
        np.concatenate([np.where(fixed_valid, lm, 0), right, left])
        if use_contour
        else np.where(fixed_valid, lm, 0)
    )
    return _Tables(
        subset=subset,
        fixed_valid=fixed_valid,
        use_contour=use_contour,
        n_right=len(right),
        n_left=len(left),
        right=np.asarray(CONTOUR_LANDMARKS_RIGHT),
        left=np.asarray(CONTOUR_LANDMARKS_LEFT),
        model_vertex=np.concatenate([np.where(fixed_valid, lm, -1)]),
    )


def _fit_one(model, tables, config, kid, landmarks, size):
    """One image: landmarks float[68, 2] (NaN missing), size float[2] (height, width)."""
    dt = model.mean.dtype
    sub = jnp.asarray(tables["subset"])
    mean = model.mean[sub]
    idb = (model.identity_basis[:kid] * model.identity_std[:kid, None, None])[:, sub]
    ke = model.num_expressions if config.fit_expression else 0
    exb = (model.expression_basis[:ke] * model.expression_std[:ke, None, None])[:, sub]
    blend = model.expression_kind == "blendshapes"
    given = jnp.all(jnp.isfinite(landmarks), axis=1)
    x2 = jnp.where(given[:, None], landmarks, 0.0)
    fixed = jnp.asarray(tables["fixed_valid"]) & given
    ext = jnp.max(x2, axis=0, where=given[:, None], initial=-jnp.inf) - jnp.min(
        x2, axis=0, where=given[:, None], initial=jnp.inf
    )
    sigma = config.sigma * jnp.sqrt(jnp.sum(ext * ext))
    h, w = size[0], size[1]
    perspective = config.camera == "perspective"
    focal = jnp.asarray(config.focal if config.focal is not None else 1.5 * jnp.maximum(h, w), dt)
    centre = jnp.stack([(w - 1) / 2, (h - 1) / 2]).astype(dt)
    n_fixed = 68
    nr = tables["n_right"]
    use_contour = tables["use_contour"]
    contour_lms = (
        np.concatenate([tables["right"], tables["left"]]) if use_contour else np.zeros(0, int)
    )

    def shape(alpha, beta):
        v = mean + jnp.tensordot(alpha, idb, 1)
        return v + jnp.tensordot(beta, exb, 1) if ke else v

    def project(p, v):
        if perspective:
            return project_perspective(v, p["R"], p["t"], focal, centre)[0]
        return project_orthographic(v, p["R"], p["t"][:2], p["s"])

    def lm_points(p, v):
        """Projected model point of every landmark: fixed vertices, contour matches on the chains."""
        pts = v[:n_fixed]
        if use_contour:
            a, b, t = v[p["match"]], v[p["match"] + 1], p["match_t"][:, None]
            pts = pts.at[contour_lms].set((1 - t) * a + t * b)
        return project(p, pts)

    lm_valid = fixed
    if use_contour:
        lm_valid = lm_valid.at[contour_lms].set(given[contour_lms])

    def nearest_on_chain(x, chain_uv, offset):
        """Closest point of a projected polyline to each 2D point: (segment start row, t)."""
        a, b = chain_uv[:-1], chain_uv[1:]
        ab = b - a
        t = (
            jnp.sum((x[:, None] - a[None]) * ab[None], -1)
            / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12)[None]
        )
        t = jnp.clip(t, 0.0, 1.0)
        d = jnp.sum((x[:, None] - (a[None] + t[..., None] * ab[None])) ** 2, -1)
        j = jnp.argmin(d, axis=1)
        return (offset + j).astype(jnp.int32), jnp.take_along_axis(t, j[:, None], 1)[:, 0]

    def refresh(p):
        if not use_contour:
            return p
        proj = project(p, shape(p["alpha"], p["beta"])[n_fixed:])
        jr, tr = nearest_on_chain(x2[tables["right"]], proj[:nr], n_fixed)
        jl, tl = nearest_on_chain(x2[tables["left"]], proj[nr:], n_fixed + nr)
        return {**p, "match": jnp.concatenate([jr, jl]), "match_t": jnp.concatenate([tr, tl])}

    n_pose = 6  # rotation 3, then t 3 (perspective) or t 2 and log scale 1 (orthographic)
    n_params = n_pose + kid + ke

    def unpack(p, delta):
        r = p["R"] @ so3_exp(delta[:3])
        if perspective:
            t, s = p["t"] + delta[3:6], p["s"]
        else:
            t = p["t"] + jnp.concatenate([delta[3:5], jnp.zeros(1, dt)])
            s = p["s"] * jnp.exp(delta[5])
        alpha = p["alpha"] + delta[6 : 6 + kid]
        beta = p["beta"] + delta[6 + kid :]
        return r, t, s, alpha, beta

    def residual(delta, p):
        r, t, s, alpha, beta = unpack(p, delta)
        q = {**p, "R": r, "t": t, "s": s}
        uv = lm_points(q, shape(alpha, beta))
        e = jnp.where(lm_valid[:, None], (uv - x2) / sigma, 0.0)
        if config.robust is not None:
            e = e * _cauchy_factor(jnp.sum(e * e, axis=1), config.robust)[:, None]
        res = e.reshape(-1)
        prior_b = jnp.sqrt(config.expression_prior) * beta if blend else beta
        return jnp.concatenate([res, alpha, prior_b])

    def retract(p, delta):
        r, t, s, alpha, beta = unpack(p, delta)
        if blend and ke:
            beta = jnp.clip(beta, 0.0, 1.0)
        return {**p, "R": r, "t": t, "s": s, "alpha": alpha, "beta": beta}

    # closed-form start from the mean shape's fixed landmarks
    rows = jnp.arange(n_fixed)
    r0, t0, s0 = affine_camera(mean[rows], x2, fixed.astype(dt))
    if config.robust is not None:
        # reweighted: a landmark far from where the others put the face does not set the pose
        for _ in range(3):
            e = (project_orthographic(mean[rows], r0, t0, s0) - x2) / sigma
            wr = fixed.astype(dt) * _cauchy_factor(jnp.sum(e * e, axis=1), config.robust) ** 2
            r0, t0, s0 = affine_camera(mean[rows], x2, wr.astype(dt))
    if perspective:
        d = focal / s0
        tt = jnp.stack([(t0[0] - centre[0]) / s0, -(t0[1] - centre[1]) / s0, -d])
        p0 = {"R": r0, "t": tt.astype(dt), "s": s0}
    else:
        p0 = {"R": r0, "t": jnp.concatenate([t0, jnp.zeros(1, dt)]), "s": s0}
    p0.update(
        alpha=jnp.zeros(kid, dt),
        beta=jnp.zeros(ke, dt),
        match=jnp.zeros(len(contour_lms), jnp.int32) + n_fixed,
        match_t=jnp.zeros(len(contour_lms), dt),
    )
    inf = jnp.full((n_pose + kid,), jnp.inf, dt)

    def bounds(p):  # blendshape weights stay in [0, 1]
        if not (blend and ke):
            return -jnp.concatenate([inf, jnp.full(ke, jnp.inf, dt)]), jnp.concatenate(
                [inf, jnp.full(ke, jnp.inf, dt)]
            )
        return jnp.concatenate([-inf, -p["beta"]]), jnp.concatenate([inf, 1.0 - p["beta"]])

    res = levenberg_marquardt(
        residual, retract, refresh(p0), n_params, config.iters, refresh=refresh, bounds=bounds
    )
    p = res.point
    uv = lm_points(p, shape(p["alpha"], p["beta"]))
    dist = jnp.where(lm_valid, jnp.sqrt(jnp.sum((uv - x2) ** 2, -1)), jnp.nan)
    verts = jnp.asarray(tables["model_vertex"], jnp.int32)
    if use_contour:  # the nearer end of the matched chain segment
        near = p["match"] + (p["match_t"] > 0.5).astype(jnp.int32)
        verts = verts.at[contour_lms].set(sub[near].astype(jnp.int32))
    beta_full = jnp.zeros(model.num_expressions, dt).at[:ke].set(p["beta"])
    alpha_full = jnp.zeros(model.num_identity, dt).at[:kid].set(p["alpha"])
    return Fit(
        alpha_full,
        beta_full,
        p["R"],
        p["t"],
        focal if perspective else p["s"],
        centre,
        uv,
        dist,
        verts,
        res.history,
    )


@persistent(static_argnames=("config", "tables", "single"))
def _fit_batch(model, landmarks, sizes, config, tables, single=False):
    kid = config.num_identity or model.num_identity
    kid = min(kid, model.num_identity)
    # vmapped in sub-batches of 64: larger vmaps spill the Jacobians out of cache
    # on a CPU (measured 1.6x slower per image at 1024)
    fits = jax.lax.map(
        lambda a: _fit_one(model, tables, config, kid, a[0], a[1]),
        (landmarks, sizes),
        batch_size=min(landmarks.shape[0], 64),
    )
    # one image: drop the batch axis here (outside, each leaf would be its own program)
    return jax.tree.map(lambda x: x[0], fits) if single else fits


def fit_landmarks(
    model: MorphableModel,
    landmarks,
    image_size,
    config: FitConfig = FitConfig(),
    *,
    names=None,
    check: bool = True,
) -> Fit:
    """Fit the model to 68 iBUG landmarks of one image or a batch.

    Args:
        model: a :class:`vafx.MorphableModel` with iBUG landmark vertices.
        landmarks: float[68, 2] or float[B, 68, 2] pixel coordinates (x, y);
            NaN rows mark missing landmarks.
        image_size: (height, width) of the image(s), or float[B, 2].
        config: :class:`FitConfig`.
        names: the photos' names for error messages (default ``landmarks[i]``).
        check: check the fits' landmark error (:func:`check_fits`); False
            accepts any finite fit (the CLI's ``--force``).

    Returns:
        A :class:`Fit` (with a leading batch axis for batched input).

    Raises:
        ValueError: wrong shapes or image size.
        FitError: landmarks that cannot belong to their photo
            (:func:`check_landmarks`), fewer than 6 usable landmarks, or a
            failed fit (:func:`check_fits`).
    """
    lm, sizes, single = _landmark_batch(landmarks, image_size)
    names = _names(names, len(lm))
    check_landmarks(lm, sizes, names=names)
    usable = (np.isfinite(lm).all(axis=2) & (np.asarray(model.landmarks) >= 0)[None]).sum(axis=1)
    if (usable < 6).any():
        bad = int(np.nonzero(usable < 6)[0][0])
        raise FitError(names[bad], f"only {usable[bad]} usable landmarks; the fit needs 6")
    fits = _fit_batch(
        model,
        jax.device_put(lm),
        jax.device_put(sizes),
        config,
        _setup(model, config),
        single=single,
    )
    check_fits(fits, lm, names=names, max_error=MAX_FIT_ERROR if check else None)
    return fits


def _names(names, b: int) -> list[str]:
    if names is None:
        return [f"landmarks[{i}]" if b > 1 else "landmarks" for i in range(b)]
    names = [str(n) for n in names]
    if len(names) != b:
        raise ValueError(f"names: expected {b}, got {len(names)}")
    return names


def _landmark_batch(landmarks, image_size):
    """(float32[B, 68, 2], float32[B, 2] sizes, single) from the API's forms, checked."""
    try:
        lm = np.asarray(landmarks, np.float32)
    except (TypeError, ValueError):
        raise ValueError("landmarks: expected numbers of shape (68, 2) or (B, 68, 2)") from None
    single = lm.ndim == 2
    if single:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(
            f"landmarks: expected 68 iBUG points, (68, 2) or (B, 68, 2), got {np.shape(landmarks)}"
        )
    try:
        size = np.asarray(image_size, np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"image_size: expected (height, width), got {image_size!r}") from None
    if size.shape not in ((2,), (lm.shape[0], 2)):
        hint = " (pass image.shape[:2])" if size.shape == (3,) else ""
        raise ValueError(
            f"image_size: expected (height, width) or ({lm.shape[0]}, 2), got shape "
            f"{size.shape}{hint}"
        )
    if not (np.isfinite(size).all() and (size >= 1).all()):
        raise ValueError(f"image_size: height and width must be positive, got {size.tolist()}")
    return lm, np.broadcast_to(size, (lm.shape[0], 2)), single


def _inter_ocular(pts: np.ndarray) -> float:
    """Distance of the outer eye corners, or a third of the box diagonal without them."""
    a, b = pts[_EYE_CORNERS[0]], pts[_EYE_CORNERS[1]]
    if np.isfinite(a).all() and np.isfinite(b).all():
        return float(np.linalg.norm(a - b))
    given = pts[np.isfinite(pts).all(axis=1)]
    return float(np.linalg.norm(np.ptp(given, axis=0)) / 3) if len(given) else 0.0


def check_landmarks(landmarks, image_size, *, names=None, margin: float = OUTSIDE_MARGIN):
    """Check that landmarks can belong to their photos; raise :class:`vafx.FitError` if not.

    A photo's landmarks fail when a given point lies farther outside the photo
    than ``margin`` x its larger side, when the points are degenerate (all
    within 4 px, or on one line), or when the eyes are under 4 px apart.

    Args:
        landmarks: float[68, 2] or float[B, 68, 2] pixels (NaN rows missing).
        image_size: (height, width), or float[B, 2].
        names: the photos' names for the messages.
        margin: the allowed distance outside the photo, a fraction of its larger side.
    """
    lm, sizes, _ = _landmark_batch(landmarks, image_size)
    names = _names(names, len(lm))
    for pts, (h, w), name in zip(lm, sizes, names):
        given = np.isfinite(pts).all(axis=1)
        if np.isinf(pts).any():
            raise FitError(name, "landmarks hold infinite coordinates")
        q = pts[given]
        if len(q) == 0:
            continue  # the count check names it
        m = margin * max(h, w)
        out = (q[:, 0] < -m) | (q[:, 0] > w - 1 + m) | (q[:, 1] < -m) | (q[:, 1] > h - 1 + m)
        if out.any():
            i = int(np.nonzero(given)[0][np.nonzero(out)[0][0]])
            x, y = pts[i]
            raise FitError(
                name,
                f"{int(out.sum())} of {len(q)} landmarks lie outside the {int(w)} x {int(h)} photo "
                f"(landmark {i} at x={x:.0f}, y={y:.0f}): the landmarks do not belong to this photo",
            )
        centred = q - q.mean(axis=0)
        sv = np.linalg.svd(centred, compute_uv=False) if len(q) >= 2 else np.zeros(2)
        if np.ptp(q, axis=0).max() < 4 or sv[-1] < 0.05 * max(sv[0], 1e-12):
            raise FitError(
                name,
                f"landmarks are degenerate (spread {np.ptp(q, axis=0).round(1).tolist()} px, "
                f"{'on one line' if sv[-1] < 0.05 * max(sv[0], 1e-12) else 'all in one spot'})",
            )
        if _inter_ocular(pts) < 4:
            raise FitError(name, f"the eyes are {_inter_ocular(pts):.1f} px apart: not a face")


def check_fits(fits: Fit, landmarks, *, names=None, max_error: float = MAX_FIT_ERROR) -> None:
    """Check that fits succeeded; raise :class:`vafx.FitError` for the first that did not.

    A fit fails when its cost or pose is not finite, or when its mean landmark
    error exceeds ``max_error`` x the inter-ocular distance (:data:`MAX_FIT_ERROR`).

    Args:
        fits: a :class:`Fit` (one, or a batch).
        landmarks: the landmarks it was fitted to, float[68, 2] or float[B, 68, 2].
        names: the photos' names for the messages.
        max_error: the threshold (None: only the finiteness checks).
    """
    host = jax.device_get(fits)
    lm = np.asarray(landmarks, np.float32).reshape(-1, 68, 2)
    res = np.asarray(host.residuals, np.float64).reshape(len(lm), 68)
    cost = np.asarray(host.cost, np.float64).reshape(len(lm), -1)[:, -1]
    scale = np.asarray(host.scale, np.float64).reshape(len(lm))
    names = _names(names, len(lm))
    for i, name in enumerate(names):
        if not (np.isfinite(cost[i]) and np.isfinite(scale[i]) and scale[i] > 0):
            raise FitError(name, f"the fit failed (cost {cost[i]}, scale {scale[i]})")
        err = float(np.nanmean(res[i]))
        iod = _inter_ocular(lm[i])
        if max_error is not None and err > max_error * iod:
            raise FitError(
                name,
                f"the fit failed its check: mean landmark error {err:.1f} px is "
                f"{err / iod:.2f} inter-ocular distances (limit {max_error}); the landmarks "
                f"do not look like a face seen by this model (--force, force=True or check=False keeps it)",
            )


def fitted_vertices(model: MorphableModel, fit: Fit) -> jax.Array:
    """The fitted face's vertices in model space: float[n, 3] (one fit)."""
    from .._model._morphable import model_shape

    return model_shape(model, fit.identity, fit.expression)


def image_vertices(vertices: jax.Array, fit: Fit, camera: str = "orthographic") -> jax.Array:
    """Vertices in image space: float[n, 3] = (u, v, depth); depth grows away from the camera.

    Orthographic depth is in pixels (scaled like u and v); perspective depth
    in model units along the viewing axis.
    """
    if camera == "perspective":
        uv, d = project_perspective(
            vertices, fit.rotation, fit.translation, fit.scale, fit.principal
        )
        return jnp.concatenate([uv, d[:, None]], axis=1)
    uv = project_orthographic(vertices, fit.rotation, fit.translation[:2], fit.scale)
    depth = -fit.scale * (vertices @ fit.rotation.T)[:, 2]
    return jnp.concatenate([uv, depth[:, None]], axis=1)
