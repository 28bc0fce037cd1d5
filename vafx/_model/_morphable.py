"""The MorphableModel pytree and sampling faces from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

#: iBUG-68 landmark numbers (0-based) on the face contour: 1-8 and 10-17 in the
#: usual 1-based numbering. They have no fixed vertex; fitting matches them to
#: the model's contour chains for the current pose.
CONTOUR_LANDMARKS_RIGHT = tuple(range(0, 8))
CONTOUR_LANDMARKS_LEFT = tuple(range(9, 17))


def _static(default=dataclasses.MISSING):
    return dataclasses.field(default=default, metadata={"static": True})


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MorphableModel:
    """A linear 3D morphable face model with named expressions.

    A face is ``mean + sum_k (alpha_k * identity_std[k]) * identity_basis[k]
    + sum_j (beta_j * expression_std[j]) * expression_basis[j]``. Identity
    coefficients ``alpha`` are standardised (prior N(0, 1)). For blendshape
    expression models ``expression_std`` is 1 and ``beta`` are blendshape
    weights (usually in [0, 1]); for PCA expression models ``beta`` are
    standardised too.

    Array fields are pytree leaves (so a model passes through ``jit`` and
    ``vmap``); names, units and kinds are static metadata.

    Attributes:
        mean: float32[n, 3], the mean (neutral) shape, in ``units``.
        identity_basis: float32[k_id, n, 3], identity modes.
        identity_std: float32[k_id], prior standard deviation of each mode.
        expression_basis: float32[k_exp, n, 3], expression shapes (offsets from
            the mean) or PCA modes; k_exp may be 0.
        expression_std: float32[k_exp].
        faces: int32[f, 3], triangles (quads are split), 0-based vertex indices.
        landmarks: int32[68], vertex of each iBUG-68 landmark (0-based landmark
            order); -1 where the model defines none (the contour points, and
            e.g. the inner mouth corners of the SFM).
        contour_right: int32[c_r], vertex chain of the right face contour
            (subject's right), top to bottom.
        contour_left: int32[c_l], the left face contour.
        regions: name -> int32[r] vertex indices (``face``, ``mouth_socket``,
            ``teeth``, ``eyes``, ...).
        uv: float32[t, 2] texture coordinates in [0, 1], or None.
        faces_uv: int32[f, 3] indices into ``uv`` per triangle corner, or None.
        colour_mean: float32[n, 3] RGB in [0, 1], or None (shape-only model).
        colour_basis: float32[k_col, n, 3], or None.
        colour_std: float32[k_col], or None.
        name: short model name (``"ict"``, ``"sfm"``, ...).
        units: length unit of the coordinates (``"cm"``, ``"mm"``).
        expression_names: name of each expression shape.
        expression_kind: ``"blendshapes"`` or ``"pca"``.
    """

    mean: Array
    identity_basis: Array
    identity_std: Array
    expression_basis: Array
    expression_std: Array
    faces: Array
    landmarks: Array
    contour_right: Array
    contour_left: Array
    regions: Mapping[str, Array] = dataclasses.field(default_factory=dict)
    uv: Array | None = None
    faces_uv: Array | None = None
    colour_mean: Array | None = None
    colour_basis: Array | None = None
    colour_std: Array | None = None
    name: str = _static("model")
    units: str = _static("cm")
    expression_names: tuple[str, ...] = _static(())
    expression_kind: str = _static("blendshapes")

    # ----------------------------------------------------------------- sizes
    @property
    def num_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def expression_index(self, name: str) -> int:
        """Position of a named expression shape.

        Raises:
            KeyError: no such name; the message lists the model's names.
        """
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(
                f"model {self.name!r} has no expression {name!r}; it has: "
                + ", ".join(self.expression_names)
            ) from None

    def expression(self, name: str) -> Array:
        """The offset of one named expression shape. float32[n, 3]."""
        return self.expression_basis[self.expression_index(name)]

    def summary(self) -> str:
        """A few lines that describe the model, for the CLI and logs."""
        lm = np.asarray(self.landmarks)
        lines = [
            f"model {self.name}: {self.num_vertices} vertices, {self.num_faces} triangles, "
            f"units {self.units}",
            f"  identity: {self.num_identity} modes",
            f"  expression ({self.expression_kind}): {self.num_expressions}"
            + (f" [{', '.join(self.expression_names[:6])}, ...]" if self.expression_names else ""),
            f"  landmarks: {int((lm >= 0).sum())} of 68 fixed; contour chains "
            f"{self.contour_right.shape[0]} + {self.contour_left.shape[0]} vertices",
            f"  uv: {'none' if self.uv is None else self.uv.shape[0]}; colour model: "
            f"{'none' if self.colour_mean is None else self.colour_basis.shape[0]}",
            f"  regions: {', '.join(sorted(self.regions)) or 'none'}",
        ]
        return "\n".join(lines)


def _add_modes(v: Array, coeffs: ArrayLike, std: Array, basis: Array, what: str) -> Array:
    coeffs = jnp.asarray(coeffs, v.dtype)
    if coeffs.shape != std.shape:
        raise ValueError(f"{what} coefficients must have shape {std.shape}, got {coeffs.shape}")
    return v + jnp.einsum("k,knd->nd", coeffs * std, basis)


def model_shape(
    model: MorphableModel,
    identity: ArrayLike | None = None,
    expression: ArrayLike | None = None,
) -> Array:
    """Vertices of a face with the given coefficients.

    Pure and jit-able; ``vmap`` it over batches of coefficients. Coefficient
    vectors must have exactly one entry per mode (pad with zeros for fewer).

    Args:
        model: the morphable model.
        identity: float[k_id] standardised identity coefficients, or None (mean).
        expression: float[k_exp] expression weights, or None (neutral).

    Returns:
        float32[n, 3] vertices, in ``model.units``.
    """
    v = model.mean
    if identity is not None:
        v = _add_modes(v, identity, model.identity_std, model.identity_basis, "identity")
    if expression is not None:
        v = _add_modes(v, expression, model.expression_std, model.expression_basis, "expression")
    return v


def sample_coefficients(
    key: Array, model: MorphableModel, scale: float = 1.0
) -> tuple[Array, Array]:
    """Random identity coefficients from the prior, and zero expression.

    Args:
        key: a JAX PRNG key.
        model: the morphable model.
        scale: multiplies the N(0, 1) draws (0.5 gives less extreme faces).

    Returns:
        (float32[k_id], float32[k_exp]).
    """
    alpha = scale * jax.random.normal(key, (model.num_identity,), model.mean.dtype)
    return alpha, jnp.zeros((model.num_expressions,), model.mean.dtype)


def landmark_positions(model: MorphableModel, vertices: ArrayLike) -> tuple[Array, Array]:
    """3D positions of the iBUG-68 landmarks that have a fixed vertex.

    Args:
        model: the morphable model (for its landmark map).
        vertices: float[n, 3].

    Returns:
        (float[68, 3] positions, bool[68] valid); invalid rows are zero.
    """
    lm = model.landmarks
    valid = lm >= 0
    pos = jnp.asarray(vertices)[jnp.where(valid, lm, 0)]
    return jnp.where(valid[:, None], pos, 0), valid


def region_faces(model: MorphableModel, region: str | None) -> np.ndarray:
    """int32[F, 3]: the model's triangles with all three corners in a region (model vertex ids).

    ``region=None`` gives every triangle. An unknown region is a ValueError
    naming the model's regions.
    """
    faces = np.asarray(model.faces, np.int32)
    if region is None:
        return faces
    if region not in model.regions:
        raise ValueError(f"model {model.name!r} has no region {region!r}: {sorted(model.regions)}")
    return faces[np.isin(faces, np.asarray(model.regions[region])).all(axis=1)]


def triangulate(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split polygons of up to four corners into triangles.

    Args:
        faces: int[f, 3] or int[f, 4]; a 4-column row with -1 last is a triangle.

    Returns:
        (int32[t, 3] triangles, int64[t] index of the source polygon of each).
        A quad (a, b, c, d) becomes (a, b, c) and (a, c, d).
    """
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] not in (3, 4):
        raise ValueError(f"faces must have shape (f, 3) or (f, 4), got {faces.shape}")
    if faces.shape[1] == 3:
        return faces.astype(np.int32), np.arange(faces.shape[0])
    quad = faces[:, 3] >= 0
    first = faces[:, :3]
    second = faces[quad][:, [0, 2, 3]]
    src = np.concatenate([np.arange(faces.shape[0]), np.nonzero(quad)[0]])
    tris = np.concatenate([first, second])
    order = np.argsort(src, kind="stable")
    return tris[order].astype(np.int32), src[order]


