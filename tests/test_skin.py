"""Skin fidelity: the photo's own brightness and fine texture kept (issue 37)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from vafx._evaluate._judges import BRIGHTNESS_LIMIT, DETAIL_LIMIT, _failures, skin_fidelity


def _photo(seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:80, 0:90]
    base = 140 + 40 * np.sin(x / 11.0) * np.cos(y / 7.0)
    return np.clip(base[..., None] + 8 * rng.standard_normal((80, 90, 3)), 0, 255).astype(np.uint8)


def test_identical_images_keep_everything():
    p = _photo()
    skin = np.zeros(p.shape[:2], bool)
    skin[10:70, 10:80] = True
    m = skin_fidelity(p, p, skin)
    assert m["brightness"] == 0 and m["detail"] == 1 and m["pixels"] == skin.sum()


def test_brightening_and_smoothing_are_measured():
    p = _photo()
    skin = np.zeros(p.shape[:2], bool)
    skin[10:70, 10:80] = True
    brighter = np.clip(p.astype(int) + 5, 0, 255).astype(np.uint8)
    m = skin_fidelity(p, brighter, skin)
    np.testing.assert_allclose(m["brightness"], 5.0, atol=1e-9)
    np.testing.assert_allclose(m["detail"], 1.0, atol=1e-9)
    smooth = np.rint(gaussian_filter(p.astype(float), (0.8, 0.8, 0))).astype(np.uint8)
    m = skin_fidelity(p, smooth, skin)
    assert m["detail"] < 0.5 and abs(m["brightness"]) < 0.5
    # only the masked pixels count: a change elsewhere is not seen
    elsewhere = p.copy()
    elsewhere[:5] = 0
    assert skin_fidelity(p, elsewhere, skin)["brightness"] == 0


def test_nothing_to_judge_is_nan():
    p = _photo()
    m = skin_fidelity(p, p, np.zeros(p.shape[:2], bool))
    assert np.isnan(m["brightness"]) and np.isnan(m["detail"]) and m["pixels"] == 0


def test_judges_flag_what_the_issue_names():
    row = dict(identity=0.3, halo_mean=0.0, halo_blob=0.0, skin_brightness=0.5, skin_detail=0.95)
    assert _failures(row) == []
    assert _failures({**row, "skin_brightness": -(BRIGHTNESS_LIMIT + 0.1)}) == ["skin brightness"]
    assert _failures({**row, "skin_detail": DETAIL_LIMIT - 0.01}) == ["skin detail"]
    assert _failures({**row, "skin_detail": float("nan")}) == []  # not measured: not flagged
