"""The damped Gauss-Newton kernel on planted problems: exact recovery, monotone cost, bounds."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from vafx.kernels.gauss_newton import levenberg_marquardt


def _linear_problem(a, b):
    def residual(delta, x):
        return a @ (x + delta) - b

    return residual, lambda x, d: x + d


@given(
    hnp.arrays(np.float64, (8, 3), elements=st.floats(-2, 2)),
    hnp.arrays(np.float64, (3,), elements=st.floats(-5, 5)),
)
def test_a_planted_linear_solution_is_recovered_exactly(a, x_true):
    a = a + 3 * np.eye(8, 3)  # well conditioned
    with jax.enable_x64(True):
        residual, retract = _linear_problem(jnp.asarray(a), jnp.asarray(a @ x_true))
        res = levenberg_marquardt(residual, retract, jnp.zeros(3), 3, 20)
        hist = np.asarray(res.history)
    np.testing.assert_allclose(np.asarray(res.point), x_true, atol=1e-8)
    assert (np.diff(hist) <= 1e-12 * (1 + hist[:-1])).all()  # the cost never increases
    assert hist[-1] < 1e-16 * (1 + hist[0])


@given(st.floats(0.5, 2.0), st.floats(-1.0, 1.0), st.floats(0.8, 1.2))
def test_a_planted_nonlinear_fit_is_recovered(amp, rate, start):
    t = np.linspace(0, 1, 12)
    y = amp * np.exp(rate * t)
    with jax.enable_x64(True):
        tt, yy = jnp.asarray(t), jnp.asarray(y)

        def residual(delta, p):
            q = p + delta
            return q[0] * jnp.exp(q[1] * tt) - yy

        p0 = jnp.asarray([amp * start, rate * start + 0.1])
        res = levenberg_marquardt(residual, lambda p, d: p + d, p0, 2, 40)
        hist = np.asarray(res.history)
    np.testing.assert_allclose(np.asarray(res.point), [amp, rate], atol=1e-7)
    assert (np.diff(hist) <= 1e-12 * (1 + hist[:-1])).all()


@given(
    hnp.arrays(np.float64, (3,), elements=st.floats(-3, 3)),
    hnp.arrays(np.float64, (3,), elements=st.floats(0.1, 1.0)),
)
def test_box_bounds_are_respected_and_the_box_optimum_found(x_true, half):
    """min ||x - x_true||^2 over the box [-half, half]: the solution is the clipped x_true."""
    with jax.enable_x64(True):
        target, h = jnp.asarray(x_true), jnp.asarray(half)

        def residual(delta, x):
            return x + delta - target

        def bounds(x):
            return -h - x, h - x

        res = levenberg_marquardt(residual, lambda x, d: x + d, jnp.zeros(3), 3, 30, bounds=bounds)
        hist = np.asarray(res.history)
    x = np.asarray(res.point)
    assert (np.abs(x) <= half + 1e-12).all()
    np.testing.assert_allclose(x, np.clip(x_true, -half, half), atol=1e-6)
    assert (np.diff(hist) <= 1e-12 * (1 + hist[:-1])).all()
