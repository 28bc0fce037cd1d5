"""vafx.kernels.binning against numpy references, with hypothesis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vafx.kernels import binned_median, grid_bin_index, grid_edges, histogram

M = 64  # fixed sample count: one compilation per test


def np_bin_index(x, n, lo=-1.0, hi=1.0):
    """Independent reference: numpy digitize on float64 edges, last bin closed."""
    e = np.linspace(lo, hi, n + 1)
    return np.clip(np.digitize(np.float64(x), e[1:-1], right=False), 0, n - 1)


@pytest.mark.parametrize("n", [5, 10, 20])
def test_edges_inner_values_go_up_and_upper_end_goes_last(n):
    e = grid_edges(-1.0, 1.0, n)
    idx = np.asarray(grid_bin_index(e, e))
    np.testing.assert_array_equal(idx, list(range(n)) + [n - 1])


@pytest.mark.parametrize("n", [5, 10, 20])
@given(x=st.lists(st.floats(-1, 1, width=32), min_size=M, max_size=M))
def test_bin_index_matches_numpy_digitize(n, x):
    x = np.asarray(x, np.float32)
    got = np.asarray(grid_bin_index(x, grid_edges(-1.0, 1.0, n)))
    want = np_bin_index(x, n)
    # digitize on float64 edges differs from float32 edges only for values
    # within one float32 ulp of an edge; there the float32 edge decides.
    e32 = np.asarray(grid_edges(-1.0, 1.0, n))
    near = np.min(np.abs(x[:, None] - e32[None, 1:-1]), axis=1) <= np.spacing(np.float32(1))
    np.testing.assert_array_equal(got[~near], want[~near])
    assert np.all((got >= 0) & (got < n))


@given(
    idx=st.lists(st.integers(0, 9), min_size=M, max_size=M),
    keep=st.lists(st.booleans(), min_size=M, max_size=M),
)
def test_histogram_matches_bincount_and_ignores_padding(idx, keep):
    idx, keep = np.asarray(idx), np.asarray(keep)
    got = np.asarray(histogram(idx, 10, keep))
    np.testing.assert_array_equal(got, np.bincount(idx[keep], minlength=10))
    assert got.sum() == keep.sum()


@given(
    vals=st.lists(st.floats(-1, 1, width=32), min_size=M, max_size=M),
    idx=st.lists(st.integers(0, 7), min_size=M, max_size=M),
    keep=st.lists(st.booleans(), min_size=M, max_size=M),
)
def test_binned_median_matches_numpy_median(vals, idx, keep):
    vals = np.asarray(vals, np.float32)
    idx, keep = np.asarray(idx), np.asarray(keep)
    two = np.stack([vals, -vals], 1)
    got = np.asarray(binned_median(two, idx, 8, keep))
    for b in range(8):
        sel = (idx == b) & keep
        if sel.any():
            np.testing.assert_allclose(got[b], np.median(two[sel], axis=0), rtol=1e-6, atol=1e-7)
        else:
            assert np.all(np.isnan(got[b]))


def test_padding_rows_change_nothing():
    rng = np.random.default_rng(0)
    vals = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
    idx = rng.integers(0, 5, 40)
    pad_vals = np.concatenate([vals, rng.uniform(-9, 9, (24, 2)).astype(np.float32)])
    pad_idx = np.concatenate([idx, rng.integers(0, 5, 24)])
    mask = np.arange(64) < 40
    a = binned_median(vals, idx, 5)
    b = binned_median(pad_vals, pad_idx, 5, mask)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_kernels_jit_and_vmap_equal_loop():
    rng = np.random.default_rng(1)
    vals = jnp.asarray(rng.uniform(-1, 1, (3, M, 2)), jnp.float32)
    idx = jnp.asarray(rng.integers(0, 6, (3, M)), jnp.int32)
    f = jax.jit(jax.vmap(lambda v, i: binned_median(v, i, 6)))
    batched = np.asarray(f(vals, idx))
    for k in range(3):
        np.testing.assert_array_equal(batched[k], np.asarray(binned_median(vals[k], idx[k], 6)))
