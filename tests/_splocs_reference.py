"""A straightforward numpy/scipy implementation of SPLOCS, as published, for tests and bench.

Independent of vafx's kernel: explicit residual updates per component (as in
Neumann et al.'s reference code), scipy's Dijkstra for geodesic distances and
scipy's Cholesky. It follows the same rules as vafx.kernels.splocs (box-
constrained weights with max-normalization, support moves that do not raise the
group term, safeguarded ADMM), so the two can be compared iterate by iterate.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph


def distances(vertices, faces, sources, max_dist):
    f = np.asarray(faces)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    length = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    n = len(vertices)
    g = scipy.sparse.coo_matrix((length, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    d = scipy.sparse.csgraph.dijkstra(
        g, directed=False, indices=np.atleast_1d(sources), limit=max_dist
    )
    return d


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
    r = x.reshape(len(x), -1) - w @ c.reshape(len(c), -1)
    return 0.5 * (r**2).sum() + group(c, lam).sum(), np.sqrt((r**2).sum() / (x**2).sum())


def fit(x, vertices, faces, p, mask=None, dtype=np.float64):
    """Returns (weights, components, centres, lam, objective history)."""
    x = np.array(x, dtype=dtype)
    if mask is not None:
        x[~mask] = 0
    f, n, _ = x.shape
    k = p.num_components
    lo = 0.0 if p.nonnegative else -1.0
    mk = np.ones(f, dtype) if mask is None else mask.astype(dtype)
    # greedy initialization
    r = x.copy()
    w = np.zeros((f, k), dtype)
    c = np.zeros((k, n, 3), dtype)
    centres = np.zeros(k, int)
    for j in range(k):
        centre = int(np.argmax((r**2).sum(axis=(0, 2))))
        at = r[:, centre]
        u = at[np.argmax((at**2).sum(axis=1))]
        u = u / max(np.linalg.norm(u), 1e-30)
        wj = at @ u
        wj = np.clip(wj / max(np.abs(wj).max(), 1e-30), lo, 1) * mk
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
        # weights: one component at a time against the explicit residual
        rr = x2 - w @ c.reshape(k, -1)
        for j in range(k):
            cj = c[j].ravel()
            rr += np.outer(w[:, j], cj)
            nn = cj @ cj
            w[:, j] = np.clip(rr @ cj / nn, lo, 1) * mk if nn > 0 else 0
            rr -= np.outer(w[:, j], cj)
        m = np.abs(w).max(axis=0)
        s = np.where(m > 0, m, 1)
        w /= s
        c *= s[:, None, None]
        u_dual *= s[:, None, None]
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
