"""Two numpy/scipy SPLOCS implementations, independent of vafx's kernel, for tests and bench.

- :func:`fit` follows vafx's rules (greedy start from the residual's leading
  direction, each weight column solved exactly together with its component's
  scale, support moves that do not raise the group term, safeguarded ADMM), but
  computes it the plain way: an explicit residual updated one component at a
  time, the column's clipping level by bisection, scipy's Dijkstra over a graph
  this module builds itself (:func:`unfolded_edges`, written from the rule, not
  from vafx's ``surface_edges``) and scipy's Cholesky. The two can be compared
  iterate by iterate.
- :func:`fit_published` is the algorithm of Neumann et al.'s published code
  (github.com/tneumann/splocs, ``sploc.py`` and ``geodesic.py``), written anew:
  float64; weights by block-coordinate descent on the explicit residual, each
  column projected on w >= 0 and divided by its maximum (the component's scale
  left to the next component step); every support map recomputed from the
  component's largest displacement each iteration; ADMM with the dual kept
  across iterations and the split variable Z taken as the new components;
  geodesic distances by the heat method (:class:`HeatGeodesics`, Crane et al.
  2013, m = 10, t = m h^2 with h the mean length of all three edges of every
  triangle). It returns E = ||X - W C||^2 + sum Lambda ||C|| per iteration, the
  value the published code prints.

Deviations from the published code (everything else is its algorithm, step for step):

- Python 3 and arrays in, results out: no HDF5 files, no printing; the caller
  subtracts the rest shape and scales X by 1 / std (as ``sploc.py`` does inside);
- the support maps' distances come from a callable: tests pass :func:`distances`
  (vafx's rule) or :class:`HeatGeodesics` (the published one);
- :class:`HeatGeodesics` factorizes L - 1e-10 I for the final Poisson solve, where
  the published code factorizes the singular L itself (SuperLU may refuse it); its
  cotangents are dot / |cross| where the published takes 1 / tan(arccos(.)) of
  normalized vectors (equal up to rounding);
- the published code's Python 2 details (``xrange``, ``map``, ``print``) are Python 3.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg


def unfolded_edges(vertices, faces) -> dict:
    """{(i, j), i < j: length}: the mesh's edges, and across each interior edge ab the segment
    between its two opposite vertices c, d, with the triangles abc and abd unfolded into one
    plane, where that segment crosses ab (written here without vafx's code, one interior
    edge at a time: the same rule as vafx.kernels.splocs.surface_edges).
    """
    v = np.asarray(vertices, np.float64)
    out: dict = {}

    def put(i, j, d):
        key = (min(i, j), max(i, j))
        out[key] = min(out.get(key, np.inf), d)

    across: dict = {}
    for tri in np.asarray(faces, np.int64).tolist():
        for k in range(3):
            a, b, c = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
            put(a, b, float(np.linalg.norm(v[a] - v[b])))
            across.setdefault((min(a, b), max(a, b)), []).append(c)
    for (a, b), opp in across.items():
        if len(opp) != 2:  # a boundary edge, or one of a non-manifold fan
            continue
        c, d = opp
        e = v[b] - v[a]
        length = np.linalg.norm(e)
        unit = e / length
        # each opposite vertex in the edge's frame: along ab, and its distance from the line
        xc, xd = (v[c] - v[a]) @ unit, (v[d] - v[a]) @ unit
        hc = np.linalg.norm(v[c] - v[a] - xc * unit)
        hd = np.linalg.norm(v[d] - v[a] - xd * unit)
        if hc + hd == 0:
            continue
        cross = xc + (xd - xc) * hc / (hc + hd)  # where c-d, unfolded, meets the line ab
        if 0.0 <= cross <= length:
            put(c, d, float(np.hypot(xc - xd, hc + hd)))
    return out


def distances(vertices, faces, sources, max_dist):
    """Dijkstra over the mesh's edges and unfolded edges (:func:`unfolded_edges`; float[S, N])."""
    n = len(vertices)
    edges = unfolded_edges(vertices, faces)
    ij = np.array(list(edges), np.int64).reshape(-1, 2)
    length = np.array(list(edges.values()), np.float64)
    g = scipy.sparse.coo_matrix((length, (ij[:, 0], ij[:, 1])), shape=(n, n)).tocsr()
    return scipy.sparse.csgraph.dijkstra(
        g, directed=False, indices=np.atleast_1d(sources), limit=max_dist
    )


