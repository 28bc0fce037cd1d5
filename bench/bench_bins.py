"""All 100 per-bin models of a synthetic ICT gallery: wall time and peak memory.

Builds (or reuses, with --gallery) a synthetic gallery of FRAMES frames of the ICT face
region, then fits every bin with `vafx.fit_bins` (defaults: 50 components, 20 iterations,
bins capped at 2,000 frames for SPLOCS) and reports the time, the peak resident memory
and the per-bin residuals. An internal figure, no anchor: nothing else fits 100 bins of
SPLOCS, and no reference runs here (this docstring once promised a numpy run of the
largest bin that the script never made). The per-iteration comparison with the published
algorithm, on the same input in one process, is bench/bench_splocs.py's.

Run: python bench/bench_bins.py [--frames 100000] [--gallery PATH] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vafx.kernels.splocs import SplocsParams  # noqa: E402

import vafx  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--gallery", type=Path, help="an existing gallery to fit")
    ap.add_argument("--components", type=int, default=50)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the generated gallery")
    args = ap.parse_args()
    tmp = None
    if args.gallery and (args.gallery / "gallery.json").exists():
        g = vafx.open_gallery(args.gallery)
    else:
        data = os.environ.get("VAFX_DATA") or str(HERE.parents[1] / "shared" / "data")
        model = vafx.load_ict_npz(Path(data) / "ict" / "ict_facekit_light.npz")
        dest = args.gallery or Path(tempfile.mkdtemp(prefix="vafx-bench-bins-")) / "g"
        tmp = None if (args.keep or args.gallery) else dest.parent
        t0 = time.perf_counter()
        g = vafx.synthesize_gallery(dest, model, vafx.SynthConfig(subjects=-(-args.frames // 672)))
        print(f"gallery: {g} in {time.perf_counter() - t0:.0f} s")
    try:
        params = SplocsParams(num_components=args.components, num_iters=args.iters)
        t0 = time.perf_counter()
        m = vafx.fit_bins(
            g,
            params,
            progress=lambda d, t: print(
                f"  chunk {d}/{t} at {time.perf_counter() - t0:.0f} s", flush=True
            ),
        )
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        fit = m.status == 0
        res = m.residual[fit][:, -1]
        print(
            f"fit_bins: {g.num_frames} frames, {fit.sum()} bins fitted on {m.fitted_frames.sum()} frames, "
            f"{(m.status == 1).sum()} mean only, {(m.status == 2).sum()} interpolated: {dt:.0f} s, "
            f"peak RSS {rss:.2f} GiB; final relative residual median {np.median(res):.3f} "
            f"(range {res.min():.3f} to {res.max():.3f})"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
