"""``vafx evaluate ...``: the paper's evaluation protocols and the judges."""

from __future__ import annotations

from pathlib import Path

from ._common import (
    _Progress,
)


def _cmd_evaluate_va(args) -> int:
    from .._evaluate._protocols import format_table1, gallery_va_correlation, write_rows_csv
    from .._gallery._store import open_gallery

    g = open_gallery(args.gallery)
    try:
        ks = tuple(int(k) for k in args.components.split(","))
    except ValueError:
        raise ValueError(
            f"--components: comma-separated integers, got {args.components!r}"
        ) from None
    rows = gallery_va_correlation(
        g, components=ks, test_fraction=args.test_fraction, seed=args.seed,
        max_frames=args.max_frames, progress=_Progress("settings"),
    )  # fmt: skip
    print(g)
    print(format_table1(rows))
    if args.csv:
        write_rows_csv(rows, args.csv)
        print(f"table: {args.csv}")
    return 0


def _cmd_evaluate_synthesis(args) -> int:
    from .._evaluate._judges import evaluate_synthesis

    judge = None
    if args.judge:
        import json

        from .._errors import DataFileError
        from .._evaluate._affect_judge import load_judge

        places = None
        if args.judge_classes:
            try:
                places = {k: tuple(map(float, v)) for k, v in
                          json.loads(args.judge_classes.read_text()).items()}  # fmt: skip
            except (OSError, ValueError, TypeError, AttributeError) as e:
                raise DataFileError(
                    args.judge_classes, f'expected {{"class": [valence, arousal], ...}}: {e}'
                ) from e
        judge = load_judge(args.judge, places=places)
    s = evaluate_synthesis(args.folder, photos=args.photos, out=args.output,
                           progress=_Progress("images"), judge=judge)  # fmt: skip
    out = args.output or args.folder
    print(f"{s['images']} images judged; identity distance max {s['identity_max']:.3f}, "
          f"mean {s['identity_mean']:.3f}; {len(s['failed'])} flagged")  # fmt: skip
    if "judge" in s:
        j = s["judge"]
        for dim in ("valence", "arousal"):
            print(f"judge {j['name']}: {dim} change vs target r {j[dim]['r']:.2f}, "
                  f"slope {j[dim]['slope']:.2f}; CCC {j[dim]['ccc']:.2f} (n {j['n']})")  # fmt: skip
        if "categories" in j:
            c = j["categories"]
            print(f"judge {j['name']}: target category top class on {c['outputs']:.0%} of "
                  f"{c['n']} outputs (their photos: {c['photos']:.0%})")  # fmt: skip
    for f in s["failed"][:20]:
        print(f"  {f['image']}: {f['why']}")
    print(f"wrote {out / 'judges.csv'}, {out / 'summary.json'}, {out / 'judges.png'}")
    return 0


def _cmd_evaluate_aug(args) -> int:
    import json

    from .._evaluate._regressor import cross_validate, format_tables, load_dataset
    from .._io._atomic import atomic_write_text

    x, va, subj = load_dataset(
        args.dataset, args.images, size=args.size, label_scale=args.label_scale
    )
    aug = None
    if args.augmented is not None:
        aug = load_dataset(
            args.augmented / "labels.csv", args.augmented, size=args.size, label_scale=1.0
        )
    res = cross_validate(
        x, va, subj, augmented=aug, folds=args.folds, epochs=args.epochs, seed=args.seed,
        checkpoint_dir=args.checkpoints, progress=_Progress("folds"),
    )  # fmt: skip
    print(format_tables(res))
    if args.json:
        atomic_write_text(args.json, json.dumps(res, indent=1))
    return 0


def add_commands(sub) -> None:
    """Add this group's commands to the subparsers ``sub`` of :func:`build_parser`."""
    pe = sub.add_parser("evaluate", help="the paper's evaluation protocols")
    esub = pe.add_subparsers(dest="evaluate_command", metavar="PROTOCOL", required=True)
    p = esub.add_parser(
        "va-correlation",
        help="section 4.1: CCA + RBF-SVR from expression PCA to V-A (Table 1), vafx[eval]",
    )
    p.add_argument("gallery", type=Path)
    p.add_argument(
        "--components", default="84,150,200,300,500", help="k to sweep (capped by the data)"
    )
    p.add_argument("--test-fraction", type=float, default=0.2, help="subjects on the test side")
    p.add_argument("--max-frames", type=int, default=20000, help="frames used (apex frames always)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", type=Path, help="write the table as CSV")
    p.set_defaults(func=_cmd_evaluate_va)

    p = esub.add_parser(
        "augmentation",
        help="section 4.4: a V-A regressor with and without augmentation (person-independent k-fold)",
    )
    p.add_argument("dataset", type=Path, help="CSV: image,subject,valence,arousal[,video,frame]")
    p.add_argument("--images", type=Path, help="image folder (default: the CSV's folder)")
    p.add_argument("--augmented", type=Path, help="output folder of `vafx augment`")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--size", type=int, default=64, help="crop side in pixels")
    p.add_argument(
        "--label-scale", type=float, help="divide labels by this (default: 10 if |label| > 1)"
    )
    p.add_argument("--checkpoints", type=Path, help="folder for per-fold checkpoints (resume)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_evaluate_aug)

    p = esub.add_parser(
        "synthesis",
        help="judge synthesized images: identity (dlib), landmark motion, blending halo",
        description="For every image with a vafx sidecar in FOLDER (`vafx augment` output, or "
        "`vafx synthesize` outputs): dlib identity distance to its source photo, re-detected "
        "landmark motion against the motion the deformation implies, and the blend's "
        "correction. Writes judges.csv (a row per image), summary.json and judges.png. "
        "Needs vafx[detect]; the figure vafx[plot].",
    )
    p.add_argument("folder", type=Path)
    p.add_argument("--photos", type=Path, help="folder of the source photos (default: sidecars')")
    p.add_argument("-o", "--output", type=Path, help="where to write (default: FOLDER)")
    p.add_argument(
        "--judge",
        help="an affect judge you supply: FILE.onnx (described by FILE.onnx.json; needs "
        "onnxruntime), FILE.py:NAME or package.module:NAME (a callable taking uint8[N, S, S, 3] "
        "face crops, returning float[N, 2] V-A or {class: probabilities}); see "
        "docs/evaluation.md",
    )
    p.add_argument(
        "--judge-classes",
        type=Path,
        help='JSON {"class": [valence, arousal], ...}: where a categorical judge\'s classes '
        "lie (default: the basic emotions where vafx's gallery places them)",
    )
    p.set_defaults(func=_cmd_evaluate_synthesis)
