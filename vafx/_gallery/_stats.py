"""Per-bin statistics of a gallery: the table and the paper's Fig. 3 style histogram."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text
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
    """Write the 2D V-A histogram (Fig. 3 style) as a PNG; returns the renderer used.

    With matplotlib installed (``pip install "vafx[plot]"``): a labelled figure
    with a log colour scale. Without it: a plain heatmap (valence left to
    right, arousal bottom to top, 40 pixels a bin, empty bins black) written
    with imageio.
    """
    grid = count_grid(gallery)
    path = Path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
    except ImportError:
        import imageio.v3 as iio

        v = np.log1p(grid.astype(np.float64))
        v = v / v.max() if v.max() > 0 else v
        # a short perceptual ramp (dark blue -> teal -> yellow), interpolated
        ramp = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]])
        x = v * (len(ramp) - 1)
        lo = np.floor(x).astype(int).clip(0, len(ramp) - 2)
        f = (x - lo)[..., None]
        rgb = (ramp[lo] * (1 - f) + ramp[lo + 1] * f).astype(np.uint8)
        rgb[grid == 0] = 0
        img = np.kron(rgb, np.ones((40, 40, 1), np.uint8))
        img[::40] = img[:, ::40] = 128
        buf = io.BytesIO()
        iio.imwrite(buf, img, extension=".png")
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return "imageio"
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
