"""Face-agnostic compiled kernels of vafx.

This folder is installed as ``vafx.kernels`` (never as a top-level ``kernels``
module). Everything here works on plain arrays: it knows nothing about faces,
valence or arousal, and it imports nothing from the rest of vafx.
"""

from .binning import binned_median, grid_bin_index, grid_edges, histogram
from .metrics import ccc, mse, pcc
from .poisson import PoissonSolution, solve_poisson

__all__ = [
    "PoissonSolution",
    "binned_median",
    "ccc",
    "grid_bin_index",
    "grid_edges",
    "histogram",
    "mse",
    "pcc",
    "solve_poisson",
]