def edge_distances(vertices, faces, sources):
    """Plain shortest paths along mesh edges (float[S, N]), the estimate vafx no longer uses."""
    f = np.asarray(faces)
    e = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1), axis=0)
    n = len(vertices)
    length = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    g = scipy.sparse.coo_matrix((length, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    return scipy.sparse.csgraph.dijkstra(g, directed=False, indices=np.atleast_1d(sources))


class HeatGeodesics:
    """Geodesic distances by the heat method (Crane, Weischedel, Wardetzky 2013).

    Cotangent Laplacian L and lumped vertex areas A; heat flows for t = m h^2
    (h the mean edge length), its normalized gradient is integrated back by a
    Poisson solve. ``self(source)`` is float[N], shifted so that its minimum is 0.
    """

    def __init__(self, vertices, faces, m=10.0):
        v = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        n = len(v)
        rows, cols, vals = [], [], []
        self._cot = []
        for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
            u, w = v[f[:, b]] - v[f[:, a]], v[f[:, c]] - v[f[:, a]]
            cot = np.sum(u * w, 1) / np.linalg.norm(np.cross(u, w), axis=1)  # angle at a
            self._cot.append(cot)
            rows += [f[:, b], f[:, c]]
            cols += [f[:, c], f[:, b]]
            vals += [0.5 * cot, 0.5 * cot]
        lap = scipy.sparse.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        ).tocsr()
        lap = lap - scipy.sparse.diags(np.asarray(lap.sum(axis=1)).ravel())
        normal = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        self._area = 0.5 * np.linalg.norm(normal, axis=1)
        self._normal = normal / (2 * self._area)[:, None]
        mass = np.bincount(f.ravel(), np.repeat(self._area / 3, 3), minlength=n)
        # t = m h^2, h the mean length of every triangle's three edges (as geodesic.py)
        edges = np.concatenate([v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 1]],
                                v[f[:, 0]] - v[f[:, 2]]])  # fmt: skip
        t = m * np.mean(np.linalg.norm(edges, axis=1)) ** 2
        self._heat = scipy.sparse.linalg.splu((scipy.sparse.diags(mass) - t * lap).tocsc()).solve
        # L is singular (constants): a tiny shift keeps the factorization regular
        self._poisson = scipy.sparse.linalg.splu((lap - 1e-10 * scipy.sparse.eye(n)).tocsc()).solve
        self._v, self._f = v, f

    def __call__(self, source) -> np.ndarray:
        v, f = self._v, self._f
        u0 = np.zeros(len(v))
        u0[source] = 1.0
        u = self._heat(u0)
        grad = np.zeros((len(f), 3))
        for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
            grad += np.cross(self._normal, v[f[:, c]] - v[f[:, b]]) * u[f[:, a], None]
        grad /= (2 * self._area)[:, None]
        field = -grad / np.linalg.norm(grad, axis=1, keepdims=True)
        div = np.zeros(len(v))
        for (a, b, c), i_b, i_c in (((0, 1, 2), 1, 2), ((1, 2, 0), 2, 0), ((2, 0, 1), 0, 1)):
            e1, e2 = v[f[:, b]] - v[f[:, a]], v[f[:, c]] - v[f[:, a]]
            # cotangents of the angles at c (opposite e1) and at b (opposite e2)
            flux = self._cot[i_c] * np.sum(e1 * field, 1) + self._cot[i_b] * np.sum(e2 * field, 1)
            div += np.bincount(f[:, a], 0.5 * flux, minlength=len(v))
        phi = self._poisson(div)
        return phi - phi.min()


def support(d, d_min, d_max):
    return np.clip((d - d_min) / (d_max - d_min), 0.0, 1.0)


