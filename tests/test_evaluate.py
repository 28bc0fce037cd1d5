"""Section 4.1 protocol: CCA + SVR from expression coefficients to V-A."""

from __future__ import annotations

import numpy as np
import pytest

import vafx
from vafx._evaluate._protocols import (
    format_table1,
    gallery_va_correlation,
    pca_basis,
    va_correlation,
)

pytest.importorskip("sklearn", reason="the evaluation needs scikit-learn (vafx[eval])")


def test_pca_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12)) @ rng.normal(size=(12, 12))
    mu, comps = pca_basis(x, 4)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(comps @ vt[:4].T), np.eye(4), atol=1e-3)
    np.testing.assert_allclose(mu, x.mean(0), atol=1e-4)


def test_planted_linear_relation_is_recovered():
    rng = np.random.default_rng(1)
    m, d = 1200, 40
    subjects = np.repeat(np.arange(20), m // 20)
    latent = rng.uniform(-1, 1, (m, 2))
    mix = rng.normal(size=(2, d))
    x = latent @ mix + 0.05 * rng.normal(size=(m, d))
    va = np.clip(latent * 0.8, -1, 1)
    apex = rng.uniform(size=m) < 0.3
    rows = va_correlation(x, va, subjects, apex, components=(5, 10))
    assert [r["components"] for r in rows] == [5, 10]
    for r in rows:
        assert r["ccc_valence"] > 0.9 and r["ccc_arousal"] > 0.9, r
        assert r["test_subjects"] == 4
    assert "CCC valence" in format_table1(rows)


def test_split_is_subject_independent():
    rng = np.random.default_rng(2)
    subjects = np.repeat(np.arange(5), 40)
    with pytest.raises(ValueError, match="2 subjects"):
        va_correlation(
            rng.normal(size=(40, 5)), rng.uniform(-1, 1, (40, 2)), np.zeros(40), np.ones(40, bool)
        )
    rows = va_correlation(rng.normal(size=(200, 6)), rng.uniform(-1, 1, (200, 2)), subjects,
                          np.ones(200, bool), components=(3,))  # fmt: skip
    assert rows[0]["test_frames"] == 40  # one whole subject of five


def test_on_a_synthetic_gallery(tmp_path, tiny_model):
    g = vafx.synthesize_gallery(
        tmp_path / "g", tiny_model, vafx.SynthConfig(subjects=6, frames=8, region=None)
    )
    rows = gallery_va_correlation(g, components=(10, 20))
    # the synthetic gallery's labels follow its expressions by construction: a held-out
    # subject's V-A is predicted closely (0.93 / 0.95 CCC here), more closely with more
    # components, and every frame of that one subject is tested
    assert [r["components"] for r in rows] == [10, 20]
    for r in rows:
        assert r["ccc_valence"] > 0.85 and r["ccc_arousal"] > 0.85 and r["mse_valence"] < 0.05
        assert r["test_subjects"] == 1 and r["train_frames"] == 5 * r["test_frames"]
    assert rows[1]["mse_valence"] <= rows[0]["mse_valence"]


def test_cli_va_correlation(tmp_path, tiny_model):
    import subprocess
    import sys

    g = vafx.synthesize_gallery(
        tmp_path / "g", tiny_model, vafx.SynthConfig(subjects=5, frames=6, region=None)
    )
    r = subprocess.run(
        [sys.executable, "-m", "vafx", "evaluate", "va-correlation", str(g.path), "--components", "8,16",
         "--csv", "t.csv"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "CCC valence" in r.stdout and len((tmp_path / "t.csv").read_text().splitlines()) == 3
