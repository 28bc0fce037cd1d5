"""The paper's figures: the V-A histogram with bin mean shapes (Fig. 3) and contact sheets (Fig. 5).

Every figure has axes, ticks and labels (matplotlib, a core dependency), and
is written atomically as a PNG. The mean shapes are rendered by vafx's own
rasterizer: the template plus a bin's mean deformation, frontal, orthographic,
grey Lambertian shading.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .._io._atomic import atomic_path

#: Bins whose mean shapes Fig. 3 shows: one on each 30 degrees of the circumplex.
RING_ANGLES = tuple(range(0, 360, 30))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    plt.close(fig)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, f[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def shape_thumbnails(vertices, faces, deformations, size: int = 200) -> np.ndarray:
    """Frontal grey renders of a mesh under several deformations.

    Args:
        vertices: float[n, 3], the template (y up, the face looking along +z).
        faces: int[F, 3].
        deformations: float[K, n, 3], added to ``vertices``.
        size: side of each square image in pixels.

    Returns:
        uint8[K, size, size, 3]: white background, the face grey-shaded with a
        light from the upper left front. All K share one scale and centre.
    """
    import jax.numpy as jnp

    from ..kernels.raster import interpolate, raster_plan, rasterize_batch

    v0 = np.asarray(vertices, np.float32)
    f = np.asarray(faces, np.int32)
    vs = v0[None] + np.asarray(deformations, np.float32)
    # framed on the front of the face (the front third in depth: no ears, no neck)
    zl, zh = v0[:, 2].min(), v0[:, 2].max()
    front = v0[v0[:, 2] > zh - (zh - zl) / 3]
    lo, hi = front.min(axis=0), front.max(axis=0)
    centre, scale = (lo + hi) / 2, 0.92 * size / max(hi[0] - lo[0], hi[1] - lo[1])
    img = np.stack(
        [
            (vs[..., 0] - centre[0]) * scale + size / 2,
            size / 2 - (vs[..., 1] - centre[1]) * scale,
            -(vs[..., 2] - centre[2]) * scale,
        ],
        -1,
    ).astype(np.float32)
    plan = raster_plan(img, f, size, size)
    frags = rasterize_batch(jnp.asarray(img), jnp.asarray(f), size, size, plan)
    light = np.array([-0.35, 0.45, 0.82], np.float32)
    light /= np.linalg.norm(light)
    out = np.full((len(vs), size, size, 3), 255, np.uint8)
    tri = np.asarray(frags.triangle)
    for k in range(len(vs)):
        frag = type(frags)(*(np.asarray(x)[k] for x in frags))
        nrm = np.array(interpolate(jnp.asarray(_vertex_normals(vs[k], f)), jnp.asarray(f), frag))
        nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
        shade = 0.25 + 0.7 * np.clip(nrm @ light, 0, 1)
        grey = (np.array([222, 212, 205]) * shade[..., None]).astype(np.uint8)
        out[k][tri[k] >= 0] = grey[tri[k] >= 0]
    return out


def ring_bins(grid, counts: np.ndarray, radius: float = 0.7) -> list[int]:
    """Bins on the circumplex, one per :data:`RING_ANGLES` direction, that hold frames."""
    out = []
    for deg in RING_ANGLES:
        a = np.deg2rad(deg)
        for r in (radius, radius * 0.8, radius * 1.15, radius * 0.6):
            va = np.clip([r * np.cos(a), r * np.sin(a)], -0.999, 0.999).astype(np.float32)
            b = int(grid.bin_index(va))
            if counts[b] > 0:
                if b not in out:
                    out.append(b)
                break
    return out


def fig3_figure(
    counts: np.ndarray,
    grid,
    path: str | os.PathLike,
    *,
    thumbnails: np.ndarray | None = None,
    bins: list[int] | None = None,
    labels: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """The paper's Fig. 3: the 2D V-A histogram, mean shapes of bins around it.

    Args:
        counts: int[B] frames per bin (VAGrid numbering).
        grid: the :class:`vafx.VAGrid`.
        path: output PNG.
        thumbnails: uint8[K, s, s, 3] renders of the mean shapes of ``bins``.
        bins: K bin numbers; each thumbnail is linked to its bin by a line.
        labels: float[B, 2] bin labels (median V-A), marked on the histogram.
        title: figure title (default: the number of frames).
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.patches import ConnectionPatch

    n = grid.n
    c = np.asarray(counts).reshape(n, n).T  # [i_a, i_v]
    fig = plt.figure(figsize=(12, 10), dpi=100)
    box = (0.3, 0.27, 0.36, 0.45)  # the histogram, in figure fractions
    ax = fig.add_axes(box)
    im = ax.imshow(
        np.where(c > 0, c, np.nan), origin="lower", extent=(-1, 1, -1, 1),
        norm=LogNorm(vmin=1, vmax=max(int(c.max()), 2)), cmap="viridis", aspect="auto",
    )  # fmt: skip
    ax.set_xticks(np.linspace(-1, 1, n + 1))
    ax.set_yticks(np.linspace(-1, 1, n + 1))
    ax.tick_params(labelsize=7)
    ax.grid(color="white", linewidth=0.4, alpha=0.6)
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    if labels is not None:
        have = np.asarray(counts) > 0
        lab = np.asarray(labels)[have]
        ax.plot(lab[:, 0], lab[:, 1], ".", color="white", ms=2.5, alpha=0.8,
                label="bin label (median V-A)")  # fmt: skip
        ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    cax = fig.add_axes((box[0] + box[2] + 0.012, box[1], 0.012, box[3]))
    fig.colorbar(im, cax=cax, label="frames per bin (log scale)")
    fig.suptitle(title or f"{int(np.sum(counts)):,} frames over {n} x {n} V-A bins, "
                 "with the mean shapes of bins around the circumplex", y=0.985)  # fmt: skip
    if thumbnails is not None and bins:
        centres = np.asarray(grid.centres())
        side = 0.155
        # 12 slots around the histogram: 4 above, 4 below, 2 on each side
        xs = (0.03, 0.275, 0.52, 0.765)
        slots = [(x, 0.765) for x in xs] + [(0.81, 0.53), (0.81, 0.29)]
        slots += [(x, 0.01) for x in reversed(xs)] + [(0.03, 0.29), (0.03, 0.53)]
        slot_ang = np.array([np.arctan2(y + side / 2 - 0.495, x + side / 2 - 0.48)
                             for x, y in slots])  # fmt: skip
        bin_ang = np.arctan2(centres[bins, 1], centres[bins, 0])
        # match bins to slots in angular order, with the rotation that moves them least
        order_s, order_b = np.argsort(-slot_ang), np.argsort(-bin_ang)
        k = len(bins)
        best, shift = np.inf, 0
        for r in range(len(slots)):
            d = np.angle(np.exp(1j * (slot_ang[order_s[(np.arange(k) + r) % len(slots)]]
                                      - bin_ang[order_b])))  # fmt: skip
            if np.abs(d).sum() < best:
                best, shift = np.abs(d).sum(), r
        for j, bi in enumerate(order_b):
            x, y = slots[order_s[(j + shift) % len(slots)]]
            b = bins[bi]
            cv, ca = centres[b]
            t = fig.add_axes((x, y, side, side * 1.2))
            t.imshow(thumbnails[bi])
            t.set_xticks([])
            t.set_yticks([])
            t.set_title(f"bin {b}: V {cv:+.1f}, A {ca:+.1f}", fontsize=8, pad=2)
            fig.add_artist(ConnectionPatch(
                xyA=(cv, ca), coordsA=ax.transData, xyB=(0.5, 0.5), coordsB=t.transAxes,
                color="0.4", lw=0.7, alpha=0.8, zorder=0,
            ))  # fmt: skip
    return _save(fig, path)


