"""Where one `vafx.seamless_clone` call spends its time, operation by operation.

Not a benchmark against an anchor (that is bench/bench_poisson.py): a
breakdown of the compiled solve from XLA's own profiler. It blends one case of
bench_poisson's family (the same source, target and mask), traces ``--repeat``
calls with :func:`jax.profiler.trace` (the Perfetto JSON, readable without any
profiler plug-in), matches the trace's operation names to the compiled HLO and
prints, per call:

- the operations by time: kind (loop fusion, copy, library reduction), output
  shape (which multigrid level) and how many times it ran;
- the totals by grid shape and kind, and the number of operations run.

Use it to see what limits the solver on a case (smoothing sweeps, the copies
XLA inserts in loops, dot products, level transfers), and to check what a
change to kernels/poisson.py does to each part. The times are the trace's
spans: XLA runs independent operations of one program concurrently on the
CPU's cores, so a span can include waiting for a core, and the spans may sum
to more than the call; compare a change's effect on the wall time with
bench_poisson.py (or A/B in one process), not on the spans alone. Run:

    python bench/profile_poisson.py [--size 256] [--aspect 1:1] [--mask centre] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

import jax

sys.path.insert(0, os.path.dirname(__file__))
from bench_poisson import MASKS, make_mask, photo  # noqa: E402

import vafx  # noqa: E402
from vafx._render import _blend  # noqa: E402


def hlo_table(text: str) -> dict[str, tuple[str, str]]:
    """Instruction name -> (output shape, operation) from a compiled module's text."""
    table = {}
    for line in text.split("\n"):
        m = re.match(r"\s*(?:ROOT )?%(\S+) = (\S+) ([\w-]+)\(", line)
        if m:
            table[m.group(1)] = (m.group(2), m.group(3))
    return table


def traced_ops(fn, repeat: int) -> tuple[collections.Counter, collections.Counter]:
    """Total microseconds and counts per trace event name over ``repeat`` calls of ``fn``."""
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            for _ in range(repeat):
                jax.block_until_ready(fn())
        (path,) = glob.glob(os.path.join(folder, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X":
            total[e["name"]] += e["dur"]
            count[e["name"]] += 1
    return total, count


def kind_of(op: str, name: str) -> str:
    if op == "copy":
        return "copy"
    if name.startswith(("ynn_", "xnn_")) or op in ("reduce", "dot"):
        return "reduction/dot"
    return "fusion" if op == "fusion" else op


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="longer side of the image, px")
    ap.add_argument("--aspect", default="1:1", help="height:width")
    ap.add_argument("--mask", default="centre", choices=MASKS)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    ah, aw = (int(v) for v in args.aspect.split(":"))
    h, w = (args.size * ah) // max(ah, aw), (args.size * aw) // max(ah, aw)
    from skimage import data

    src, dst = photo(data.astronaut(), h, w), photo(data.coffee(), h, w)
    mask = make_mask(args.mask, h, w, seed=args.size + MASKS.index(args.mask))
    # the program seamless_clone runs, as _blend._solve_chunks picks it (a large image's
    # channels go to one thread each): recorded from one call, not worked out again here
    picked, real = [], _blend._compiled_solve
    _blend._compiled_solve = lambda *key: picked.append((key, real(*key))) or picked[-1][1]
    try:
        _, info = vafx.seamless_clone(src, dst, mask, full_output=True)
    finally:
        _blend._compiled_solve = real
    (shape, *_), program = picked[-1]
    for _ in range(5):
        vafx.seamless_clone(src, dst, mask)
    (y0, y1, x0, x1) = _blend._crop_boxes(mask[None])[0]
    hb, wb = shape[2:]
    if program.compiled is None:
        sys.exit("the solve runs as plain jax.jit here (exported programs off): nothing to match")
    table = hlo_table(program.compiled.as_text())
    total, count = traced_ops(lambda: vafx.seamless_clone(src, dst, mask), args.repeat)
    n = args.repeat
    ops = [(t / n, count[k] / n, k, *table[k]) for k, t in total.items() if k in table]
    leaves = [o for o in ops if o[4] not in ("while", "conditional", "call")]
    call = total.get("ThunkExecutor::Execute (wait for completion)", 0) / n
    print(f"{h}x{w} {args.mask}: crop {y1 - y0}x{x1 - x0} in bucket {hb}x{wb}, program {shape}, "
          f"CG iterations {info.iterations.tolist()}, jax {jax.__version__}")  # fmt: skip
    print(f"per call: {sum(o[0] for o in leaves):.0f} us in {sum(o[1] for o in leaves):.0f} "
          f"operations (leaf thunks), the compiled call {call:.0f} us as waited on")  # fmt: skip
    print(f"\n{'us/call':>8s} {'runs':>5s}  {'kind':<14s} {'shape':<18s} name")
    for us, runs, name, shape, op in sorted(leaves, reverse=True)[: args.top]:
        print(f"{us:8.1f} {runs:5.0f}  {kind_of(op, name):<14s} {shape.split('{')[0]:<18s} {name}")
    by = collections.defaultdict(lambda: [0.0, 0.0])
    for us, runs, name, shape, op in leaves:
        key = (shape.split("{")[0], kind_of(op, name))
        by[key][0] += us
        by[key][1] += runs
    print(f"\n{'us/call':>8s} {'runs':>5s}  by shape and kind")
    for (shape, kind), (us, runs) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        print(f"{us:8.1f} {runs:5.0f}  {shape:<18s} {kind}")


if __name__ == "__main__":
    main()