def check_model(model: MorphableModel, source: str = "model") -> MorphableModel:
    """Check shapes, index ranges and finiteness; return the model unchanged.

    Raises:
        ValueError: naming ``source`` and the field at fault.
    """

    def fail(msg):
        raise ValueError(f"{source}: {msg}")

    mean = np.asarray(model.mean)
    if mean.ndim != 2 or mean.shape[1] != 3 or mean.shape[0] < 3:
        fail(f"mean shape must be (n, 3), got {mean.shape}")
    n = mean.shape[0]
    for field in ("identity_basis", "expression_basis", "colour_basis"):
        b = getattr(model, field)
        if b is None:
            continue
        b = np.asarray(b)
        if b.ndim != 3 or b.shape[1:] != (n, 3):
            fail(f"{field} must have shape (k, {n}, 3), got {b.shape}")
    for basis, std in (
        ("identity_basis", "identity_std"),
        ("expression_basis", "expression_std"),
        ("colour_basis", "colour_std"),
    ):
        b, s = getattr(model, basis), getattr(model, std)
        if b is None:
            continue
        if s is None or np.asarray(s).shape != (np.asarray(b).shape[0],):
            fail(f"{std} must have shape ({np.asarray(b).shape[0]},)")
        if not np.all(np.isfinite(s)) or np.any(np.asarray(s) < 0):
            fail(f"{std} must be finite and non-negative")
    if len(model.expression_names) != model.num_expressions:
        fail(
            f"{model.num_expressions} expression shapes but "
            f"{len(model.expression_names)} expression names"
        )
    if not np.all(np.isfinite(mean)):
        bad = int(np.argwhere(~np.isfinite(mean))[0][0])
        fail(f"mean shape has a non-finite coordinate at vertex {bad}")
    faces = np.asarray(model.faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] < 1:
        fail(f"faces must have shape (f, 3), got {faces.shape}")
    if faces.min() < 0 or faces.max() >= n:
        fail(f"face indices must lie in [0, {n}), found range [{faces.min()}, {faces.max()}]")
    lm = np.asarray(model.landmarks)
    if lm.shape != (68,):
        fail(f"landmarks must have shape (68,), got {lm.shape}")
    if lm.max() >= n or lm.min() < -1:
        fail(f"landmark vertex indices must lie in [-1, {n})")
    for field in ("contour_right", "contour_left"):
        c = np.asarray(getattr(model, field))
        if c.ndim != 1 or (c.size and (c.min() < 0 or c.max() >= n)):
            fail(f"{field} must be vertex indices in [0, {n})")
    for name, idx in model.regions.items():
        idx = np.asarray(idx)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
            fail(f"region {name!r} must be vertex indices in [0, {n})")
    if (model.uv is None) != (model.faces_uv is None):
        fail("uv and faces_uv must be given together")
    if model.uv is not None:
        uv, fuv = np.asarray(model.uv), np.asarray(model.faces_uv)
        if uv.ndim != 2 or uv.shape[1] != 2:
            fail(f"uv must have shape (t, 2), got {uv.shape}")
        if fuv.shape != faces.shape:
            fail(f"faces_uv must have the shape of faces {faces.shape}, got {fuv.shape}")
        if fuv.min() < 0 or fuv.max() >= uv.shape[0]:
            fail(f"faces_uv indices must lie in [0, {uv.shape[0]})")
    if model.expression_kind not in ("blendshapes", "pca"):
        fail(f"expression_kind must be 'blendshapes' or 'pca', got {model.expression_kind!r}")
    return model


