"""Per-bin statistics of a gallery: the table and the paper's Fig. 3 style histogram."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .._io._atomic import atomic_path, atomic_write_text
from ._store import Gallery


def bin_table(gallery: Gallery) -> list[dict]:
    """One row per bin: bin, valence and arousal ranges, count, median V-A (NaN if empty)."""
    counts = gallery.counts()
    med = gallery.medians()
    bounds = np.asarray(gallery.grid.bounds())
    return [
        dict(
            bin=b,
            valence_lo=float(bounds[b, 0, 0]),
            valence_hi=float(bounds[b, 0, 1]),
            arousal_lo=float(bounds[b, 1, 0]),
            arousal_hi=float(bounds[b, 1, 1]),
            count=int(counts[b]),
            median_valence=float(med[b, 0]),
            median_arousal=float(med[b, 1]),
        )
        for b in range(gallery.grid.num_bins)
    ]


def format_table(rows: list[dict], all_bins: bool = False) -> str:
    """The table as aligned text (empty bins left out unless ``all_bins``)."""
    lines = [
        f"{'bin':>4} {'valence':>13} {'arousal':>13} {'frames':>8} {'median V':>9} {'median A':>9}"
    ]
    for r in rows:
        if r["count"] == 0 and not all_bins:
            continue
        lines.append(
            f"{r['bin']:>4} [{r['valence_lo']:+.1f}, {r['valence_hi']:+.1f}) "
            f"[{r['arousal_lo']:+.1f}, {r['arousal_hi']:+.1f}) {r['count']:>8} "
            f"{r['median_valence']:>+9.3f} {r['median_arousal']:>+9.3f}"
        )
    return "\n".join(lines)


def write_table_csv(rows: list[dict], path: str | os.PathLike) -> None:
    keys = list(rows[0])
    text = ",".join(keys) + "\n"
    text += "".join(",".join(str(r[k]) for k in keys) + "\n" for r in rows)
    atomic_write_text(path, text)


def count_grid(gallery: Gallery) -> np.ndarray:
    """int[n_arousal, n_valence] counts, row 0 = highest arousal (as plotted)."""
    n = gallery.grid.n
    c = gallery.counts().reshape(n, n)  # [i_v, i_a]
    return c.T[::-1]


def write_histogram_png(gallery: Gallery, path: str | os.PathLike, title: str = "") -> str:
    """Write the gallery's 2D V-A histogram (Fig. 3 style, log colour scale) as a PNG.

    Returns the renderer used ("matplotlib"). The demo's Fig. 3, with the mean
    shapes of bins around the histogram, is :func:`vafx._pipeline._figures.fig3_figure`.
    """
    grid = count_grid(gallery)
    path = Path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    n = gallery.grid.n
    fig, ax = plt.subplots(figsize=(5.5, 4.6), dpi=120)
    im = ax.imshow(
        np.where(grid > 0, grid, np.nan),
        extent=(-1, 1, -1, 1),
        norm=LogNorm(vmin=1, vmax=max(grid.max(), 1)),
        cmap="viridis",
    )
    ax.set_xticks(np.linspace(-1, 1, n + 1))
    ax.set_yticks(np.linspace(-1, 1, n + 1))
    ax.tick_params(labelsize=7)
    ax.grid(color="white", linewidth=0.4, alpha=0.5)
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(title or f"{gallery.num_frames} frames per V-A bin")
    fig.colorbar(im, ax=ax, label="frames")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return "matplotlib"