def prox(x, lam, beta):
    norm = np.sqrt((x**2).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(norm > 0, np.maximum(0.0, 1 - beta * lam / norm), 0.0)
    return x * shrink[..., None]


def group(c, lam):
    return (lam * np.sqrt((c**2).sum(axis=-1))).sum(axis=-1)


def objective(x, w, c, lam):
    """(f = 1/2 ||X - W C||^2 + group term, relative residual)."""
    r = x.reshape(len(x), -1) - w @ c.reshape(len(c), -1)
    return 0.5 * (r**2).sum() + group(c, lam).sum(), np.sqrt((r**2).sum() / (x**2).sum())


def energy(x, w, c, lam):
    """E = ||X - W C||^2 + group term, as the published code prints it."""
    r = x.reshape(len(x), -1) - w @ c.reshape(len(c), -1)
    return float((r**2).sum() + group(c, lam).sum())


def _leading(at, nonneg):
    """Weights of a new component from the residual at its centre (float[F, 3] -> float[F])."""
    _, _, vt = np.linalg.svd(at, full_matrices=False)
    w = at @ vt[0]
    if nonneg:
        pos, neg = _project_weight(w), _project_weight(-w)
        return pos if np.linalg.norm(pos) >= np.linalg.norm(neg) else neg
    elif w[np.argmax(np.abs(w))] < 0:
        w = -w
    m = np.abs(w).max()
    return w / m if m > 0 else w


def _clip_level(a, s):
    """tau >= 0 with sum (a - tau)_+ = s, by bisection then exactly on its active set."""
    if s >= a.sum():
        return 0.0
    lo, hi = 0.0, float(a.max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(a - mid, 0).sum() > s else (lo, mid)
    active = a > lo
    return max((a[active].sum() - s) / active.sum(), 0.0)


def fit(x, vertices, faces, p, mask=None, dtype=np.float64):
    """vafx's rules. Returns (weights, components, centres, lam, f history)."""
    x = np.array(x, dtype=dtype)
    if mask is not None:
        x[~mask] = 0
    f, n, _ = x.shape
    k = p.num_components
    mk = np.ones(f, dtype) if mask is None else mask.astype(dtype)
    r = x.copy()
    w = np.zeros((f, k), dtype)
    c = np.zeros((k, n, 3), dtype)
    centres = np.zeros(k, int)
    for j in range(k):
        centre = int(np.argmax((r**2).sum(axis=(0, 2))))
        wj = _leading(r[:, centre], p.nonnegative) * mk
        local = 1 - support(
            distances(vertices, faces, centre, p.support_max)[0], p.support_min, p.support_max
        )
        cj = np.tensordot(wj, r, 1) / (wj @ wj) if wj @ wj > 0 else np.zeros((n, 3))
        cj = cj * local[:, None]
        r -= wj[:, None, None] * cj[None]
        w[:, j], c[j], centres[j] = wj, cj, centre
    lam = p.sparsity * support(
        distances(vertices, faces, centres, p.support_max), p.support_min, p.support_max
    )
    lam = lam.astype(dtype)
    history = [objective(x, w, c, lam)[0]]
    u_dual = np.zeros_like(c)
    x2 = x.reshape(f, -1)
    for _ in range(p.num_iters):
        # each column with its component's scale, against the explicit residual
        rr = x2 - w @ c.reshape(k, -1)
        for j in range(k):
            cj = c[j].ravel()
            rr += np.outer(w[:, j], cj)
            nn = cj @ cj
            if nn > 0:
                t = rr @ cj / nn * mk
                a = np.maximum(t, 0) if p.nonnegative else np.abs(t)
                tau = _clip_level(a, group(c[j], lam[j]) / nn)
                u = np.minimum(a, tau) * (1 if p.nonnegative else np.sign(t))
                w[:, j] = u / tau if tau > 0 else 0
                c[j] *= tau
                u_dual[j] *= tau
            else:
                w[:, j] = 0
            rr -= np.outer(w[:, j], c[j].ravel())
        if p.update_support:
            new_c = np.argmax((c**2).sum(axis=-1), axis=-1)
            new_lam = p.sparsity * support(
                distances(vertices, faces, new_c, p.support_max), p.support_min, p.support_max
            )
            better = group(c, new_lam) <= group(c, lam)
            lam[better] = new_lam[better].astype(dtype)
            centres[better] = new_c[better]
        gw = w.T @ w
        rhs = w.T @ x2
        cho = scipy.linalg.cho_factor(gw + p.rho * np.eye(k, dtype=dtype))
        z = c.reshape(k, -1).copy()
        uu = u_dual.reshape(k, -1)
        for _ in range(p.num_admm_iters):
            cc = scipy.linalg.cho_solve(cho, rhs + p.rho * (z - uu))
            z = prox((cc + uu).reshape(k, n, 3), lam, 1 / p.rho).reshape(k, -1)
            uu = uu + cc - z

        def f_of(cf):
            return (
                -(cf * rhs).sum()
                + 0.5 * (gw * (cf @ cf.T)).sum()
                + group(cf.reshape(k, n, 3), lam).sum()
            )

        if f_of(z) <= f_of(c.reshape(k, -1)):
            c = z.reshape(k, n, 3)
        u_dual = uu.reshape(k, n, 3)
        history.append(objective(x, w, c, lam)[0])
    return w, c, centres, lam, np.array(history)


def _project_weight(v):
    v = np.maximum(0.0, v)
    m = v.max()
    return v if m == 0 else v / m


def fit_published(x, distance, p, on_iteration=None):
    """Neumann et al.'s published algorithm (non-negative weights), float64.

    Args:
        x: float[F, N, 3], the scaled deformations.
        distance: callable, source vertex -> float[N] geodesic distances
            (the published code: :class:`HeatGeodesics`).
        p: SplocsParams (num_components, num_iters, sparsity, num_admm_iters,
            rho, support_min, support_max).
        on_iteration: optional callable(iteration, E, seconds of that iteration).

    Returns:
        (weights, components, lam, E after each iteration float[num_iters],
        seconds of each iteration float[num_iters]).
    """
    x = np.array(x, np.float64)
    f, n, _ = x.shape
    k = p.num_components
    r = x.copy()
    c, w = [], []
    for _ in range(k):
        idx = int(np.argmax((r**2).sum(axis=2).sum(axis=0)))
        _, s, vt = np.linalg.svd(r[:, idx, :].T, full_matrices=False)
        wk = s[0] * vt[0]
        pos, neg = _project_weight(wk), _project_weight(-wk)
        wk = pos if np.linalg.norm(pos) > np.linalg.norm(neg) else neg
        local = 1 - support(distance(idx), p.support_min, p.support_max)
        ck = np.tensordot(wk, r, (0, 0)) * local[:, None] / np.inner(wk, wk)
        c.append(ck)
        w.append(wk)
        r -= np.outer(wk, ck).reshape(r.shape)
    c = np.array(c)
    w = np.array(w).T
    lam = np.empty((k, n))
    dual = np.zeros((k, n, 3))
    history = []
    seconds = []
    for it in range(p.num_iters):
        start = time.perf_counter()
        rflat = r.reshape(f, n * 3)
        for j in range(k):
            cj = c[j].ravel()
            cn = np.inner(cj, cj)
            if cn <= 1e-8:  # as published: the column is zeroed, the residual left as it was
                w[:, j] = 0
                continue
            rflat += np.outer(w[:, j], cj)
            w[:, j] = _project_weight(rflat @ cj / cn)
            rflat -= np.outer(w[:, j], cj)
        for j in range(k):
            idx = int(np.argmax((c[j] ** 2).sum(axis=1)))
            lam[j] = p.sparsity * support(distance(idx), p.support_min, p.support_max)
        z = c.copy()
        gram = w.T @ w
        rhs = w.T @ x.reshape(f, -1)
        cho = scipy.linalg.cho_factor(gram + p.rho * np.eye(k))
        for _ in range(p.num_admm_iters):
            c = scipy.linalg.cho_solve(cho, rhs + p.rho * (z - dual).reshape(rhs.shape))
            c = c.reshape(k, n, 3)
            z = prox(c + dual, lam, 1.0 / p.rho)
            dual = dual + c - z
        c = z
        r = x - np.tensordot(w, c, (1, 0))
        e = float((r**2).sum() + np.sum(lam * np.sqrt((c**2).sum(axis=2))))
        seconds.append(time.perf_counter() - start)
        history.append(e)
        if on_iteration is not None:
            on_iteration(it + 1, e, seconds[-1])
    return w, c, lam, np.array(history), np.array(seconds)