def make_model(**fields) -> MorphableModel:
    """Build a MorphableModel from numpy-like fields, with float32/int32 arrays.

    Missing optional fields get empty defaults (no expressions, no contour,
    no landmarks). The result is checked with :func:`check_model`.
    """
    source = fields.pop("source", "model")
    mean = np.asarray(fields.pop("mean"), np.float32)
    n = mean.shape[0] if mean.ndim == 2 else 0
    # jax.device_put, not jnp.asarray: on the host the latter compiles a copy program per
    # shape (about 15 ms each, from the cache, at every start of a process)
    f32 = lambda x: None if x is None else jax.device_put(np.asarray(x, np.float32))  # noqa: E731
    i32 = lambda x: None if x is None else jax.device_put(np.asarray(x, np.int32))  # noqa: E731
    identity_basis = fields.pop("identity_basis", np.zeros((0, n, 3)))
    expression_basis = fields.pop("expression_basis", np.zeros((0, n, 3)))
    identity_std = fields.pop("identity_std", None)
    expression_std = fields.pop("expression_std", None)
    if identity_std is None:
        identity_std = np.ones(np.shape(identity_basis)[0])
    if expression_std is None:
        expression_std = np.ones(np.shape(expression_basis)[0])
    colour_basis = fields.pop("colour_basis", None)
    colour_std = fields.pop("colour_std", None)
    regions = {k: i32(v) for k, v in fields.pop("regions", {}).items()}
    model = MorphableModel(
        mean=jax.device_put(mean),
        identity_basis=f32(identity_basis),
        identity_std=f32(identity_std),
        expression_basis=f32(expression_basis),
        expression_std=f32(expression_std),
        faces=i32(fields.pop("faces")),
        landmarks=i32(fields.pop("landmarks", np.full(68, -1))),
        contour_right=i32(fields.pop("contour_right", np.zeros(0))),
        contour_left=i32(fields.pop("contour_left", np.zeros(0))),
        regions=regions,
        uv=f32(fields.pop("uv", None)),
        faces_uv=i32(fields.pop("faces_uv", None)),
        colour_mean=f32(fields.pop("colour_mean", None)),
        colour_basis=f32(colour_basis),
        colour_std=f32(colour_std),
        name=str(fields.pop("name", "model")),
        units=str(fields.pop("units", "cm")),
        expression_names=tuple(str(s) for s in fields.pop("expression_names", ())),
        expression_kind=str(fields.pop("expression_kind", "blendshapes")),
    )
    if fields:
        raise TypeError(f"unknown MorphableModel fields: {sorted(fields)}")
    return check_model(model, source)
