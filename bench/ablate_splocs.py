"""What each SPLOCS choice is worth: E after 10 iterations, one rule changed at a time.

numpy float64, on bench_splocs.py's data (2,000 ICT face deformations, K = 50, lambda = 2,
d_min = 1 cm, d_max = 6 cm, rho = 10, 10 ADMM steps), weights and the Gram
matrices as vafx computes them, E = ||X - W C||^2 + group term. The rules:

- weights: "published" (least-squares column projected on w >= 0, divided by its
  maximum, the component left as it is), "box" (clipped to [0, 1], then each column
  divided by its maximum and the component multiplied by it: vafx before 2026-12),
  "scale" (the column with its component's scale, exact: vafx now);
- start: "svd" (the residual's leading direction at the centre, as published and
  vafx now) or "row" (its largest row, vafx before);
- rules: "published" (every support recomputed, every component step kept) or
  "vafx" (moves and steps only where f does not grow);
- distances: "unfolded" (vafx's, see surface_edges), "edges" (plain edge paths) or
  "heat" (the published code's heat method).

Run: python bench/ablate_splocs.py [--frames 2000]   (about a minute per row)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import _splocs_reference as ref  # noqa: E402
from bench_splocs import data  # noqa: E402
from vafx.kernels.splocs import SplocsParams  # noqa: E402

ROWS = [  # (weights, start, rules, distances)
    ("box", "row", "vafx", "edges"),
    ("published", "svd", "published", "edges"),
    ("box", "svd", "published", "edges"),
    ("scale", "svd", "published", "edges"),
    ("scale", "row", "vafx", "edges"),
    ("scale", "svd", "vafx", "edges"),
    ("scale", "svd", "vafx", "unfolded"),
    ("published", "svd", "published", "heat"),
    ("scale", "svd", "vafx", "heat"),
]


def run(x, distance, p, weights, start, rules):
    f, n, _ = x.shape
    k = p.num_components
    x2 = x.reshape(f, -1)

    def supp(c):
        return p.sparsity * ref.support(distance(c), p.support_min, p.support_max)

    r = x.copy()
    w, c, centres = np.zeros((f, k)), np.zeros((k, n, 3)), np.zeros(k, int)
    for j in range(k):
        idx = int(np.argmax((r**2).sum(axis=(0, 2))))
        at = r[:, idx]
        if start == "svd":
            wj = ref._leading(at, True)
        else:
            u = at[np.argmax((at**2).sum(1))]
            wj = at @ (u / np.linalg.norm(u))
            wj = np.clip(wj / np.abs(wj).max(), 0, 1)
        local = 1 - supp(idx) / p.sparsity
        c[j] = np.tensordot(wj, r, 1) * local[:, None] / (wj @ wj)
        r -= wj[:, None, None] * c[j][None]
        w[:, j], centres[j] = wj, idx
    lam = np.stack([supp(i) for i in centres])
    dual = np.zeros_like(c)
    for _ in range(p.num_iters):
        c2 = c.reshape(k, -1)
        proj, gram = x2 @ c2.T, c2 @ c2.T
        for j in range(k):
            gkk = gram[j, j]
            if gkk <= 1e-8:
                w[:, j] = 0
                continue
            t = (proj[:, j] - w @ gram[:, j] + w[:, j] * gkk) / gkk
            if weights == "published":
                t = np.maximum(t, 0)
                w[:, j] = t / t.max() if t.max() > 0 else t
            elif weights == "box":
                w[:, j] = np.clip(t, 0, 1)
            else:
                a = np.maximum(t, 0)
                tau = ref._clip_level(a, ref.group(c[j], lam[j]) / gkk)
                w[:, j] = np.minimum(a, tau) / tau if tau > 0 else 0
                s = tau if tau > 0 else 0.0
                c[j] *= s
                dual[j] *= s
                gram[j, :] *= s
                gram[:, j] *= s
                proj[:, j] *= s
        if weights == "box":
            m = w.max(0)
            s = np.where(m > 0, m, 1)
            w /= s
            c *= s[:, None, None]
            dual *= s[:, None, None]
        moved = np.argmax((c**2).sum(-1), -1)
        for j in range(k):
            new = supp(moved[j])
            if rules == "published" or ref.group(c[j], new) <= ref.group(c[j], lam[j]):
                lam[j] = new
        gw, rhs = w.T @ w, w.T @ x2
        cho = scipy.linalg.cho_factor(gw + p.rho * np.eye(k))
        z, u = c.reshape(k, -1).copy(), dual.reshape(k, -1)
        for _ in range(p.num_admm_iters):
            cc = scipy.linalg.cho_solve(cho, rhs + p.rho * (z - u))
            z = ref.prox((cc + u).reshape(k, n, 3), lam, 1 / p.rho).reshape(k, -1)
            u = u + cc - z
        dual = u.reshape(k, n, 3)
        new_c = z.reshape(k, n, 3)
        if (
            rules == "published"
            or ref.objective(x, w, new_c, lam)[0] <= ref.objective(x, w, c, lam)[0]
        ):
            c = new_c
    return ref.energy(x, w, c, lam)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args()
    t, x = data(args.frames)
    x = x.astype(np.float64)
    p = SplocsParams(num_iters=10)
    heat = ref.HeatGeodesics(t.vertices, t.faces)
    cache: dict = {}

    def graph(kind):
        def distance(c):
            if kind == "heat":
                return heat(c)
            key = (kind, c)
            if key not in cache:
                if kind == "unfolded":
                    cache[key] = ref.distances(t.vertices, t.faces, c, p.support_max)[0]
                else:
                    cache[key] = ref.edge_distances(t.vertices, t.faces, c)[0]
            return cache[key]

        return distance

    print("| weights | start | rules | distances | E after 10 |\n|---|---|---|---|---|")
    for weights, start, rules, dist in ROWS:
        t0 = time.perf_counter()
        e = run(x, graph(dist), p, weights, start, rules)
        print(
            f"| {weights} | {start} | {rules} | {dist} | {e:,.0f} |  ({time.perf_counter() - t0:.0f} s)"
        )


if __name__ == "__main__":
    main()
