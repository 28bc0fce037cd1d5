"""``vafx gallery ...``: synthesize, register, import and inspect 4D galleries."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import (
    _add_model_arg,
    _Progress,
)


def _cmd_gallery_synth(args) -> int:
    from .._gallery._synth import SynthConfig, synthesize_gallery
    from .._model._resolve import load_model

    model = load_model(args.model)
    cfg = SynthConfig(
        subjects=args.subjects,
        repeats=args.repeats,
        frames=args.frames,
        region=None if args.region == "all" else args.region,
        seed=args.seed,
        expressions=tuple(args.expressions.split(",")) if args.expressions else None,
    )
    g = synthesize_gallery(
        args.output,
        model,
        cfg,
        budget_bytes=int(args.buffer_mb * 2**20),
        overwrite=args.overwrite,
        progress=_Progress("sequences"),
    )
    print(g)
    return 0


def _template_from_args(args):
    from .._gallery._import import template_from_mesh
    from .._model._resolve import load_model
    from .._model._template import template_from_model

    if args.template is not None:
        return template_from_mesh(args.template, args.units)
    model = load_model(args.model)
    return template_from_model(model, None if args.region == "all" else args.region)


def _cmd_gallery_import(args) -> int:
    from .._gallery._import import import_meshes

    g = import_meshes(
        args.output,
        args.meshes,
        args.annotations,
        _template_from_args(args),
        skip_bad=args.skip_bad,
        budget_bytes=int(args.buffer_mb * 2**20),
        overwrite=args.overwrite,
        progress=_Progress("sequences"),
    )
    print(g)
    problems = Path(args.output) / "import_problems.txt"
    if args.skip_bad and problems.exists() and problems.stat().st_size:
        n = len(problems.read_text().splitlines())
        print(f"vafx: {n} problem(s) skipped, listed in {problems}", file=sys.stderr)
    return 0


def _cmd_gallery_register(args) -> int:
    from .._gallery._register import RegisterConfig
    from .._gallery._register_files import register_scans
    from .._model._resolve import load_model

    template = _template_from_args(args)
    model = None if args.template is not None or args.no_prior else load_model(args.model)
    cfg = RegisterConfig(batch=args.batch, estimate_scale=args.estimate_scale)
    frames = register_scans(
        args.output, args.scans, args.annotations, template, model, config=cfg,
        landmarks_dir=args.landmarks, scale=args.scale, overwrite=args.overwrite,
        progress=_Progress("frames"),
    )  # fmt: skip
    print(f"registered meshes: {args.output}; import them with: vafx gallery import "
          f"{args.output} --annotations {frames}")  # fmt: skip
    print(f"per-frame residuals: {Path(args.output) / 'registration.csv'}")
    return 0


def _cmd_gallery_stats(args) -> int:
    from .._gallery._stats import bin_table, format_table, write_histogram_png, write_table_csv
    from .._gallery._store import open_gallery

    g = open_gallery(args.gallery, verify=args.verify)
    rows = bin_table(g)
    print(g)
    print(format_table(rows, all_bins=args.all))
    empty = sum(r["count"] == 0 for r in rows)
    print(f"{g.num_frames} frames in {len(rows) - empty} bins; {empty} bins empty")
    if args.csv:
        write_table_csv(rows, args.csv)
        print(f"table: {args.csv}")
    if args.png:
        how = write_histogram_png(g, args.png)
        print(f"histogram: {args.png} ({how})")
    return 0


def add_commands(sub) -> None:
    """Add this group's commands to the subparsers ``sub`` of :func:`build_parser`."""
    pg = sub.add_parser("gallery", help="4D expression galleries: synthesize, import, inspect")
    gsub = pg.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)
    p = gsub.add_parser(
        "synth",
        help="generate a synthetic gallery from a face model (see docs/gallery.md)",
        description="Generate a synthetic 4D gallery: subjects sampled from the model, each "
        "enacting FACS prototypes of emotions (onset, apex, offset), frames labelled with V-A "
        "from published circumplex placements. Resumable: run it again after an interruption.",
    )
    _add_model_arg(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="gallery folder")
    p.add_argument("--subjects", type=int, default=20, help="synthetic subjects (default 20)")
    p.add_argument("--repeats", type=int, default=1, help="sequences per subject and expression")
    p.add_argument("--frames", type=int, default=24, help="frames per sequence after the neutral")
    p.add_argument("--region", default="face", help="model region of the template, or 'all'")
    p.add_argument("--expressions", help="comma-separated prototype names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--buffer-mb", type=float, default=256, help="frame buffer per checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing gallery")
    p.set_defaults(func=_cmd_gallery_synth)

    p = gsub.add_parser(
        "import",
        help="import per-frame meshes and an annotation CSV into a gallery",
        description="Import a folder of per-frame meshes (OBJ or PLY) with an annotation CSV "
        "(subject,sequence,frame,valence,arousal[,label][,neutral][,file]). Every problem is "
        "reported with its file and line; resumable and idempotent.",
    )
    p.add_argument("meshes", type=Path, help="folder of meshes")
    p.add_argument("--annotations", type=Path, required=True, help="annotation CSV")
    p.add_argument("-o", "--output", type=Path, required=True, help="gallery folder")
    p.add_argument("--template", type=Path, help="template mesh (default: the model's region)")
    p.add_argument("--units", default="mm", help="length unit of --template meshes (default mm)")
    _add_model_arg(p)
    p.add_argument("--region", default="face", help="model region of the template, or 'all'")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad frames (listed in GALLERY/import_problems.txt) instead of stopping")  # fmt: skip
    p.add_argument("--buffer-mb", type=float, default=256, help="frame buffer per checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing gallery")
    p.set_defaults(func=_cmd_gallery_import)

    p = gsub.add_parser(
        "register",
        help="register raw 3D scans onto the template (dense correspondence) for import",
        description="Register raw scans (OBJ or PLY, any topology, holes, any pose) onto the "
        "template: landmarks or ICP for the pose, the morphable model as a prior, then "
        "optimal-step non-rigid ICP. Writes meshes in template order, frames.csv for "
        "'vafx gallery import' and registration.csv with per-frame residuals. Resumable.",
    )
    p.add_argument("scans", type=Path, help="folder of scans")
    p.add_argument("--annotations", type=Path, required=True, help="annotation CSV (as for import)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--landmarks", type=Path,
                   help="folder of per-frame 3D landmarks (scan path with .txt; 68 rows x y z)")  # fmt: skip
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiplies scan coordinates into template units (mm scans, cm template: 0.1)")  # fmt: skip
    p.add_argument("--estimate-scale", action="store_true", help="estimate each scan's scale")
    p.add_argument("--template", type=Path, help="template mesh (default: the model's region)")
    p.add_argument("--units", default="mm", help="length unit of --template meshes (default mm)")
    _add_model_arg(p)
    p.add_argument("--region", default="face", help="model region of the template, or 'all'")
    p.add_argument("--no-prior", action="store_true", help="no morphable-model prior stage")
    p.add_argument("--batch", type=int, default=8, help="frames per vmapped chunk (default 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier registration")
    p.set_defaults(func=_cmd_gallery_register)

    p = gsub.add_parser("stats", help="per-bin counts and medians; the Fig. 3 histogram")
    p.add_argument("gallery", type=Path)
    p.add_argument("--png", type=Path, help="write the 2D V-A histogram here")
    p.add_argument("--csv", type=Path, help="write the per-bin table here")
    p.add_argument("--all", action="store_true", help="list empty bins too")
    p.add_argument("--verify", action="store_true", help="check every file's SHA-256 first")
    p.set_defaults(func=_cmd_gallery_stats)
