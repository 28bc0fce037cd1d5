"""The ``vafx`` command line: one module per command group; the parser is built from them."""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
