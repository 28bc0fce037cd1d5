"""Dense photometric refinement of a landmark fit through the soft rasterizer (optional).

After :func:`vafx.fit_landmarks`, the fit can be refined against every pixel of
the face: the mesh with known per-vertex colours is rendered with the SoftRas
rasterizer (:func:`vafx.kernels.raster.soft_rasterize`) over the photo, and
pose, identity and expression move to reduce

    photo_weight * sum over the face's box of |render - photo|^2 / colour_sigma^2
    + sum over landmarks of |projected - given|^2 / landmark_sigma^2
    + |identity|^2 + expression_prior * |expression|^2,

by projected Adam steps (optax; blendshape weights stay in [0, 1]), all steps
in one compiled call.

It needs the face's colours, which must come from outside the photo: from a
morphable model's colour model (BFM-style models that eos reads carry one) or
from another view. Colours sampled from the same photo with the landmark fit
make the photometric term agree with that fit, so it adds nothing. Neither
bundled model (ICT, SFM) has a colour model; the refinement is therefore off
in the pipeline, and docs/fitting.md reports what it gains when the colours are
known (tests/test_refine.py measures it on synthetic faces).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._model._morphable import MorphableModel, model_shape, region_faces
from ..kernels.camera import so3_exp
from ..kernels.raster import SOFT_GROUPS, SoftPlan, soft_plan, soft_rasterize
from ._fitting import Fit, image_vertices

__all__ = ["RefineConfig", "refine_photometric"]


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """Settings of :func:`refine_photometric` (static).

    Attributes:
        steps: Adam steps.
        learning_rate: step size in the parameters' own units, scaled per
            group: radians / 10 for rotation, pixels x 10 for translation,
            standard deviations for identity, weights for expression.
        sigma: soft rasterizer sharpness in squared pixels.
        gamma: soft rasterizer depth temperature.
        colour_sigma: expected colour noise (intensity in [0, 1]).
        photo_weight: weight of the photometric term.
        landmark_sigma: landmark noise as a fraction of the landmarks'
            bounding-box diagonal (as :class:`vafx.FitConfig`'s ``sigma``).
        expression_prior: ridge weight on expression coefficients.
        region: the model region rendered (None: all faces).
    """

    steps: int = 40
    learning_rate: float = 0.02
    sigma: float = 1.0
    gamma: float = 1e-2
    colour_sigma: float = 0.05
    photo_weight: float = 0.01
    landmark_sigma: float = 0.01
    expression_prior: float = 1.0
    region: str | None = "face"

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.sigma <= 0 or self.gamma <= 0 or self.colour_sigma <= 0:
            raise ValueError("sigma, gamma and colour_sigma must be positive")


# per-group step scale: how far one unit of the optimizer moves each parameter
_SCALES = {"rot": 0.1, "t": 10.0, "log_s": 0.1, "alpha": 1.0, "beta": 1.0}


@functools.partial(jax.jit, static_argnames=("steps", "sigma", "gamma", "plan", "camera"))
def _refine(model, fit, photo, colours, landmarks, faces, hyper, *, steps, sigma, gamma, plan,
            camera):  # fmt: skip
    """``hyper``: traced weights (learning_rate, photo, landmark_sigma, expression_prior)."""
    h, w = photo.shape[:2]
    dt = photo.dtype
    verts_lm = fit.vertices
    given = jnp.all(jnp.isfinite(landmarks), axis=1) & (verts_lm >= 0)
    x2 = jnp.where(given[:, None], landmarks, 0.0)
    ext = jnp.max(x2, 0, where=given[:, None], initial=-jnp.inf) - jnp.min(
        x2, 0, where=given[:, None], initial=jnp.inf
    )
    lm_sigma = hyper["landmark_sigma"] * jnp.sqrt(jnp.sum(ext * ext))
    blend = model.expression_kind == "blendshapes"
    perspective = camera == "perspective"

    def geometry(u):
        x = {k: u[k] * _SCALES[k] for k in u}
        rot = fit.rotation @ so3_exp(x["rot"])
        t = fit.translation + (x["t"] if perspective else x["t"].at[2].set(0.0))
        s = fit.scale if perspective else fit.scale * jnp.exp(x["log_s"])
        alpha = fit.identity + x["alpha"]
        beta = fit.expression + x["beta"]
        f = fit._replace(identity=alpha, expression=beta, rotation=rot, translation=t, scale=s)
        return f, image_vertices(model_shape(model, alpha, beta), f, camera)

    colours1 = jnp.concatenate([colours, jnp.ones_like(colours[:, :1])], axis=1)
    # the face's box in the photo (from the start), where the photometric term is taken
    p0 = image_vertices(model_shape(model, fit.identity, fit.expression), fit, camera)
    used = jnp.zeros(p0.shape[0], bool).at[faces.reshape(-1)].set(True)
    lo = jnp.min(jnp.where(used[:, None], p0[:, :2], jnp.inf), 0) - 4
    hi = jnp.max(jnp.where(used[:, None], p0[:, :2], -jnp.inf), 0) + 4
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=dt), jnp.arange(w, dtype=dt), indexing="ij")
    box = (xx >= lo[0]) & (xx <= hi[0]) & (yy >= lo[1]) & (yy <= hi[1])

    def loss(u):
        f, p = geometry(u)
        # a fourth channel of ones renders the face's weight against the background, so
        # the photo can be the background of SoftRas's aggregation, pixel by pixel
        rgba, _ = soft_rasterize(p, faces, colours1, h, w, plan, sigma=sigma, gamma=gamma)
        render = rgba[..., :3] + (1.0 - rgba[..., 3:]) * photo
        photo_term = jnp.sum(jnp.where(box[..., None], (render - photo) ** 2, 0.0))
        uv = p[jnp.maximum(verts_lm, 0), :2]
        lm_term = jnp.sum(jnp.where(given[:, None], ((uv - x2) / lm_sigma) ** 2, 0.0))
        prior = jnp.sum(f.identity**2) + hyper["expression_prior"] * jnp.sum(f.expression**2)
        return 0.5 * (hyper["photo"] * photo_term + lm_term + prior)

    u0 = {
        "rot": jnp.zeros(3, dt),
        "t": jnp.zeros(3, dt),
        "log_s": jnp.zeros((), dt),
        "alpha": jnp.zeros_like(fit.identity),
        "beta": jnp.zeros_like(fit.expression),
    }
    import optax  # 0.1 s to import: only where a photo is refined

    opt = optax.adam(hyper["learning_rate"])

    def project(u):
        if not blend:
            return u
        beta = jnp.clip(fit.expression + u["beta"], 0.0, 1.0) - fit.expression
        return {**u, "beta": beta}

    def step(state, _):
        u, opt_state = state
        value, grad = jax.value_and_grad(loss)(u)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int and float scalars
            updates, opt_state = opt.update(grad, opt_state, u)
        return (project(optax.apply_updates(u, updates)), opt_state), value

    (u, _), history = jax.lax.scan(step, (u0, opt.init(u0)), None, length=steps)
    final = loss(u)
    f, p = geometry(u)
    uv = p[jnp.maximum(verts_lm, 0), :2]
    dist = jnp.where(given, jnp.sqrt(jnp.sum((uv - x2) ** 2, -1)), jnp.nan)
    return f._replace(landmarks=uv, residuals=dist, cost=jnp.append(history, final))


def refine_photometric(
    photo,
    model: MorphableModel,
    fit: Fit,
    colours,
    landmarks,
    *,
    config: RefineConfig = RefineConfig(),
    camera: str = "orthographic",
) -> Fit:
    """Refine one landmark fit against the photo's pixels, given the face's colours.

    Args:
        photo: uint8 or float[H, W, 3] (float in [0, 1]).
        model: the morphable model of the fit.
        fit: a :class:`vafx.Fit` of this photo (one image).
        colours: float[n, 3] per-vertex colours in [0, 1] of the face in this
            photo's lighting (e.g. from a colour model), not sampled from the
            photo with this fit (then the refinement has nothing to gain).
        landmarks: float[68, 2], the landmarks the fit used (NaN rows missing).
        config: :class:`RefineConfig`.
        camera: the fit's camera.

    Returns:
        The refined :class:`vafx.Fit`; its ``cost`` holds the refinement's
        objective per step (the last entry after the last step), its
        ``landmarks`` and ``residuals`` are those of the refined pose.
    """
    img = np.asarray(photo)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"photo: expected (H, W, 3), got {img.shape}")
    img = img[..., :3]
    n = model.mean.shape[0]
    col = np.asarray(colours, np.float32)
    if col.shape != (n, 3):
        raise ValueError(f"colours: expected ({n}, 3) per-vertex colours, got {col.shape}")
    if not np.isfinite(col).all():
        raise ValueError("colours: NaN or infinite values")
    lm = np.asarray(landmarks, np.float32)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks: expected (68, 2), got {lm.shape}")
    if np.ndim(np.asarray(fit.scale)) != 0:
        raise ValueError("fit: one image's fit expected (no batch axis)")
    faces = region_faces(model, config.region)
    h, w = img.shape[:2]
    p0 = image_vertices(model_shape(model, fit.identity, fit.expression), fit, camera)
    plan = _slack(soft_plan(p0, faces, h, w, config.sigma))
    hyper = {
        "learning_rate": config.learning_rate,
        "photo": config.photo_weight / config.colour_sigma**2,
        "landmark_sigma": config.landmark_sigma,
        "expression_prior": config.expression_prior,
    }
    return _refine(
        model, fit, jnp.asarray(img), jnp.asarray(col), jnp.asarray(lm), jnp.asarray(faces),
        jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hyper), steps=config.steps,
        sigma=config.sigma, gamma=config.gamma, plan=plan, camera=camera,
    )  # fmt: skip


def _slack(plan: SoftPlan) -> SoftPlan:
    """Room for the mesh to move during the refinement.

    A triangle whose box grows or shrinks past a group's side changes group;
    one that finds its group full spills into the flat pair list. Every group
    gets a quarter more room, and the spill at least an eighth of the groups' pairs.
    """
    levels = tuple(-(-5 * c // 4) for c in plan.levels)
    pairs = sum(c * kx * ky for c, (kx, ky) in zip(levels, SOFT_GROUPS))
    spill = max(2 * plan.spill, pairs // 8, 1024)
    return SoftPlan(levels, 1 << math.ceil(math.log2(spill)), plan.margin)
