"""What the command groups share: progress displays and the common arguments."""

from __future__ import annotations

import argparse
import sys
import time


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
    p.add_argument("--interior", choices=["shaded", "flat"], default="shaded",
                   help="the mouth interior the photo never showed: shaded geometry under the "
                   "photo's lighting (default), or flat colours (the renderer before issue 37, "
                   "a baseline; docs/rendering.md)")  # fmt: skip
    p.add_argument("--no-warp", action="store_true",
                   help="leave the pixels around the face as the photo's (do not carry the "
                   "face's motion into the neck, hair and background)")  # fmt: skip


def _render_options(args) -> dict:
    """The SynthesisConfig fields that :func:`_add_expression_args` sets."""
    return dict(expression=args.expression, shade=not args.no_shade, interior=args.interior,
                warp=not args.no_warp)  # fmt: skip


def _say_devices(what: str) -> None:
    """Print which devices a command uses (stderr)."""
    import jax

    devs = jax.local_devices()
    kinds = sorted({d.device_kind for d in devs})
    print(f"vafx: {what} {len(devs)} {jax.default_backend()} device(s) ({', '.join(kinds)})"
          + (f", process {jax.process_index()} of {jax.process_count()}"
             if jax.process_count() > 1 else ""), file=sys.stderr)  # fmt: skip


def _bin_models_for(args, model):
    """``--bins FILE``, else the model's default bin models (built on first use)."""
    from .._expression._bins import load_bin_models

    if args.bins is not None:
        return load_bin_models(args.bins, components=args.sample)
    from .._expression._defaults import default_bin_models

    def say(msg):
        print(f"vafx: {msg}", file=sys.stderr, flush=True)

    return default_bin_models(model, splocs=args.sample, report=say, progress=_Progress("  step"))
