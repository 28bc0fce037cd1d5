"""SPLOCS per iteration: vafx's jit-compiled kernel vs a straightforward numpy/scipy version.

Same data, same parameters, same algorithm (the numpy version, tests/_splocs_reference.py,
updates an explicit residual one component at a time as Neumann et al.'s reference code
does; vafx works from Gram matrices). Data: FRAMES deformations of the ICT face region
(9,409 vertices), each a random sparse mix of the model's 53 expression shapes plus noise,
float32 for both. Geodesic supports: vafx looks them up in a table built once per template
(as fit_bins does), the numpy version runs scipy's Dijkstra per component. Per-iteration time = (time of 3 iterations - time of 1) / 2, so the
initialization and compilation are not counted.

Needs the ICT model ($VAFX_DATA or ../shared/data). Run:
    python bench/bench_splocs.py [--frames 2000] [--components 50]
"""

from __future__ import annotations

import argparse
import os
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
from vafx.kernels.splocs import SplocsParams, geodesic_table, splocs_fit  # noqa: E402

import vafx  # noqa: E402


def timed(fn, repeat=1):
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best.append(time.perf_counter() - t)
    return min(best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--components", type=int, default=50)
    args = ap.parse_args()
    data = os.environ.get("VAFX_DATA") or str(HERE.parents[1] / "shared" / "data")
    model = vafx.load_ict_npz(Path(data) / "ict" / "ict_facekit_light.npz")
    t = vafx.template_from_model(model, "face")
    basis = np.asarray(model.expression_basis)[:, t.vertex_ids]  # [53, n, 3], cm
    rng = np.random.default_rng(0)
    coef = rng.uniform(0, 1, (args.frames, 53)) * (rng.uniform(size=(args.frames, 53)) < 0.1)
    x = np.einsum("fk,knd->fnd", coef, basis) + rng.normal(
        0, 0.01, (args.frames, t.num_vertices, 3)
    )
    x = (x - x.mean(axis=0)).astype(np.float32)
    x /= np.sqrt((x**2).mean())
    graph = geodesic_table(t.vertices, t.faces, SplocsParams().support_max)  # as fit_bins does
    print(f"{args.frames} frames x {t.num_vertices} vertices, {args.components} components")

    def params(iters):
        return SplocsParams(num_components=args.components, num_iters=iters)

    xs, mask = jnp.asarray(x), jnp.ones(args.frames, bool)
    for it in (1, 3):  # compile both
        jax.block_until_ready(splocs_fit(xs, mask, graph, params(it)))
    t1 = timed(lambda: splocs_fit(xs, mask, graph, params(1)), 3)
    t3 = timed(lambda: splocs_fit(xs, mask, graph, params(3)), 3)
    ours = (t3 - t1) / 2
    r1 = timed(lambda: ref.fit(x, t.vertices, t.faces, params(1), dtype=np.float32))
    r3 = timed(lambda: ref.fit(x, t.vertices, t.faces, params(3), dtype=np.float32))
    anchor = (r3 - r1) / 2
    report("SPLOCS iteration", ours, anchor, "numpy/scipy")
    print(f"    initialization + 1 iteration: vafx {t1:.2f} s, numpy/scipy {r1:.2f} s")
    a = splocs_fit(xs, mask, graph, params(3))
    b = ref.fit(x, t.vertices, t.faces, params(3), dtype=np.float32)
    print(
        f"    objective after 3 iterations: vafx {float(a.objective[-1]):.2f}, numpy {b[-1][-1]:.2f}"
    )


if __name__ == "__main__":
    main()
