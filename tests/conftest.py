"""Shared fixtures: where the face models are, strict JAX numerics, tolerances."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import settings

# Each xdist worker gets its own compilation cache (programs and jax.export files).
# With one folder shared by both workers, a worker aborted inside JAX's cache write
# ("Fatal Python error: Aborted" in compilation_cache.put_executable_and_time) in two
# of two fresh-clone runs on 2026-12-03 (each test passed alone with an empty cache).
# The cause inside jaxlib is not known. (vafx is not imported here: its import turns
# the cache on, so the folder is worked out as vafx._paths.cache_root does.)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    _jax_cache = os.environ.get("VAFX_JAX_CACHE", "")
    # (not twice: a subprocess of a test inherits the worker's folder as it is)
    if _jax_cache.strip().lower() not in ("0", "off", "no", "false") and not _jax_cache.endswith(
        f"-{_WORKER}"
    ):
        _root = os.environ.get("VAFX_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vafx"
        )
        _jax_cache = _jax_cache or os.path.join(os.path.expanduser(_root), "jax")
        os.environ["VAFX_JAX_CACHE"] = f"{_jax_cache}-{_WORKER}"

# Strict promotion as optimistix and lineax test with: a silent upcast or an
# implicit broadcast in library code fails the suite.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# Two Hypothesis profiles (VAFX_HYPOTHESIS_PROFILE picks one; README.md, "Run the tests"):
# "ci", the default: the same examples every run (derandomized), so that a CI failure
# reproduces and CI never fails on a draw no one can repeat; "dev": fresh random examples,
# four times as many, and Hypothesis's example database, for a developer to explore new
# inputs (a failure prints the @reproduce_failure line that replays it).
settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True,
                          database=None)  # fmt: skip
settings.register_profile("dev", deadline=None, max_examples=100, derandomize=False)
_PROFILE = os.environ.get("VAFX_HYPOTHESIS_PROFILE", "ci")
if _PROFILE not in ("ci", "dev"):
    raise ValueError(f"VAFX_HYPOTHESIS_PROFILE: 'ci' or 'dev', got {_PROFILE!r}")
settings.load_profile(_PROFILE)

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    for candidate in (os.environ.get("VAFX_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


DATA = _data_root()


def _need(sub: str) -> Path:
    if DATA is None or not (DATA / sub).exists():
        pytest.skip(
            f"face model data {sub!r} not found: set VAFX_DATA or place the project's "
            "shared/data beside the repository"
        )
    return DATA / sub


@pytest.fixture(scope="session")
def ict_dir() -> Path:
    return _need("ict")


@pytest.fixture(scope="session")
def sfm_dir() -> Path:
    return _need("sfm")


@pytest.fixture(scope="session")
def ict_model(ict_dir):
    import vafx

    return vafx.load_ict_npz(ict_dir / "ict_facekit_light.npz")


@pytest.fixture(scope="session")
def sfm_model(sfm_dir):
    import vafx

    return vafx.load_sfm(sfm_dir)


@pytest.fixture(scope="session")
def bins(ict_model, tmp_path_factory):
    """Bin means of a small synthetic gallery (2 subjects, 6 frames per sequence)."""
    import vafx

    g = vafx.synthesize_gallery(
        tmp_path_factory.mktemp("g") / "g", ict_model, vafx.SynthConfig(subjects=2, frames=6)
    )
    return vafx.fit_bins(g, min_frames=3, splocs=False)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty vafx cache, and no VAFX_DATA unless it sets one."""
    monkeypatch.setenv("VAFX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAFX_DATA", raising=False)


#: Tolerances by dtype (kornia's _DTYPE_PRECISIONS idea): relative, absolute.
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}


def tree_allclose(a, b, rtol=None, atol=None) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        r, t = TOL.get(x.dtype, (0, 0))
        if not np.allclose(
            x,
            y,
            rtol=rtol if rtol is not None else r,
            atol=atol if atol is not None else t,
            equal_nan=True,
        ):
            return False
    return True


ARKIT_NAMES = tuple(
    f"{b}_{s}" if s else b
    for b, s in [
        *((b, s) for b in ("browDown", "browInnerUp", "browOuterUp", "cheekPuff", "cheekSquint",
                           "eyeBlink", "eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp",
                           "eyeSquint", "eyeWide") for s in "LR"),
        ("jawForward", ""), ("jawLeft", ""), ("jawOpen", ""), ("jawRight", ""), ("mouthClose", ""),
        *((b, s) for b in ("mouthDimple", "mouthFrown") for s in "LR"),
        ("mouthFunnel", ""), ("mouthLeft", ""),
        *((b, s) for b in ("mouthLowerDown", "mouthPress") for s in "LR"),
        ("mouthPucker", ""), ("mouthRight", ""), ("mouthRollLower", ""), ("mouthRollUpper", ""),
        ("mouthShrugLower", ""), ("mouthShrugUpper", ""),
        *((b, s) for b in ("mouthSmile", "mouthStretch", "mouthUpperUp", "noseSneer") for s in "LR"),
    ]
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model():
    """A 42-vertex model with the ICT's 53 ARKit expression names: no licensed data needed."""
    import trimesh

    import vafx

    sphere = trimesh.creation.icosphere(subdivisions=1, radius=10.0)
    n = len(sphere.vertices)
    rng = np.random.default_rng(0)
    return vafx.make_model(
        mean=sphere.vertices,
        faces=sphere.faces,
        identity_basis=rng.normal(0, 0.3, (3, n, 3)),
        expression_basis=rng.normal(0, 0.5, (len(ARKIT_NAMES), n, 3)),
        expression_names=ARKIT_NAMES,
        regions={"face": np.arange(0, n, 2)},
        name="tiny",
        units="cm",
    )
