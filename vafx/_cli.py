"""The ``vafx`` command line. Each subcommand parses arguments and calls the library."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ._version import __version__

DESCRIPTION = """\
vafx synthesizes facial affect on photographs from a target valence-arousal
(V-A) pair, after Kollias et al., "Photorealistic Facial Synthesis in the
Dimensional Affect Space" (ECCV-W 2018).

Face models are looked up by name (ict, sfm) in $VAFX_DATA/<name> and then in
the download cache (see `vafx fetch-model`), or given as a path with --model.
"""

EPILOG = """\
examples:
  vafx fetch-model ict             download and convert the default face model
  vafx model info                  describe the default model
  vafx model sample -o face.obj    write a random face with UVs
  vafx va bin 0.5 -0.3             which bin of the 10 x 10 V-A grid holds (0.5, -0.3)
  vafx gallery synth -o gal        a synthetic 4D gallery from the default model
  vafx gallery stats gal --png h.png   per-bin counts and medians, Fig. 3 histogram
  vafx demo -o demo_out            run the embedded demo
"""


class _Bar:
    """A one-line progress display on stderr, for downloads and long loops."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def __call__(self, event: str, what: str, done: int, total: int) -> None:
        if event == "skip":
            self._line(f"  ok       {what} (already verified)", final=True)
        elif event == "done":
            self._line(f"  fetched  {what} ({done / 1e6:.1f} MB)", final=True)
        elif event == "bytes" and self.tty and time.monotonic() - self.last > 0.2:
            self.last = time.monotonic()
            pct = f"{100 * done / total:5.1f}%" if total else f"{done / 1e6:.1f} MB"
            self._line(f"  {pct}  {what}")

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()


class _Progress:
    """``label  done/total  pct  elapsed  eta`` on stderr: redrawn on a terminal, else every 10%."""

    def __init__(self, label: str, stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.last = -1.0
        self.step = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        frac = done / total if total else 1.0
        step = int(frac * 10)
        final = done >= total
        if self.tty and (now - self.last < 0.2 and not final):
            return
        if not self.tty and step == self.step and not final:
            return
        self.last, self.step = now, step
        el = now - self.start
        eta = el / frac - el if frac > 0 else 0.0
        text = f"{self.label} {done}/{total} {100 * frac:5.1f}%  {el:6.1f} s  eta {eta:6.1f} s"
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="ict",
        help="face model: a name (ict, sfm) or a path to a model file or folder (default: ict)",
    )


def _cmd_fetch(args) -> int:
    from ._fetch import SOURCES, fetch_model

    src = SOURCES[args.name]
    print(f"{src.name}: {src.licence}", file=sys.stderr)
    print(f"from {args.url or src.base_url}", file=sys.stderr)
    folder = fetch_model(
        args.name, dest=args.dest, base_url=args.url, convert=not args.no_convert, progress=_Bar()
    )
    print(folder)
    return 0


def _cmd_model_info(args) -> int:
    from ._model._resolve import load_model

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

    from ._mesh_io import export_mesh
    from ._model._morphable import model_shape, sample_coefficients
    from ._model._resolve import load_model

    model = load_model(args.model)
    alpha, _ = sample_coefficients(jax.random.key(args.seed), model, args.scale)
    beta = _parse_weights(args.expression or [], model)
    v = model_shape(model, alpha, beta)
    out = export_mesh(args.output, v, model.faces, model.uv, model.faces_uv)
    print(out)
    return 0


def _cmd_model_convert(args) -> int:
    from ._model._cache import save_model
    from ._model._resolve import load_model

    print(save_model(args.output, load_model(args.model)))
    return 0


def _cmd_va_bin(args) -> int:
    import numpy as np

    from ._va_space import VAGrid

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


def _cmd_gallery_synth(args) -> int:
    from ._gallery._synth import SynthConfig, synthesize_gallery
    from ._model._resolve import load_model

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
    from ._gallery._import import template_from_mesh
    from ._gallery._store import template_from_model
    from ._model._resolve import load_model

    if args.template is not None:
        return template_from_mesh(args.template, args.units)
    model = load_model(args.model)
    return template_from_model(model, None if args.region == "all" else args.region)


def _cmd_gallery_import(args) -> int:
    from ._gallery._import import import_meshes

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
    from ._gallery._register import RegisterConfig
    from ._gallery._register_files import register_scans
    from ._model._resolve import load_model

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
    from ._gallery._stats import bin_table, format_table, write_histogram_png, write_table_csv
    from ._gallery._store import open_gallery

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


def _say_devices(what: str) -> None:
    """Print which devices a command uses (stderr)."""
    import jax

    devs = jax.local_devices()
    kinds = sorted({d.device_kind for d in devs})
    print(f"vafx: {what} {len(devs)} {jax.default_backend()} device(s) ({', '.join(kinds)})"
          + (f", process {jax.process_index()} of {jax.process_count()}"
             if jax.process_count() > 1 else ""), file=sys.stderr)  # fmt: skip


def _cmd_bins_fit(args) -> int:
    from ._bins import fit_bins, save_bin_models
    from ._gallery._store import open_gallery
    from .kernels.splocs import SplocsParams

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
    )
    for line in models.summary():
        print(line)
    print(save_bin_models(args.output, models))
    return 0


def _cmd_bins_info(args) -> int:
    from ._bins import load_bin_models

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


