"""``vafx bins ...``: fit, build and inspect the per-bin expression models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import (
    _add_model_arg,
    _bin_models_for,
    _Progress,
    _say_devices,
)


def _cmd_bins_fit(args) -> int:
    from .._expression._bins import fit_bins, save_bin_models
    from .._gallery._store import open_gallery
    from ..kernels.splocs import SplocsParams

    g = open_gallery(args.gallery)
    print(g, file=sys.stderr)
    _say_devices("bins are split over")
    params = SplocsParams(
        num_components=args.components,
        num_iters=args.iters,
        sparsity=args.sparsity,
        num_admm_iters=args.admm_iters,
        rho=args.rho,
        nonnegative=not args.symmetric,
    )
    models = fit_bins(
        g,
        params,
        support=(args.support_min, args.support_max),
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        chunk_bytes=int(args.chunk_mb * 2**20),
        progress=_Progress("chunks"),
        splocs=not args.means_only,
        expression=args.expression,
        magnitude=args.magnitude,
        size_quantile=args.size_quantile,
    )
    for line in models.summary():
        print(line)
    print(save_bin_models(args.output, models))
    return 0


def _cmd_bins_info(args) -> int:
    from .._expression._bins import load_bin_models

    m = load_bin_models(args.models)
    p = m.meta["params"]
    print(
        f"{args.models}: {m.num_bins} bins, {m.components.shape[1]} components, "
        f"{m.meta['vertices']} vertices ({m.meta['model'] or 'mesh'} {m.meta['region']}), "
        f"{p['num_iters']} iterations, sparsity {p['sparsity']}"
    )
    for line in m.summary():
        print(line)
    return 0


def _cmd_bins_default(args) -> int:
    from .._expression._defaults import default_bins_path
    from .._model._resolve import load_model

    model = load_model(args.model)
    path = default_bins_path(model, splocs=args.splocs)
    if args.path:
        print(path)
        return 0
    models = _bin_models_for(argparse.Namespace(bins=None, sample=args.splocs), model)
    print(models.summary()[-1])
    print(path)
    return 0


def add_commands(sub) -> None:
    """Add this group's commands to the subparsers ``sub`` of :func:`build_parser`."""
    pb = sub.add_parser("bins", help="the per-bin SPLOCS expression models")
    bsub = pb.add_subparsers(dest="bins_command", metavar="ACTION", required=True)
    p = bsub.add_parser(
        "fit",
        help="fit the 100 per-bin models of a gallery",
        description="Per V-A bin: mean deformation, median V-A label and a sparse localized "
        "(SPLOCS) blendshape model, all bins in vmapped, jit-compiled chunks.",
    )
    p.add_argument("gallery", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="model file (.npz)")
    p.add_argument("--components", type=int, default=50, help="components per bin (default 50)")
    p.add_argument("--iters", type=int, default=20, help="alternating iterations (default 20)")
    p.add_argument("--sparsity", type=float, default=2.0, help="lambda of the l1/l2 term")
    p.add_argument("--admm-iters", type=int, default=10)
    p.add_argument("--rho", type=float, default=10.0, help="ADMM penalty")
    p.add_argument("--support-min", type=float, default=0.04,
                   help="support d_min, fraction of the template's diagonal")  # fmt: skip
    p.add_argument("--support-max", type=float, default=0.2,
                   help="support d_max, fraction of the template's diagonal")  # fmt: skip
    p.add_argument("--symmetric", action="store_true",
                   help="weights in [-1, 1] (max |w| = 1) instead of [0, 1]")  # fmt: skip
    p.add_argument("--min-frames", type=int, default=10, help="fewer frames: mean only")
    p.add_argument("--max-frames", type=int, default=2000, help="subset size for larger bins")
    p.add_argument("--chunk-mb", type=float, default=1024, help="memory per chunk of bins")
    p.add_argument("--means-only", action="store_true",
                   help="bin means and labels only, no SPLOCS (seconds; enough for synthesis "
                   "without --sample)")  # fmt: skip
    p.add_argument("--expression", choices=("mean", "median"), default="mean",
                   help="a bin's expression: the mean of its frames (the paper's, default) or "
                   "their per-coordinate median (a consensus; vafx's default bins)")  # fmt: skip
    p.add_argument("--magnitude", type=float, default=None, metavar="G",
                   help="scale each bin's expression to its frames' typical size, by at most "
                   "G >= 1 (default: unscaled; vafx's default bins: 2)")  # fmt: skip
    p.add_argument("--size-quantile", type=float, default=None, metavar="Q",
                   help="with --magnitude: the typical size is this quantile of the frames' "
                   "sizes (default: their mean; vafx's default bins: 0.75)")  # fmt: skip
    p.set_defaults(func=_cmd_bins_fit)
    p = bsub.add_parser(
        "default",
        help="build (or locate) the default bin models that synthesize and augment use",
        description="The default bin models of a face model: the bins' means and labels from "
        "vafx's default synthetic gallery (docs/gallery.md), built once into the cache (under "
        "a minute) and then read from there. --splocs adds the SPLOCS blendshapes that "
        "--sample needs (minutes).",
    )
    _add_model_arg(p)
    p.add_argument("--splocs", action="store_true", help="the SPLOCS blendshape models too")
    p.add_argument("--path", action="store_true", help="only print where they are cached")
    p.set_defaults(func=_cmd_bins_default)
    p = bsub.add_parser("info", help="summarize a bin-models file")
    p.add_argument("models", type=Path)
    p.set_defaults(func=_cmd_bins_info)
