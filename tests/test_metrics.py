"""CCC, PCC and MSE: properties (hypothesis) and a float64 numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import vafx

M = 32
vectors = st.lists(st.floats(-10, 10, width=32), min_size=M, max_size=M).map(
    lambda v: np.asarray(v, np.float32)
)


def ref(x, y):
    """Equations (2) and (3) of the paper in float64 numpy (population moments)."""
    x, y = np.float64(x), np.float64(y)
    mx, my = x.mean(0), y.mean(0)
    sx, sy = x.std(0), y.std(0)
    sxy = ((x - mx) * (y - my)).mean(0)
    return (2 * sxy / (sx**2 + sy**2 + (mx - my) ** 2), sxy / (sx * sy), ((x - y) ** 2).mean(0))


def spread(v):
    return float(np.std(np.float64(v))) > 1e-2


@given(x=vectors, y=vectors)
def test_ccc_never_exceeds_abs_pcc(x, y):
    assume(spread(x) and spread(y))
    assert float(vafx.ccc(x, y)) <= abs(float(vafx.pcc(x, y))) + 1e-5


@given(x=vectors)
def test_ccc_is_one_for_identical_inputs(x):
    assert float(vafx.ccc(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert float(vafx.mse(x, x)) == 0.0


@given(x=vectors, shift=st.floats(0.1, 5), scale=st.floats(1.2, 3))
def test_ccc_below_one_when_not_identical(x, shift, scale):
    assume(spread(x))
    assert float(vafx.ccc(x, x + np.float32(shift))) < 1 - 1e-4
    assert float(vafx.ccc(x, x * np.float32(scale))) < 1 - 1e-4
    # ... while PCC does not see an affine change
    assert float(vafx.pcc(x, x * np.float32(scale) + np.float32(shift))) == pytest.approx(
        1, abs=1e-4
    )


@given(x=vectors, y=vectors)
def test_symmetry_and_sign(x, y):
    assume(spread(x) and spread(y))
    assert float(vafx.ccc(x, y)) == pytest.approx(float(vafx.ccc(y, x)), abs=1e-6)
    assert float(vafx.pcc(x, y)) == pytest.approx(float(vafx.pcc(y, x)), abs=1e-6)
    # centred inputs: CCC is odd in y, like PCC
    xc, yc = x - x.mean(), y - y.mean()
    assert float(vafx.ccc(xc, -yc)) == pytest.approx(-float(vafx.ccc(xc, yc)), abs=1e-5)
    assert float(vafx.pcc(x, -y)) == pytest.approx(-float(vafx.pcc(x, y)), abs=1e-5)
    assert float(vafx.mse(x, y)) == pytest.approx(float(vafx.mse(y, x)), rel=1e-6)


@given(x=vectors, y=vectors)
def test_against_float64_reference(x, y):
    assume(spread(x) and spread(y))
    want = ref(x, y)
    got = (vafx.ccc(x, y), vafx.pcc(x, y), vafx.mse(x, y))
    for g, w in zip(got, want):
        assert float(g) == pytest.approx(w, rel=1e-4, abs=1e-5)


def test_float64_matches_reference_tightly():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) * 0.3 + 0.1
    with jax.enable_x64(True):
        got = [
            np.asarray(f(jnp.asarray(x), jnp.asarray(y))) for f in (vafx.ccc, vafx.pcc, vafx.mse)
        ]
        assert got[0].dtype == np.float64
    for g, w in zip(got, ref(x, y)):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_batched_over_columns_equals_per_column():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2, 3)).astype(np.float32)
    y = (x + rng.normal(size=x.shape)).astype(np.float32)
    for f in (vafx.ccc, vafx.pcc, vafx.mse):
        full = np.asarray(jax.jit(f)(x, y))
        assert full.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                assert full[i, j] == pytest.approx(float(f(x[:, i, j], y[:, i, j])), rel=1e-5)


def test_constant_inputs():
    c = np.full(10, 0.5, np.float32)  # exact in binary: the centred values are exactly 0
    assert float(vafx.ccc(c, c)) == 1.0
    assert float(vafx.ccc(c, c + np.float32(0.25))) == 0.0
    assert np.isnan(float(vafx.pcc(c, c)))
    with pytest.raises(ValueError, match="differ in shape"):
        vafx.ccc(np.zeros(3), np.zeros(4))
