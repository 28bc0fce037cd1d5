"""SPLOCS per iteration: vafx's kernel against Neumann et al.'s published algorithm.

The anchor is ``tests/_splocs_reference.py: fit_published``, the algorithm of the
authors' code (github.com/tneumann/splocs, ``sploc.py``) written anew in Python 3
with no change: float64, weights by block-coordinate descent on an explicit
residual, each column projected on w >= 0 and divided by its maximum, every
support recomputed each iteration, ADMM with the dual kept across iterations and
the components set to the split variable, geodesics by the heat method. vafx: its
jit-compiled kernel in float32 (Gram matrices, exact column-and-scale weight
step, safeguarded steps, geodesics over unfolded edges looked up in a table
built once per template, as fit_bins does).

Both run on the same data, with the issue's settings (K = 50, lambda = 2,
d_min = 1 cm, d_max = 6 cm, rho = 10, 10 ADMM steps, non-negative weights,
supports updated every iteration), and one function evaluates both:
E = ||X - W C||^2 + sum_k sum_v Lambda[k, v] ||C[k, v]|| (what the published code
prints; each with its own Lambda). Data: FRAMES deformations of the ICT face
region (9,409 vertices), each a random sparse mix of the model's 53 expression
shapes plus noise, centred and scaled to unit RMS.

Printed: E after each iteration for both and their ratio, the median seconds of
one iteration for both and their ratio, and initialization plus all iterations.
``--same-distances`` also runs the published algorithm on vafx's distances (the
same Lambda rule for both: the algorithms alone compared).

Needs the ICT model ($VAFX_DATA or ../shared/data). Run:
    python bench/bench_splocs.py [--frames 2000] [--components 50] [--iters 10]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import _splocs_reference as ref  # noqa: E402
from _timing import report  # noqa: E402
from vafx.kernels.splocs import (  # noqa: E402
    Geodesics,
    SplocsParams,
    geodesic_table,
    splocs_fit,
    splocs_init,
    splocs_step,
)

import vafx  # noqa: E402


def data(frames: int):
    root = os.environ.get("VAFX_DATA") or str(HERE.parents[1] / "shared" / "data")
    model = vafx.load_ict_npz(Path(root) / "ict" / "ict_facekit_light.npz")
    t = vafx.template_from_model(model, "face")
    basis = np.asarray(model.expression_basis)[:, t.vertex_ids]  # [53, n, 3], cm
    rng = np.random.default_rng(0)
    coef = rng.uniform(0, 1, (frames, 53)) * (rng.uniform(size=(frames, 53)) < 0.1)
    x = np.einsum("fk,knd->fnd", coef, basis) + rng.normal(0, 0.01, (frames, t.num_vertices, 3))
    x = (x - x.mean(axis=0)).astype(np.float32)
    x /= np.sqrt((x**2).mean())
    return t, x


def run_vafx(x, geo, p):
    """E after each iteration and the seconds of each iteration (compiled beforehand)."""
    xs, mask = jnp.asarray(x), jnp.ones(len(x), bool)
    init = jax.jit(functools.partial(splocs_init, params=p))
    step = jax.jit(functools.partial(splocs_step, params=p))
    state = jax.block_until_ready(init(xs, mask, geo))
    jax.block_until_ready(step(xs, mask, geo, state))  # compile
    energies, seconds = [], []
    for _ in range(p.num_iters):
        t0 = time.perf_counter()
        state = jax.block_until_ready(step(xs, mask, geo, state))
        seconds.append(time.perf_counter() - t0)
        w, c, lam = (
            np.asarray(a, np.float64) for a in (state.weights, state.components, state.lam)
        )
        energies.append(ref.energy(x.astype(np.float64), w, c, lam))
    return np.array(energies), np.array(seconds)


def table_lookup(geo: Geodesics, n: int):
    nb, dd = np.asarray(geo.neighbours), np.asarray(geo.distances, np.float64)

    def distance(source):
        d = np.full(n + 1, np.inf)
        d[nb[source]] = dd[source]
        return d[:n]

    return distance


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--components", type=int, default=50)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--same-distances", action="store_true")
    args = ap.parse_args()
    t, x = data(args.frames)
    p = SplocsParams(num_components=args.components, num_iters=args.iters)
    print(
        f"{args.frames} frames x {t.num_vertices} vertices, K = {p.num_components}, "
        f"lambda = {p.sparsity}, d = {p.support_min}-{p.support_max} cm, rho = {p.rho}, "
        f"{p.num_admm_iters} ADMM steps, {p.num_iters} iterations; jax {jax.__version__} "
        f"on {jax.default_backend()}"
    )
    geo = geodesic_table(t.vertices, t.faces, p.support_max)  # as fit_bins does
    geo = Geodesics(jnp.asarray(geo.neighbours), jnp.asarray(geo.distances))

    ours_e, ours_s = run_vafx(x, geo, p)
    xs, mask = jnp.asarray(x), jnp.ones(args.frames, bool)
    jax.block_until_ready(splocs_fit(xs, mask, geo, p))  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(splocs_fit(xs, mask, geo, p))
    ours_total = time.perf_counter() - t0

    heat = ref.HeatGeodesics(t.vertices, t.faces)  # once per mesh, as published

    def progress(it, e, s):
        print(f"    published algorithm, iteration {it}: E = {e:,.0f} ({s:.1f} s)", flush=True)

    t0 = time.perf_counter()
    *_, pub_e, pub_s = ref.fit_published(x, heat, p, progress)
    pub_total = time.perf_counter() - t0
    same = None
    if args.same_distances:
        same = ref.fit_published(x, table_lookup(geo, t.num_vertices), p)[3]

    print()
    head = "| after iteration | vafx | published (heat geodesics) | published / vafx |"
    if same is not None:
        head += " published on vafx's distances |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for i in range(p.num_iters):
        row = f"| {i + 1} | {ours_e[i]:,.0f} | {pub_e[i]:,.0f} | {pub_e[i] / ours_e[i]:.3f} |"
        if same is not None:
            row += f" {same[i]:,.0f} |"
        print(row)
    print()
    report(
        "SPLOCS iteration (median)",
        statistics.median(ours_s),
        statistics.median(pub_s),
        "published",
    )
    report("initialization + all iterations", ours_total, pub_total, "published")
    print(
        f"    E after {p.num_iters}: vafx {ours_e[-1]:,.0f}, published {pub_e[-1]:,.0f} "
        f"({100 * (ours_e[-1] / pub_e[-1] - 1):+.1f}% for vafx)"
    )


if __name__ == "__main__":
    main()
