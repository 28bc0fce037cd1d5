"""``vafx synthesize``, ``vafx animate``, ``vafx augment`` and ``vafx demo``: the jobs on photos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import (
    _add_expression_args,
    _add_force_arg,
    _add_model_arg,
    _bin_models_for,
    _Progress,
    _render_options,
    _say_devices,
)


def _targets_from_args(args):
    import numpy as np

    from .._pipeline._synthesize_files import grid_targets, read_targets

    v, a = args.valence or [], args.arousal or []
    if len(v) != len(a):
        raise ValueError(
            f"--valence and --arousal come in pairs: got {len(v)} valence and {len(a)} arousal"
        )
    given = [bool(v), args.grid is not None, args.targets is not None, bool(args.emotion),
             bool(args.au)]  # fmt: skip
    if sum(given) != 1:
        raise ValueError(
            "give the targets one way: --valence/--arousal, --grid N, --targets CSV, "
            "--emotion NAME or --au AU=INTENSITY"
        )
    if args.via != "bins" and not args.emotion:
        raise ValueError("--from goes with --emotion")
    if args.emotion or args.au:
        from .._expression._controls import Target

        if args.emotion:
            return [Target(emotion=e, via=args.via).checked() for e in args.emotion], None
        return [Target(aus=args.au).checked()], None
    if args.grid is not None:
        t, levels_v, levels_a = grid_targets(args.grid)
        return t, (levels_v, levels_a)
    if args.targets is not None:
        return read_targets(args.targets), None
    return np.array(list(zip(v, a)), np.float32), None


def _cmd_synthesize(args) -> int:
    from .._model._resolve import load_model
    from .._pipeline._synthesis import SynthesisConfig
    from .._pipeline._synthesize_files import synthesize_files

    if args.list_emotions:
        from .._expression._controls import emotions

        for e in emotions():
            aus = " ".join(f"{k[1]}{k[0]}={v:g}" if isinstance(k, tuple) else f"{k}={v:g}"
                           for k, v in e.aus.items())  # fmt: skip
            print(f"{e.name.replace(' ', '_'):<24s} V {e.va[0]:+.2f} A {e.va[1]:+.2f}   "
                  f"AUs {aus:<32s} {e.source}")  # fmt: skip
        return 0
    if not args.photos:
        raise ValueError("synthesize: give one or more photos")
    if args.output is None:
        raise ValueError("synthesize: -o/--output is required")
    targets, grid = _targets_from_args(args)
    if not isinstance(targets, list):
        from .._va_space import validate_va

        validate_va(targets, "--valence/--arousal")
    model = load_model(args.model)
    models = _bin_models_for(args, model)
    cfg = SynthesisConfig(
        continuous=args.continuous, intensity=args.intensity, sample=args.sample, seed=args.seed,
        **_render_options(args),
    )  # fmt: skip
    n = len(args.photos) * len(targets)

    def say(msg):
        print(f"vafx: {msg}", file=sys.stderr, flush=True)

    res = synthesize_files(
        args.photos, targets, args.output, models, model, landmarks=args.landmarks, config=cfg,
        grid=grid, sheet=args.sheet, progress=_Progress("images") if n > 1 else None,
        force=args.force, report=say,
    )  # fmt: skip
    for r in res["results"] if n <= 4 else []:
        lab = r["label"]
        if r["bin"] >= 0:
            print(f"{r['output']}: bin {r['bin']}, label V-A ({lab[0]:+.3f}, {lab[1]:+.3f})")
        elif "emotion" in r["target"]:
            print(f"{r['output']}: {r['target']['emotion']} from its FACS prototype, placed at "
                  f"V-A ({lab[0]:+.3f}, {lab[1]:+.3f})")  # fmt: skip
        else:
            print(f"{r['output']}: action units {r['target']['aus']} on the model's shapes")
    if n > 4:
        print(f"{n} images and sidecars in {args.output}")
    for p in res["sheets"]:
        print(f"contact sheet: {p}")
    if res["skipped"]:
        print(f"vafx: {len(res['skipped'])} of {len(args.photos)} photo(s) skipped, no output "
              "for them:", file=sys.stderr)  # fmt: skip
        for photo, reason in res["skipped"]:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0


def _va_pair(text: str, flag: str):
    try:
        v, a = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{flag}: expected V,A such as -0.6,-0.3, got {text!r}") from None
    return v, a


def _cmd_animate(args) -> int:
    from .._io._photos import read_photo
    from .._io._pts import read_pts
    from .._model._resolve import load_model
    from .._pipeline._animate import animate, linear_path, read_path, smoothness, write_clip
    from .._pipeline._synthesis import SynthesisConfig

    given = [args.path is not None, args.from_va is not None or args.to_va is not None]
    if sum(given) != 1:
        raise ValueError("give the path one way: --path CSV, or --from-va V,A --to-va V,A")
    if args.path is not None:
        path = read_path(args.path)
    else:
        if args.from_va is None or args.to_va is None or args.seconds is None:
            raise ValueError("--from-va, --to-va and --seconds go together")
        path = linear_path(_va_pair(args.from_va, "--from-va"), _va_pair(args.to_va, "--to-va"),
                           args.seconds)  # fmt: skip
    suffix = args.output.suffix.lower()
    if suffix not in (".gif", ".mp4", ".mov", ".mkv"):
        raise ValueError(f"-o/--output: a .gif or .mp4 file, got {args.output.name!r}")
    if suffix != ".gif":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ImportError(
                f"{args.output.name}: video files need the optional extra: pip install "
                '"vafx[video]" (imageio-ffmpeg); or write a .gif'
            ) from None
    img = read_photo(args.photo)
    pts = read_pts(args.landmarks, points=68) if args.landmarks else None
    model = load_model(args.model)
    models = _bin_models_for(argparse.Namespace(bins=args.bins, sample=False), model)
    cfg = SynthesisConfig(intensity=args.intensity, **_render_options(args))
    clip = animate(img, path, models, model, fps=args.fps, landmarks=pts, config=cfg,
                   name=str(args.photo), progress=_Progress("frames"))  # fmt: skip
    write_clip(args.output, clip.frames, clip.fps)
    sm = smoothness(clip)
    print(f"{args.output}: {len(clip.frames)} frames at {clip.fps:g} fps; frame-to-frame change "
          f"{sm['still_change']:.3f} grey levels outside the moving face, "
          f"{sm['moving_change']:.2f} on it")  # fmt: skip
    return 0


def _cmd_augment(args) -> int:
    from .._model._resolve import load_model
    from .._pipeline._augment import augment, merge
    from .._pipeline._synthesis import SynthesisConfig

    if args.photos and str(args.photos[0]) == "merge":
        if len(args.photos) != 2:
            raise ValueError("usage: vafx augment merge OUT_DIR")
        man = merge(args.photos[1])
        print(f"{man['images']} images in {args.photos[1]}; {man['skipped']} photo(s) skipped "
              "(see skipped.csv); shards merged")  # fmt: skip
        return 0
    if len(args.photos) != 1:
        raise ValueError("augment: one folder of photos (or: vafx augment merge OUT_DIR)")
    if args.output is None:
        raise ValueError("augment: -o/--output is required")
    shard = None
    if args.shard is not None:
        try:
            k, n = (int(x) for x in args.shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard: K/N such as 2/8, got {args.shard!r}") from None
        shard = (k, n)
    bins = None
    if args.bin_list != "all":
        try:
            bins = [int(b) for b in args.bin_list.split(",")]
        except ValueError:
            raise ValueError(
                f"--bin-list: 'all' or comma-separated bin numbers, got {args.bin_list!r}"
            ) from None
        twice = sorted({b for b in bins if bins.count(b) > 1})
        if twice:
            raise ValueError(f"--bin-list: bin {', '.join(map(str, twice))} listed more than once")
    model = load_model(args.model)
    models = _bin_models_for(args, model)
    _say_devices("augment runs on")
    cfg = SynthesisConfig(intensity=args.intensity, sample=args.sample, seed=args.seed,
                          **_render_options(args))  # fmt: skip
    man = augment(
        args.photos[0], args.output, models, model, bins=bins,
        landmarks_dir=args.landmarks, config=cfg, progress=_Progress("images"), batch=args.batch,
        overwrite=args.overwrite, force=args.force, shard=shard,
    )  # fmt: skip
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]}: {man['photos']} photo(s) done, {man['skipped']} "
              f"skipped; when all {shard[1]} are done: vafx augment merge {args.output}")  # fmt: skip
        return 0
    print(
        f"{man['images']} images in {args.output}; {man['skipped']} photo(s) skipped (see skipped.csv)"
    )
    return 0


def _cmd_demo(args) -> int:
    from .._pipeline._demo import run_demo

    def say(msg):
        print(f"vafx: {msg}", file=sys.stderr, flush=True)

    for line in run_demo(args.output, model=args.model, grid=args.grid, report=say):
        print(line, flush=True)
    return 0


def add_commands(sub) -> None:
    """Add this group's commands to the subparsers ``sub`` of :func:`build_parser`."""
    p = sub.add_parser(
        "synthesize",
        help="a photo with a target valence and arousal",
        description="Fit the face model to the photo, replace its expression with the target "
        "bin's, re-render the face into the photo (re-shaded under the photo's lighting) and "
        "Poisson-blend it. Writes OUT and OUT.json (label, bin, fit diagnostics, the expression "
        "removed, landmark motion, blend correction, versions, parameters).",
    )
    p.add_argument("photos", nargs="*", type=Path, metavar="PHOTO", help="one or more photos")
    p.add_argument("--emotion", action="append", metavar="NAME",
                   help="an emotion category (repeat for several; see --list-emotions)")  # fmt: skip
    p.add_argument("--from", dest="via", choices=["bins", "prototype"], default="bins",
                   help="--emotion through its V-A placement and the bin models (default, the "
                   "paper), or from its FACS prototype on the model's expression shapes")  # fmt: skip
    p.add_argument("--au", action="append", metavar="AU=INTENSITY",
                   help="an action unit, e.g. 12=0.8, or 12R=0.8 for the subject's right side "
                   "only (repeat: all together make one target)")  # fmt: skip
    p.add_argument("--list-emotions", action="store_true",
                   help="list the emotion categories with their V-A placements and AUs")  # fmt: skip
    p.add_argument("--valence", type=float, action="append",
                   help="target valence in [-1, 1]; repeat with --arousal for several targets")  # fmt: skip
    p.add_argument("--arousal", type=float, action="append", help="target arousal in [-1, 1]")
    p.add_argument("--grid", type=int, metavar="N",
                   help="an N x N grid of targets from -0.8 to 0.8 on both axes")  # fmt: skip
    p.add_argument("--targets", type=Path, help="CSV of targets: valence,arousal per row")
    p.add_argument("--bins", type=Path, help="bin models from `vafx bins fit` (default: the "
                   "model's default bin models, built once on first use; see `vafx bins default`)")  # fmt: skip
    p.add_argument("--landmarks", type=Path, help=".pts file, or a folder of <photo>.pts "
                   "(default: detect, needs vafx[detect])")  # fmt: skip
    _add_model_arg(p)
    p.add_argument("--continuous", action="store_true", help="interpolate neighbouring bins")
    p.add_argument("--intensity", type=float, default=1.0, help="scales the expression")
    p.add_argument("--sample", action="store_true", help="sample the bin's blendshape model")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    _add_expression_args(p)
    p.add_argument("--sheet", action="store_true", help="also write a labelled contact sheet "
                   "(with --grid one per photo on V-A axes, else photos x targets)")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, help="output image (one photo "
                   "and one target) or folder (<photo>__v+0.70_a+0.40.png and .json per image)")  # fmt: skip
    _add_force_arg(p)
    p.set_defaults(func=_cmd_synthesize)

    p = sub.add_parser(
        "animate",
        help="a V-A trajectory on a photo, as a clip (.mp4 or .gif)",
        description="Fit the photo once and render each frame at the path's V-A at its time "
        "(continuous control: the bins' means interpolated), in batches. MP4 needs "
        'pip install "vafx[video]"; GIF does not.',
    )
    p.add_argument("photo", type=Path)
    p.add_argument("--path", type=Path, help="CSV of time (s), valence, arousal")
    p.add_argument("--from-va", metavar="V,A", help="start of a straight path")
    p.add_argument("--to-va", metavar="V,A", help="end of a straight path")
    p.add_argument("--seconds", type=float, help="duration of a straight path")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second (default 25)")
    p.add_argument("--bins", type=Path, help="bin models (default: the model's default models)")
    p.add_argument("--landmarks", type=Path, help=".pts file (default: detect)")
    _add_model_arg(p)
    p.add_argument("--intensity", type=float, default=1.0, help="scales the expression")
    _add_expression_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="clip.mp4 or clip.gif")
    p.set_defaults(func=_cmd_animate)

    p = sub.add_parser(
        "augment",
        help="every photo of a folder at every chosen V-A bin (resumable)",
        description="The paper's data augmentation: each photo synthesized at each chosen bin's "
        "label. Writes images with JSON sidecars, labels.csv, skipped.csv and manifest.json. "
        "Interrupted runs resume: run the same command again.",
    )
    p.add_argument("photos", type=Path, nargs="+", metavar="PHOTOS",
                   help="folder of photos (or: merge OUT_DIR, after --shard runs)")  # fmt: skip
    p.add_argument("--shard", metavar="K/N",
                   help="do part K of N (photos K, K+N, ...): for N independent processes; "
                   "then `vafx augment merge OUT_DIR`")  # fmt: skip
    p.add_argument("--bins", type=Path,
                   help="bin models from `vafx bins fit` (default: the model's default models)")  # fmt: skip
    p.add_argument("--bin-list", default="all", help="'all' (bins with data) or e.g. 45,46,87")
    p.add_argument("--landmarks", type=Path, help="folder of <photo>.pts (default: detect)")
    _add_model_arg(p)
    p.add_argument("--intensity", type=float, default=1.0)
    p.add_argument("--sample", action="store_true", help="sample the bins' blendshape models")
    p.add_argument("--seed", type=int, default=0)
    _add_expression_args(p)
    p.add_argument(
        "--batch", type=int, default=16, help="bins per compiled call (memory grows with it)"
    )
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of a run with other settings in the folder")  # fmt: skip
    _add_force_arg(p)
    p.add_argument("-o", "--output", type=Path, help="output folder")
    p.set_defaults(func=_cmd_augment)


def add_demo(sub) -> None:
    """Add the demo command to the subparsers ``sub`` of :func:`build_parser`."""
    p = sub.add_parser("demo", help="run the embedded demo on the default model")
    _add_model_arg(p)
    p.add_argument("-o", "--output", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--grid", type=int, default=5, help="V-A targets per axis of the contact sheet")
    p.set_defaults(func=_cmd_demo)