def _cell(ax, image, title: str | None = None, fontsize: float = 7) -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize, pad=2)


def va_sheet_figure(
    neutral: np.ndarray,
    cells: list[list[np.ndarray]],
    valence: list[float],
    arousal: list[float],
    path: str | os.PathLike,
    *,
    captions: list[list[str]] | None = None,
    title: str = "",
) -> Path:
    """A Fig. 5 contact sheet: the neutral photo beside a grid of results on V-A axes.

    Args:
        neutral: uint8[h, w, 3], the input photo (cropped to the face).
        cells: rows (arousal from high to low) of columns (valence from low
            to high) of uint8[h, w, 3] results.
        valence: the columns' target valence.
        arousal: the rows' target arousal (top row first).
        path: output PNG.
        captions: per cell, a short caption (e.g. bin and label).
        title: the figure's title.
    """
    plt = _pyplot()
    rows, cols = len(cells), len(cells[0])
    cw = 1.45
    fig = plt.figure(figsize=(cw * (cols + 1.6), cw * rows + 0.9), dpi=110)
    gs = fig.add_gridspec(rows, cols + 1, width_ratios=[1.25] + [1] * cols,
                          left=0.03, right=0.965, bottom=0.08, top=0.92, wspace=0.06, hspace=0.25)  # fmt: skip
    ax0 = fig.add_subplot(gs[max(rows // 2 - 1, 0) : rows // 2 + 1, 0] if rows > 1 else gs[0, 0])
    _cell(ax0, neutral, "input photo", 9)
    for r in range(rows):
        for c in range(cols):
            ax = fig.add_subplot(gs[r, c + 1])
            _cell(ax, cells[r][c], captions[r][c] if captions else None, 6.5)
            if r == rows - 1:
                ax.set_xlabel(f"{valence[c]:+.2f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{arousal[r]:+.2f}", fontsize=8)
    # the V-A axes: valence along the bottom, arousal up the side of the grid
    left = gs[0, 1].get_position(fig).x0
    right = gs[0, cols].get_position(fig).x1
    bottom = gs[rows - 1, 1].get_position(fig).y0
    top = gs[0, 1].get_position(fig).y1
    fig.text((left + right) / 2, 0.015, "target valence  \u2192", ha="center", fontsize=10)
    fig.text(right + 0.008, (bottom + top) / 2, "target arousal  \u2192", va="center",
             rotation=90, fontsize=10)  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def table_sheet_figure(
    neutrals: list[np.ndarray],
    cells: list[list[np.ndarray]],
    targets: np.ndarray,
    path: str | os.PathLike,
    *,
    names: list[str] | None = None,
    captions: list[list[str]] | None = None,
    headers: list[str] | None = None,
) -> Path:
    """A contact sheet of P photos x T targets: the input first, a column per target.

    Args:
        neutrals: P uint8[h, w, 3] input crops.
        cells: P rows of T uint8[h, w, 3] results.
        targets: float[T, 2] target (valence, arousal) of the columns.
        path: output PNG.
        names: P row names.
        captions: per cell, a short caption.
        headers: T column headers instead of the targets' V-A (categories, action units).
    """
    plt = _pyplot()
    p, t = len(cells), len(cells[0])
    cw = 1.45
    fig = plt.figure(figsize=(cw * (t + 1) + 0.6, cw * p + 0.8), dpi=110)
    gs = fig.add_gridspec(p, t + 1, left=0.06, right=0.99, bottom=0.03, top=0.86,
                          wspace=0.06, hspace=0.3)  # fmt: skip
    for i in range(p):
        ax = fig.add_subplot(gs[i, 0])
        _cell(ax, neutrals[i], "input" if i == 0 else None, 8)
        if names:
            ax.set_ylabel(names[i], fontsize=7)
        for j in range(t):
            ax = fig.add_subplot(gs[i, j + 1])
            if headers is not None:
                head = f"{headers[j]}\n" if i == 0 else ""
            else:
                head = f"V {targets[j][0]:+.2f}  A {targets[j][1]:+.2f}\n" if i == 0 else ""
            _cell(ax, cells[i][j], head + (captions[i][j] if captions else ""), 6.5)
    fig.suptitle("target per column" if headers is not None
                 else "target valence (V) and arousal (A) per column", fontsize=10)  # fmt: skip
    return _save(fig, path)


def face_box(landmarks: np.ndarray, shape: tuple[int, int], margin: float = 0.45) -> tuple:
    """A square crop (slice, slice) around 68 landmarks, grown by ``margin``, inside the image."""
    lm = np.asarray(landmarks, np.float64)
    lm = lm[np.isfinite(lm).all(axis=1)]
    lo, hi = lm.min(axis=0), lm.max(axis=0)
    cx, cy = (lo + hi) / 2
    half = (1 + margin) * max(hi - lo) / 2
    cy -= 0.1 * half  # leave room for the forehead
    h, w = shape
    half = min(half, w / 2, h / 2)
    x0 = int(round(np.clip(cx - half, 0, w - 2 * half)))
    y0 = int(round(np.clip(cy - half, 0, h - 2 * half)))
    s = int(round(2 * half))
    return slice(y0, y0 + s), slice(x0, x0 + s)
