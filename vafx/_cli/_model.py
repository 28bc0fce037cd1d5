"""``vafx fetch-model``, ``vafx model ...`` and ``vafx va ...``: face models and the V-A grid."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import (
    _add_model_arg,
    _Bar,
)


def _cmd_fetch(args) -> int:
    from .._model._fetch import SOURCES, fetch_model

    src = SOURCES[args.name]
    print(f"{src.name}: {src.licence}", file=sys.stderr)
    print(f"from {args.url or src.base_url}", file=sys.stderr)
    folder = fetch_model(
        args.name, dest=args.dest, base_url=args.url, convert=not args.no_convert, progress=_Bar()
    )
    print(folder)
    return 0


def _cmd_model_info(args) -> int:
    from .._model._resolve import load_model

    print(load_model(args.model).summary())
    return 0


def _parse_weights(items: list[str], model) -> list[float]:
    w = [0.0] * model.num_expressions
    for item in items:
        name, sep, value = item.partition("=")
        try:
            w[model.expression_index(name)] = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(f"--expression {item!r}: the weight must be a number") from None
    return w


def _cmd_model_sample(args) -> int:
    import jax

    from .._io._mesh_io import export_mesh
    from .._model._morphable import model_shape, sample_coefficients
    from .._model._resolve import load_model

    model = load_model(args.model)
    alpha, _ = sample_coefficients(jax.random.key(args.seed), model, args.scale)
    beta = _parse_weights(args.expression or [], model)
    v = model_shape(model, alpha, beta)
    out = export_mesh(args.output, v, model.faces, model.uv, model.faces_uv)
    print(out)
    return 0


def _cmd_model_convert(args) -> int:
    from .._model._cache import save_model
    from .._model._resolve import load_model

    print(save_model(args.output, load_model(args.model)))
    return 0


def _cmd_va_bin(args) -> int:
    import numpy as np

    from .._va_space import VAGrid

    grid = VAGrid(args.grid)
    va = np.array([args.valence, args.arousal], np.float32)
    k = int(grid.bin_index(va))
    iv, ia = (int(x) for x in grid.index_to_ij(k))
    (v0, v1), (a0, a1) = np.asarray(grid.bounds()[k]).tolist()
    c = np.asarray(grid.centres()[k]).tolist()
    print(
        f"bin {k} of {grid.num_bins} (valence index {iv}, arousal index {ia}): "
        f"valence [{v0:.3g}, {v1:.3g}], arousal [{a0:.3g}, {a1:.3g}], "
        f"centre ({c[0]:.3g}, {c[1]:.3g})"
    )
    return 0


def add_commands(sub) -> None:
    """Add this group's commands to the subparsers ``sub`` of :func:`build_parser`."""
    p = sub.add_parser(
        "fetch-model",
        help="download a face model (ict, sfm), verify checksums, convert it",
        description="Download a public face model from its upstream repository into the "
        "cache ($VAFX_CACHE or ~/.cache/vafx), verify SHA-256 checksums, and convert it to "
        "vafx's model file. A verified copy is never downloaded again.",
    )
    p.add_argument("name", choices=["ict", "sfm"], help="ict: ICT Face Model Light (MIT); "
                   "sfm: Surrey Face Model (non-commercial use only)")  # fmt: skip
    p.add_argument("--dest", type=Path, help="target folder (default: <cache>/models/NAME)")
    p.add_argument("--url", help="base URL of a mirror with the upstream layout")
    p.add_argument("--no-convert", action="store_true", help="only download and verify")
    p.set_defaults(func=_cmd_fetch)

    pm = sub.add_parser("model", help="inspect, sample and convert face models")
    msub = pm.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    p = msub.add_parser("info", help="print the model's sizes, expressions and landmarks")
    _add_model_arg(p)
    p.set_defaults(func=_cmd_model_info)
    p = msub.add_parser("sample", help="write a random face (OBJ or PLY, with UVs)")
    _add_model_arg(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="output .obj or .ply")
    p.add_argument("--seed", type=int, default=0, help="random seed of the identity")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiplies the N(0, 1) identity draws (0 gives the mean face)")  # fmt: skip
    p.add_argument("--expression", action="append", metavar="NAME[=W]",
                   help="add an expression shape with weight W (default 1); repeatable")  # fmt: skip
    p.set_defaults(func=_cmd_model_sample)
    p = msub.add_parser("convert", help="save a model in vafx's fast-loading .npz format")
    _add_model_arg(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="output .npz")
    p.set_defaults(func=_cmd_model_convert)

    pv = sub.add_parser("va", help="the valence-arousal grid")
    vsub = pv.add_subparsers(dest="va_command", metavar="ACTION", required=True)
    p = vsub.add_parser("bin", help="which bin holds a (valence, arousal) pair")
    p.add_argument("valence", type=float, help="in [-1, 1]")
    p.add_argument("arousal", type=float, help="in [-1, 1]")
    p.add_argument("--grid", type=int, default=10, help="bins per axis (default 10)")
    p.set_defaults(func=_cmd_va_bin)