def _cmd_landmarks(args) -> int:
    from ._atomic import atomic_write_text
    from ._landmarks import detect_in_files, write_pts

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

    from ._atomic import atomic_write_text
    from ._fitting import FitConfig, fit_landmarks, fitted_vertices
    from ._landmarks import detect_landmarks, read_photo, read_pts
    from ._mesh_io import export_mesh
    from ._model._resolve import load_model

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


def _bin_models_for(args, model):
    """``--bins FILE``, else the model's default bin models (built on first use)."""
    from ._bins import load_bin_models

    if args.bins is not None:
        return load_bin_models(args.bins, components=args.sample)
    from ._defaults import default_bin_models

    def say(msg):
        print(f"vafx: {msg}", file=sys.stderr, flush=True)

    return default_bin_models(model, splocs=args.sample, report=say, progress=_Progress("  step"))


def _targets_from_args(args):
    import numpy as np

    from ._synthesize_files import grid_targets, read_targets

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
        from ._controls import Target

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
    from ._model._resolve import load_model
    from ._synthesis import SynthesisConfig
    from ._synthesize_files import synthesize_files

    if args.list_emotions:
        from ._controls import emotions

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
        from ._va_space import validate_va

        validate_va(targets, "--valence/--arousal")
    model = load_model(args.model)
    models = _bin_models_for(args, model)
    cfg = SynthesisConfig(
        continuous=args.continuous, intensity=args.intensity, sample=args.sample, seed=args.seed,
        expression=args.expression, shade=not args.no_shade,
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
    from ._animate import animate, linear_path, read_path, smoothness, write_clip
    from ._landmarks import read_photo, read_pts
    from ._model._resolve import load_model
    from ._synthesis import SynthesisConfig

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
    cfg = SynthesisConfig(intensity=args.intensity, expression=args.expression,
                          shade=not args.no_shade)  # fmt: skip
    clip = animate(img, path, models, model, fps=args.fps, landmarks=pts, config=cfg,
                   name=str(args.photo), progress=_Progress("frames"))  # fmt: skip
    write_clip(args.output, clip.frames, clip.fps)
    sm = smoothness(clip)
    print(f"{args.output}: {len(clip.frames)} frames at {clip.fps:g} fps; frame-to-frame change "
          f"{sm['still_change']:.3f} grey levels outside the moving face, "
          f"{sm['moving_change']:.2f} on it")  # fmt: skip
    return 0


def _cmd_bins_default(args) -> int:
    from ._defaults import default_bins_path
    from ._model._resolve import load_model

    model = load_model(args.model)
    path = default_bins_path(model, splocs=args.splocs)
    if args.path:
        print(path)
        return 0
    models = _bin_models_for(argparse.Namespace(bins=None, sample=args.splocs), model)
    print(models.summary()[-1])
    print(path)
    return 0


def _cmd_augment(args) -> int:
    from ._augment import augment, merge
    from ._model._resolve import load_model
    from ._synthesis import SynthesisConfig

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
                          expression=args.expression, shade=not args.no_shade)  # fmt: skip
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


def _cmd_evaluate_va(args) -> int:
    from ._evaluate import format_table1, gallery_va_correlation, write_rows_csv
    from ._gallery._store import open_gallery

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
    from ._judges import evaluate_synthesis

    s = evaluate_synthesis(args.folder, photos=args.photos, out=args.output,
                           progress=_Progress("images"))  # fmt: skip
    out = args.output or args.folder
    print(f"{s['images']} images judged; identity distance max {s['identity_max']:.3f}, "
          f"mean {s['identity_mean']:.3f}; {len(s['failed'])} flagged")  # fmt: skip
    for f in s["failed"][:20]:
        print(f"  {f['image']}: {f['why']}")
    print(f"wrote {out / 'judges.csv'}, {out / 'summary.json'}, {out / 'judges.png'}")
    return 0


def _add_force_arg(p) -> None:
    p.add_argument("--force", action="store_true",
                   help="keep fits whose landmark error fails the check (more than 0.08 "
                   "inter-ocular distances; docs/reliability.md)")  # fmt: skip


def _add_expression_args(p) -> None:
    p.add_argument("--expression", choices=["replace", "add"], default="replace",
                   help="replace the photo's own expression with the target's (default), or "
                   "add the target on top of it (the paper, for neutral photos)")  # fmt: skip
    p.add_argument(
        "--no-shade",
        action="store_true",
        help="keep the photo's shading on moved surface (no re-shading)",
    )


def _cmd_evaluate_aug(args) -> int:
    import json

    from ._atomic import atomic_write_text
    from ._regressor import cross_validate, format_tables, load_dataset

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


def _cmd_demo(args) -> int:
    from ._demo import run_demo

    def say(msg):
        print(f"vafx: {msg}", file=sys.stderr, flush=True)

    for line in run_demo(args.output, model=args.model, grid=args.grid, report=say):
        print(line, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vafx",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vafx {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what vafx does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p.set_defaults(func=_cmd_evaluate_synthesis)

    p = sub.add_parser("demo", help="run the embedded demo on the default model")
    _add_model_arg(p)
    p.add_argument("-o", "--output", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--grid", type=int, default=5, help="V-A targets per axis of the contact sheet")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="vafx: %(message)s"
    )
    from ._errors import VafxError

    try:
        return args.func(args)
    except (VafxError, ValueError, KeyError, OSError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"vafx: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vafx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
