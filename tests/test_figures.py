"""The paper's figures: Fig. 3 with mean shapes around the histogram, V-A contact sheets."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np

import vafx
from vafx._pipeline import _figures


def test_thumbnails_show_the_deformation(tiny_model):
    t = vafx.template_from_model(tiny_model, None)
    d = np.zeros((2, t.num_vertices, 3), np.float32)
    d[1, :, 1] = 0.3 * t.vertices[:, 0]  # a shear: a different picture
    th = _figures.shape_thumbnails(t.vertices, t.faces, d, size=64)
    assert th.shape == (2, 64, 64, 3) and th.dtype == np.uint8
    face = (th[0] < 250).any(axis=-1)
    assert 0.2 < face.mean() < 0.95  # the mesh fills the middle, the corners stay white
    assert not face[0, 0] and face[32, 32]
    assert np.abs(th[0].astype(int) - th[1].astype(int)).mean() > 1


def test_fig3_and_sheets_are_written(tmp_path):
    grid = vafx.VAGrid(10)
    counts = np.zeros(100, np.int64)
    counts[[15, 45, 55, 87]] = [3, 40, 500, 12]
    labels = np.asarray(grid.centres())
    bins = _figures.ring_bins(grid, counts)
    assert set(bins) <= {15, 45, 55, 87} and bins
    thumbs = np.full((len(bins), 32, 32, 3), 128, np.uint8)
    p = _figures.fig3_figure(counts, grid, tmp_path / "f3.png", thumbnails=thumbs, bins=bins,
                             labels=labels)  # fmt: skip
    assert iio.imread(p).shape[:2] == (1000, 1200)
    cell = np.zeros((40, 40, 3), np.uint8)
    p = _figures.va_sheet_figure(cell, [[cell] * 3] * 2, [-0.8, 0.0, 0.8], [0.4, -0.4],
                                 tmp_path / "s.png", captions=[["c"] * 3] * 2)  # fmt: skip
    assert iio.imread(p).ndim == 3
    p = _figures.table_sheet_figure([cell], [[cell, cell]], np.array([[0.1, 0.2], [0.3, -0.5]]),
                                    tmp_path / "t.png", names=["x"])  # fmt: skip
    assert iio.imread(p).ndim == 3


def test_face_box_is_square_and_inside():
    lm = np.stack([np.linspace(100, 200, 68), np.linspace(150, 260, 68)], 1)
    ys, xs = _figures.face_box(lm, (300, 280))
    assert ys.stop - ys.start == xs.stop - xs.start
    assert 0 <= ys.start and ys.stop <= 300 and 0 <= xs.start and xs.stop <= 280
