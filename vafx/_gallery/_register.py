"""Registration of raw 3D scans onto a gallery template (dense correspondence).

Three stages per frame, each a pure jit-compiled function of arrays, vmapped
over the frames of a sequence:

1. **Pose.** A similarity (s, R, t) from the scan's 3D landmarks to the
   template's (Umeyama), or the previous frame's pose, or a centroid shift.
2. **Morphable-model prior.** Iterative closest points with the template's
   morphable model (when the template is cut from one): the pose (weighted
   Umeyama) and the identity and expression coefficients (regularized least
   squares) alternate against the closest scan points of a subset of template
   vertices, with rejection by distance, normal angle and the scan's border.
3. **Non-rigid ICP** (Amberg et al. 2007, :func:`vafx.kernels.registration.nicp`)
   from the prior's face on the whole template, stiffness falling along a
   schedule, landmarks weighted less and less.

The registered template is brought back to the template's frame by the
inverse pose, so that head motion between frames does not become deformation.

A sequence is registered neutral frame first (from its landmarks, or cold);
the other frames follow in vmapped chunks, each chunk warm-started from the
previous chunk's last frame (its pose and coefficients).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DataFileError
from .._model._morphable import MorphableModel
from .._model._template import Template
from ..kernels import registration as reg
from ..kernels.camera import hat as reg_hat
from ..kernels.camera import so3_exp


@dataclasses.dataclass(frozen=True)
class RegisterConfig:
    """Settings of :func:`register_sequence`.

    Distances are in multiples of the template's mean edge length ``h`` (ICT
    face: 0.31 cm), so the defaults suit any template's units.

    Attributes:
        prior_iterations: closest-point iterations of the model prior (cold start).
        warm_prior_iterations: the same, warm-started from the previous frame.
        rigid_iterations: of those, the first ones move the pose only.
        prior_vertices: template vertices the prior matches (an even subset).
        identity_weight: Tikhonov weight of the standardised identity coefficients.
        expression_weight: Tikhonov weight of the expression coefficients.
        stiffness: NICP stiffness schedule (relative; falls).
        steps_per_stiffness: NICP iterations at each stiffness.
        landmark_weight: landmarks' weight in NICP at the first stiffness; it
            falls in proportion to the stiffness, to 0 at the last.
        max_distance: correspondences farther than this (x h) are rejected.
        prior_max_distance: the same for the prior's first iteration; it falls
            linearly to ``max_distance``.
        prior_landmark_floor: the landmarks' weight in the prior falls linearly
            over its iterations to this fraction (landmarks are noisier than the surface).
        search_cell: the grid cell (x h) of the first nearest-vertex search; walks
            over the scan's edges follow it.
        walk_steps: steps of the greedy nearest-vertex walk per iteration.
        max_angle: correspondences whose normals differ by more (degrees) are rejected.
        gamma: weight of translation against the linear part in the stiffness term.
        estimate_scale: estimate the scan's scale (else the template's units).
        cg_tol: relative residual of each NICP linear solve.
        cg_maxiter: most conjugate-gradient iterations per solve.
        batch: frames per vmapped chunk.
    """

    prior_iterations: int = 12
    warm_prior_iterations: int = 12
    rigid_iterations: int = 3
    prior_vertices: int = 2500
    identity_weight: float = 1e-4
    expression_weight: float = 1e-4
    stiffness: tuple[float, ...] = (20.0, 10.0, 5.0, 2.0, 1.0, 0.5)
    steps_per_stiffness: int = 2
    landmark_weight: float = 1.0
    max_distance: float = 2.0
    prior_max_distance: float = 4.0
    walk_steps: int = 4
    search_cell: float = 2.0
    prior_landmark_floor: float = 0.02
    max_angle: float = 60.0
    gamma: float = 1.0
    estimate_scale: bool = False
    cg_tol: float = 1e-4
    cg_maxiter: int = 200
    batch: int = 8


class Pose(NamedTuple):
    """scan = s R template + t. Fields: s float, r float[3, 3], t float[3]."""

    s: jax.Array
    r: jax.Array
    t: jax.Array


class FrameInit(NamedTuple):
    """Where a frame's registration starts.

    Attributes:
        pose: a :class:`Pose` to start from.
        coeffs: float[k], the prior's coefficients to start from.
        from_landmarks: bool, replace ``pose`` by the landmarks' similarity
            (when at least four landmarks are valid).
    """

    pose: Pose
    coeffs: jax.Array
    from_landmarks: jax.Array


class Registered(NamedTuple):
    """A registered frame.

    Attributes:
        verts: float[n, 3], the template registered onto the scan, in the
            template's frame (the pose removed).
        scan_verts: float[n, 3], the same in the scan's frame.
        pose: the final :class:`Pose`.
        coeffs: float[k], the prior's coefficients.
        distance: float[n], each template vertex's distance to the scan after
            registration (inf where no scan point lies within the search cell).
        matched: bool[n], vertices with an accepted correspondence at the end.
        prior_distance: float[n], the same distances for the prior's face.
        scan_distance: float[N], each scan vertex's distance to the registered
            template (large where the template does not cover the scan).
    """

    verts: jax.Array
    scan_verts: jax.Array
    pose: Pose
    coeffs: jax.Array
    distance: jax.Array
    matched: jax.Array
    prior_distance: jax.Array
    scan_distance: jax.Array


class RegistrationSetup(NamedTuple):
    """The template's arrays for registration (a pytree; build with :func:`registration_setup`).

    Attributes:
        mean: float32[n, 3], the template (the model's mean on its region).
        basis: float32[k, n, 3], identity modes (times their std) then
            expression shapes on the template; k = 0 without a model.
        reg: float32[k], Tikhonov weight of each coefficient.
        faces: int32[f, 3].
        graph: the template's edge graph.
        prior_ids: int32[S], the template vertices the prior matches.
        prior_parent: int32[n], for each template vertex the nearest of those
            (position in ``prior_ids``).
        landmarks: int32[68], template vertex of each iBUG-68 landmark (0 where none).
        landmark_ok: bool[68].
        edge: float32, the template's mean edge length h.
        ring: int32[n, R], the template's triangles around each vertex (-1 padded).
        border: bool[n], the template's border vertices.
    """

    mean: jax.Array
    basis: jax.Array
    reg: jax.Array
    faces: jax.Array
    graph: reg.TemplateGraph
    prior_ids: jax.Array
    prior_parent: jax.Array
    landmarks: jax.Array
    landmark_ok: jax.Array
    edge: jax.Array
    ring: jax.Array
    border: jax.Array


def registration_setup(
    template: Template, model: MorphableModel | None, config: RegisterConfig = RegisterConfig()
) -> RegistrationSetup:
    """The :class:`RegistrationSetup` of a template (and the model it was cut from, if any)."""
    v = np.asarray(template.vertices, np.float32)
    f = np.asarray(template.faces, np.int32)
    n = len(v)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edge = float(np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1).mean())
    lm = np.zeros(68, np.int32)
    ok = np.zeros(68, bool)
    if model is not None and template.vertex_ids is not None:
        ids = np.asarray(template.vertex_ids)
        if template.model and template.model != model.name:
            raise ValueError(
                f"the template comes from model {template.model!r}, not {model.name!r}"
            )
        remap = -np.ones(model.num_vertices, np.int64)
        remap[ids] = np.arange(n)
        mlm = np.asarray(model.landmarks)
        has = (mlm >= 0) & (remap[np.maximum(mlm, 0)] >= 0)
        lm[has] = remap[mlm[has]]
        ok = has
        ident = (
            np.asarray(model.identity_basis)[:, ids] * np.asarray(model.identity_std)[:, None, None]
        )
        expr = (
            np.asarray(model.expression_basis)[:, ids]
            * np.asarray(model.expression_std)[:, None, None]
        )
        basis = np.concatenate([ident, expr]).astype(np.float32)
        w = np.concatenate(
            [
                np.full(len(ident), config.identity_weight),
                np.full(len(expr), config.expression_weight),
            ]
        ).astype(np.float32)
        mean = np.asarray(model.mean, np.float32)[ids]
    else:
        basis = np.zeros((0, n, 3), np.float32)
        w = np.zeros(0, np.float32)
        mean = v
    s = min(config.prior_vertices, n)
    prior_ids = np.unique(np.linspace(0, n - 1, s).round().astype(np.int32))
    graph = reg.template_graph(f, n)
    own = reg.surface_target(v, f, 4 * edge)
    sub = v[prior_ids]
    parent = np.concatenate(
        [
            np.argmin(((v[i : i + 1024, None] - sub[None]) ** 2).sum(-1), axis=1)
            for i in range(0, n, 1024)
        ]
    )
    return RegistrationSetup(
        jnp.asarray(mean),
        jnp.asarray(basis),
        jnp.asarray(w),
        jnp.asarray(f),
        reg.TemplateGraph(jnp.asarray(graph.neighbours), jnp.asarray(graph.degree)),
        jnp.asarray(prior_ids),
        jnp.asarray(parent, jnp.int32),
        jnp.asarray(lm),
        jnp.asarray(ok),
        jnp.float32(edge),
        jnp.asarray(own.ring),
        jnp.asarray(own.border),
    )


def _shape(setup: RegistrationSetup, coeffs):
    if setup.basis.shape[0] == 0:
        return setup.mean
    return setup.mean + jnp.einsum("k,knd->nd", coeffs, setup.basis)


def _move(pose: Pose, v):
    return pose.s * v @ pose.r.T + pose.t[None]


def _unmove(pose: Pose, v):
    return ((v - pose.t[None]) @ pose.r) / pose.s


def _prior(setup, target, init: FrameInit, lm_scan, lm_valid, iters: int, config: RegisterConfig):
    """Stage 1 and 2: the pose and the model coefficients. Returns (pose, coeffs)."""
    h = setup.edge
    lm_ok = lm_valid & setup.landmark_ok
    use_lm = jnp.sum(lm_ok) >= 4
    lm_w = lm_ok.astype(jnp.float32)
    mean_lm = setup.mean[setup.landmarks]
    s0, r0, t0 = reg.umeyama(mean_lm, jnp.where(lm_ok[:, None], lm_scan, 0), lm_w + 1e-12 * (~use_lm).astype(jnp.float32),
                             scale=config.estimate_scale)  # fmt: skip
    from_lm = init.from_landmarks & use_lm
    pose = Pose(
        jnp.where(from_lm, s0, init.pose.s),
        jnp.where(from_lm, r0, init.pose.r),
        jnp.where(from_lm, t0, init.pose.t),
    )
    ids = setup.prior_ids
    k = setup.basis.shape[0]
    basis_s = setup.basis[:, ids]  # [k, S, 3]
    basis_l = setup.basis[:, setup.landmarks]  # [k, 68, 3]
    cos_max = jnp.cos(jnp.deg2rad(config.max_angle))
    taus = jnp.linspace(config.prior_max_distance, config.max_distance, max(iters, 1)) * h
    # the landmarks weigh as much as half the matched vertices together
    lm_weight = ids.shape[0] / jnp.maximum(jnp.sum(lm_w), 1.0) * 0.5 * use_lm.astype(jnp.float32)
    v0 = _move(pose, _shape(setup, init.coeffs)[ids])
    near0, d0 = reg.nearest_vertex(target, v0)
    # queries with no scan vertex within a grid cell start their walk at the
    # scan vertex nearest the template's centre
    used = jnp.any(target.normals != 0, axis=-1)
    centre = jnp.mean(v0, axis=0)
    central = jnp.argmin(jnp.where(used, jnp.sum((target.verts - centre[None]) ** 2, -1), jnp.inf))
    near0 = jnp.where(jnp.isfinite(d0), near0, central.astype(near0.dtype))
    eye = jnp.eye(3, dtype=jnp.float32)

    def step(carry, inputs):
        pose, c, near = carry
        i, tau = inputs
        full = _shape(setup, c)
        nrm = reg.vertex_normals(full, setup.faces)[ids] @ pose.r.T
        v = full[ids]
        q = _move(pose, v)
        near = reg.walk_nearest(target, q, near, config.walk_steps)
        cl = reg.closest_points(target, q, near)
        ok = (cl.distance < tau * pose.s) & ~cl.border & (jnp.sum(nrm * cl.normal, -1) > cos_max)
        w = ok.astype(jnp.float32)
        # One Gauss-Newton step in the template's frame on (rotation w, shift tau,
        # coefficients): point-to-plane residuals n.(V + w x V + tau - u) for
        # the matched vertices (sliding along the surface is free), a tenth of
        # them point-to-point, and point-to-point residuals for the landmarks.
        u = _unmove(pose, cl.point)
        nm = cl.normal @ pose.r  # the scan normal in the template's frame
        lu = _unmove(pose, jnp.where(lm_ok[:, None], lm_scan, 0))
        vl = full[setup.landmarks]
        move_rigid = i < config.rigid_iterations
        free = (~move_rigid).astype(jnp.float32)
        b_s = basis_s * free
        b_l = basis_l * free
        jp = jnp.concatenate(
            [
                jnp.cross(v, nm)[:, None, :],
                nm[:, None, :],
                jnp.einsum("ksd,sd->sk", b_s, nm)[:, None, :],
            ],
            axis=-1,
        )[:, 0]  # [S, 6 + k]
        rp = jnp.sum(nm * (v - u), -1)

        def point_rows(pts, bas):  # d(V + w x V + tau)/d(w, tau, c): [m, 3, 6 + k]
            skew = jax.vmap(lambda x: -reg_hat(x))(pts)
            return jnp.concatenate(
                [skew, jnp.broadcast_to(eye, pts.shape[:1] + (3, 3)), jnp.moveaxis(bas, 0, -1)], -1
            )

        jq = point_rows(v, b_s)
        rq = v - u
        jl = point_rows(vl, b_l)
        rl = vl - lu
        wq = 0.1 * w
        fade = 1.0 - i.astype(jnp.float32) / max(iters - 1, 1)
        wl = lm_w * lm_weight * jnp.maximum(fade, config.prior_landmark_floor)
        ata = (
            (jp * w[:, None]).T @ jp
            + jnp.einsum("mai,m,maj->ij", jq, wq, jq)
            + jnp.einsum("mai,m,maj->ij", jl, wl, jl)
        )
        atb = (
            (jp * w[:, None]).T @ rp
            + jnp.einsum("mai,m,ma->i", jq, wq, rq)
            + jnp.einsum("mai,m,ma->i", jl, wl, rl)
        )
        m = jnp.maximum(jnp.sum(w), 1.0)
        damp = jnp.concatenate([jnp.full(6, 1e-6, jnp.float32), setup.reg * h * h]) * m
        damp = damp + jnp.concatenate(
            [jnp.zeros(6, jnp.float32), jnp.full(k, 1e6, jnp.float32) * (1.0 - free)]
        )
        # the coefficient prior pulls towards 0, not towards the current value
        atb = atb + jnp.concatenate([jnp.zeros(6, jnp.float32), setup.reg * h * h * m * c])
        delta = -jnp.linalg.solve(ata + jnp.diag(damp), atb)
        rot = pose.r @ so3_exp(delta[:3])
        pose = Pose(pose.s, rot, pose.t + pose.s * (pose.r @ delta[3:6]))
        c = c + delta[6:]
        return (pose, c, near), None

    (pose, c, near), _ = jax.lax.scan(step, (pose, init.coeffs, near0), (jnp.arange(iters), taus))
    return pose, c, near


def _register_one(setup, target, init, lm_scan, lm_valid, *, iters: int, config: RegisterConfig):
    pose, c, near = _prior(setup, target, init, lm_scan, lm_valid, iters, config)
    h = setup.edge * pose.s
    face = _move(pose, _shape(setup, c))
    start = reg.walk_nearest(target, face, near[setup.prior_parent], 3 * config.walk_steps)
    prior_cl = reg.closest_points(target, face, start)
    alphas = jnp.repeat(jnp.asarray(config.stiffness, jnp.float32), config.steps_per_stiffness)
    a0 = alphas[0]
    betas = (
        config.landmark_weight
        * jnp.sqrt(jnp.float32(setup.prior_ids.shape[0] / 68.0))
        * ((alphas - alphas[-1]) / jnp.maximum(a0 - alphas[-1], 1e-12))
    )
    lm_ok = lm_valid & setup.landmark_ok
    # the energy in units of h: alpha^2 scales with h^2, gamma with 1/h
    state = reg.nicp(
        setup.graph,
        setup.faces,
        face,
        target,
        alphas * h,
        betas,
        start_vertex=start,
        walk_steps=config.walk_steps,
        landmark_vertex=setup.landmarks,
        landmark_target=jnp.where(lm_ok[:, None], lm_scan, 0),
        landmark_valid=lm_ok,
        max_distance=config.max_distance * h,
        min_cos=float(np.cos(np.deg2rad(config.max_angle))),
        gamma=config.gamma / h,
        tol=config.cg_tol,
        maxiter=config.cg_maxiter,
    )
    final = reg.closest_points(
        target, state.verts, reg.walk_nearest(target, state.verts, state.vertex, config.walk_steps)
    )
    nrm = reg.vertex_normals(state.verts, setup.faces)
    cos_max = jnp.cos(jnp.deg2rad(config.max_angle))
    matched = (
        (final.distance < config.max_distance * h)
        & ~final.border
        & (jnp.sum(nrm * final.normal, -1) > cos_max)
    )
    back = _scan_to_template(setup, target, state.verts, final.vertex)
    return Registered(
        _unmove(pose, state.verts), state.verts, pose, c, final.distance, matched,
        prior_cl.distance, back,
    )  # fmt: skip


def _scan_to_template(setup, target, verts, vertex, spread: int = 8, steps: int = 6):
    """float[N]: each scan vertex's distance to the registered template ``verts``.

    Each scan vertex starts from a template vertex matched to it (or, through
    ``spread`` steps over the scan's edges, to a neighbour), walks the
    template's edges to its nearest template vertex, then takes the closest
    point on the triangles there.
    """
    n = verts.shape[0]
    big = jnp.int32(n)
    start = jnp.full(target.verts.shape[0], big).at[vertex].min(jnp.arange(n, dtype=jnp.int32))

    def grow(_, s):  # unset vertices take a set neighbour's start
        return jnp.where(s < big, s, jnp.min(s[target.neighbours], axis=1))

    start = jax.lax.fori_loop(0, spread, grow, start)
    reached = start < big
    start = jnp.where(reached, start, 0)
    own = reg.SurfaceTarget(
        verts, reg.vertex_normals(verts, setup.faces), setup.faces, setup.ring, setup.border,
        setup.graph.neighbours, None,
    )  # fmt: skip
    v = reg.walk_nearest(own, target.verts, start, steps)
    cl = reg.closest_points(own, target.verts, v)
    return jnp.where(reached, cl.distance, jnp.inf)


@functools.partial(jax.jit, static_argnames=("iters", "config"))
def register_batch(setup, targets, inits, lm_scan, lm_valid, *, iters: int, config: RegisterConfig):
    """Register a batch of frames (vmapped :func:`register_frame`); targets etc. stacked."""
    one = functools.partial(_register_one, iters=iters, config=config)
    return jax.vmap(one, in_axes=(None, 0, 0, 0, 0))(setup, targets, inits, lm_scan, lm_valid)


class RegistrationError(DataFileError):
    """A scan that cannot be registered (too few correspondences, degenerate)."""


def _bucket(x: int, step: int) -> int:
    return -(-max(x, 1) // step) * step


def _pow2(x: int) -> int:
    return 1 << max(int(x) - 1, 1).bit_length()


def padded_sizes(meshes, cell: float) -> dict:
    """Common padded sizes of :func:`vafx.kernels.registration.surface_target` for meshes.

    Rounded up (vertices and triangles to multiples of 4096, grid cells and
    capacity to powers of two) so that similar scans share compiled code.
    """
    sizes = reg.target_sizes(meshes, cell)
    return dict(
        num_verts=_bucket(sizes["num_verts"], 4096),
        num_faces=_bucket(sizes["num_faces"], 4096),
        ring_size=_bucket(sizes["ring_size"], 4),
        num_cells=_pow2(sizes["num_cells"]),
        capacity=_pow2(sizes["capacity"]),
        num_neighbours=_bucket(sizes["num_neighbours"], 4),
    )


def stacked_targets(meshes, cell: float, sizes: dict) -> reg.SurfaceTarget:
    """The :class:`~vafx.kernels.registration.SurfaceTarget` of each mesh, stacked."""
    ts = [reg.surface_target(v, f, cell, **sizes) for v, f in meshes]
    return jax.tree_util.tree_map(lambda *a: jnp.asarray(np.stack(a)), *ts)


class FrameReport(NamedTuple):
    """Per-frame residuals of a registration (template units).

    Attributes:
        to_scan_mean, to_scan_p95: distance of the matched template vertices to the scan.
        from_scan_mean, from_scan_p95: distance of the scan's vertices to the
            registered template (those within the search distance).
        unmatched: fraction of template vertices without a close scan point
            (farther than ``max_distance`` x h, on the scan's border, or
            facing another way): holes, and parts the scan does not cover.
        scan_far: fraction of scan vertices farther than the search distance
            from the registered template (parts the template does not cover).
    """

    to_scan_mean: float
    to_scan_p95: float
    from_scan_mean: float
    from_scan_p95: float
    unmatched: float
    scan_far: float


def register_sequence(
    setup: RegistrationSetup,
    scans: list[tuple[np.ndarray, np.ndarray]],
    landmarks: list[np.ndarray | None],
    config: RegisterConfig = RegisterConfig(),
    *,
    names: list[str] | None = None,
    min_matched: float = 0.3,
    progress=None,
) -> tuple[list[Registered], list[FrameReport]]:
    """Register the frames of one sequence, the first cold and the rest warm-started.

    Args:
        setup: from :func:`registration_setup`.
        scans: per frame (verts float[N_i, 3] in template units, faces int[F_i, 3]);
            the first is the one registered cold (the neutral frame).
        landmarks: per frame float[68, 3] (NaN rows missing) or None.
        config: the settings.
        names: per-frame names for errors (file paths).
        min_matched: a frame whose template vertices are matched less than
            this fraction is a :class:`RegistrationError`.
        progress: called with (frames done, frames).

    Returns:
        (per frame a :class:`Registered` of numpy arrays, per frame a :class:`FrameReport`).
    """
    names = names or [f"frame {i}" for i in range(len(scans))]
    h = float(setup.edge)
    cell = config.search_cell * h
    k = setup.basis.shape[0]
    b = config.batch
    lm = np.zeros((len(scans), 68, 3), np.float32)
    lv = np.zeros((len(scans), 68), bool)
    for i, p in enumerate(landmarks):
        if p is not None:
            ok = np.isfinite(p).all(1)
            lm[i, ok], lv[i] = p[ok], ok
    centroid = np.asarray(setup.mean).mean(0)
    out: list[Registered] = []
    dist_from: list[np.ndarray] = []
    sizes = padded_sizes(scans, cell)
    report_cell = config.max_distance * h
    # chunk 0: the first frame alone (cold); then chunks of b (warm)
    chunks = [[0]] + [list(range(i, min(i + b, len(scans)))) for i in range(1, len(scans), b)]
    prev = None
    done = 0
    for chunk in chunks:
        idx = chunk + [chunk[-1]] * ((1 if prev is None else b) - len(chunk))
        targets = stacked_targets([scans[i] for i in idx], cell, sizes)
        if prev is None:
            shift = np.stack([scans[i][0].mean(0) - centroid for i in idx]).astype(np.float32)
            pose = Pose(jnp.ones(len(idx)), jnp.broadcast_to(jnp.eye(3), (len(idx), 3, 3)),
                        jnp.asarray(shift))  # fmt: skip
            coeffs = jnp.zeros((len(idx), k))
            iters = config.prior_iterations
        else:
            pose = jax.tree_util.tree_map(
                lambda x: jnp.broadcast_to(x, (len(idx),) + x.shape), prev.pose
            )
            coeffs = jnp.broadcast_to(prev.coeffs, (len(idx), k))
            iters = config.warm_prior_iterations
        init = FrameInit(pose, coeffs, jnp.ones(len(idx), bool))
        res = register_batch(setup, targets, init, jnp.asarray(lm[idx]), jnp.asarray(lv[idx]),
                             iters=iters, config=config)  # fmt: skip
        res = jax.tree_util.tree_map(np.asarray, res)
        for j, i in enumerate(chunk):
            out.append(jax.tree_util.tree_map(lambda x: x[j], res))
            dist_from.append(res.scan_distance[j, : len(scans[i][0])])
        last = len(chunk) - 1
        prev = jax.tree_util.tree_map(lambda x: jnp.asarray(x[last]), res)
        done += len(chunk)
        if progress is not None:
            progress(done, len(scans))
    reports = []
    for i, r in enumerate(out):
        matched = float(r.matched.mean())
        if matched < min_matched:
            raise RegistrationError(
                names[i],
                f"cannot be registered: {100 * matched:.0f}% of the template's vertices found a "
                f"scan point within {config.max_distance:g} edge lengths ({min_matched:.0%} "
                "needed); is it a face in the template's units and roughly its pose, or are its "
                "landmarks wrong?",
            )
        d_to = r.distance[r.matched]
        used = np.zeros(len(scans[i][0]), bool)
        used[np.asarray(scans[i][1]).ravel()] = True
        d = dist_from[i][used]
        near = np.isfinite(d) & (d < report_cell)
        reports.append(
            FrameReport(
                float(d_to.mean()),
                float(np.percentile(d_to, 95)),
                float(d[near].mean()) if near.any() else float("nan"),
                float(np.percentile(d[near], 95)) if near.any() else float("nan"),
                1.0 - matched,
                1.0 - float(near.mean()),
            )  # fmt: skip
        )
    return out, reports
