"""``vafx landmarks`` and ``vafx fit``: landmark detection and model fitting on photos."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import (
    _add_force_arg,
    _add_model_arg,
    _Progress,
)


def _cmd_landmarks(args) -> int:
    from .._fit._landmarks import detect_in_files
    from .._io._atomic import atomic_write_text
    from .._io._pts import write_pts

    found, skipped = detect_in_files(args.photos, all_faces=args.all, progress=_Progress("photos"))
    args.output.mkdir(parents=True, exist_ok=True)
    for path, pts in found.items():
        pts = pts if pts.ndim == 3 else pts[None]
        for k, face in enumerate(pts):
            suffix = f"_{k}" if args.all else ""
            print(write_pts(args.output / f"{path.stem}{suffix}.pts", face))
    log = args.output / "skipped.txt"
    atomic_write_text(log, "".join(f"{p}\t{why}\n" for p, why in skipped))
    if skipped:
        print(
            f"vafx: {len(skipped)} photo(s) skipped (no face or unreadable), listed in {log}",
            file=sys.stderr,
        )
    return 0


def _cmd_fit(args) -> int:
    import json

    import numpy as np

    from .._fit._fitting import FitConfig, fit_landmarks, fitted_vertices
    from .._fit._landmarks import detect_landmarks
    from .._io._atomic import atomic_write_text
    from .._io._mesh_io import export_mesh
    from .._io._photos import read_photo
    from .._io._pts import read_pts
    from .._model._resolve import load_model

    img = read_photo(args.photo)
    if args.landmarks:
        pts = read_pts(args.landmarks, points=68)
    else:
        pts = detect_landmarks(img, name=str(args.photo))
    model = load_model(args.model)
    fit = fit_landmarks(model, pts, img.shape[:2], FitConfig(camera=args.camera, iters=args.iters),
                        names=[str(args.photo)], check=not args.force)  # fmt: skip
    out = export_mesh(
        args.output, fitted_vertices(model, fit), model.faces, model.uv, model.faces_uv
    )
    res = np.asarray(fit.residuals)
    info = dict(
        photo=str(args.photo),
        model=model.name,
        camera=args.camera,
        mean_landmark_error_px=float(np.nanmean(res)),
        cost=np.asarray(fit.cost).tolist(),
        rotation=np.asarray(fit.rotation).tolist(),
        translation=np.asarray(fit.translation).tolist(),
        scale=float(fit.scale),
        identity=np.asarray(fit.identity).tolist(),
        expression=np.asarray(fit.expression).tolist(),
    )
    atomic_write_text(Path(out).with_suffix(".json"), json.dumps(info, indent=1))
    print(f"{out}: mean landmark error {info['mean_landmark_error_px']:.2f} px")
    return 0


def add_commands(sub) -> None:
    """Add this group's commands to the subparsers ``sub`` of :func:`build_parser`."""
    p = sub.add_parser("landmarks", help="detect 68 iBUG landmarks in photos (needs vafx[detect])")
    p.add_argument("photos", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the .pts files")
    p.add_argument("--all", action="store_true", help="every face, not only the largest")
    p.set_defaults(func=_cmd_landmarks)

    p = sub.add_parser("fit", help="fit the face model to a photo's landmarks")
    p.add_argument("photo", type=Path)
    p.add_argument("--landmarks", type=Path, help=".pts file (default: detect, needs vafx[detect])")
    _add_model_arg(p)
    p.add_argument("--camera", choices=["orthographic", "perspective"], default="orthographic")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("-o", "--output", type=Path, required=True, help="fitted mesh (.obj or .ply)")
    _add_force_arg(p)
    p.set_defaults(func=_cmd_fit)
