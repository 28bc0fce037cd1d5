"""The ``vafx`` command line: the parser, built from the command groups' modules, and ``main``.

Each subcommand parses its arguments and calls the library.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .._version import __version__
from . import _bins, _evaluate, _fit, _gallery, _model, _synthesize

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

    _model.add_commands(sub)
    _gallery.add_commands(sub)
    _bins.add_commands(sub)
    _fit.add_commands(sub)
    _synthesize.add_commands(sub)
    _evaluate.add_commands(sub)
    _synthesize.add_demo(sub)
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
    from .._errors import VafxError

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
