"""The V-A grid: bin numbering, edges, validation, counts and medians."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vafx

va_pairs = st.lists(
    st.tuples(st.floats(-1, 1, width=32), st.floats(-1, 1, width=32)), min_size=50, max_size=50
)


def test_paper_grid_is_ten_by_ten_of_point_two():
    g = vafx.VAGrid()
    assert (g.n, g.num_bins) == (10, 100)
    assert g.width == pytest.approx(0.2)
    b = np.asarray(g.bounds())
    np.testing.assert_allclose(b[:, :, 1] - b[:, :, 0], 0.2, atol=1e-6)


@pytest.mark.parametrize("n", [5, 10, 20])
def test_centres_fall_in_their_own_bins(n):
    g = vafx.VAGrid(n)
    np.testing.assert_array_equal(np.asarray(g.bin_index(g.centres())), np.arange(n * n))
    c, b = np.asarray(g.centres()), np.asarray(g.bounds())
    assert np.all((b[:, :, 0] < c) & (c < b[:, :, 1]))


def test_edge_values_and_corners():
    g = vafx.VAGrid(10)
    assert int(g.bin_index(jnp.array([-1.0, -1.0]))) == 0
    assert int(g.bin_index(jnp.array([1.0, 1.0]))) == 99
    assert int(g.bin_index(jnp.array([1.0, -1.0]))) == 90
    # an inner edge belongs to the bin above it, on both axes
    np.testing.assert_array_equal(np.asarray(g.bin_ij(jnp.array([-0.8, 0.0]))), [1, 5])
    np.testing.assert_array_equal(np.asarray(g.bin_ij(jnp.array([0.6, -0.2]))), [8, 4])
    assert int(g.ij_to_index(3, 7)) == 37
    np.testing.assert_array_equal(np.asarray(g.index_to_ij(37)), [3, 7])


def test_any_batch_shape():
    g = vafx.VAGrid()
    va = jnp.zeros((2, 3, 4, 2))
    assert g.bin_index(va).shape == (2, 3, 4)
    assert g.bin_ij(va).shape == (2, 3, 4, 2)


@pytest.mark.parametrize(
    "bad, words",
    [
        ([1.5, 0.0], "valence 1.5"),
        ([0.0, -1.01], "arousal -1.01"),
        ([np.nan, 0.0], "not finite"),
        ([0.0, np.inf], "not finite"),
    ],
)
def test_out_of_range_or_non_finite_values_are_named(bad, words):
    with pytest.raises(ValueError, match=words):
        vafx.VAGrid().bin_index(np.array(bad, np.float64))


def test_bad_value_in_a_batch_names_its_index():
    va = np.zeros((3, 2))
    va[2, 1] = 7.0
    with pytest.raises(ValueError, match=r"arousal 7\.0 .* at index \(2,\)"):
        vafx.validate_va(va)


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((4, 3)), 0.5])
def test_wrong_shape_is_rejected(bad):
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        vafx.validate_va(bad)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_grid_resolution_must_be_a_positive_int(n):
    with pytest.raises(ValueError, match="positive integer"):
        vafx.VAGrid(n)


@pytest.mark.parametrize("n", [5, 10, 20])
@given(pairs=va_pairs)
def test_counts_sum_and_medians_lie_in_their_bins(n, pairs):
    g = vafx.VAGrid(n)
    va = np.asarray(pairs, np.float32)
    counts = np.asarray(g.counts(va))
    assert counts.shape == (n, n) and counts.sum() == len(va)
    ij = np.asarray(g.bin_ij(va))
    want = np.zeros((n, n), int)
    np.add.at(want, (ij[:, 0], ij[:, 1]), 1)
    np.testing.assert_array_equal(counts, want)
    med = np.asarray(g.medians(va)).reshape(-1, 2)
    b = np.asarray(g.bounds())
    full = counts.reshape(-1) > 0
    assert np.all(np.isnan(med[~full]))
    assert np.all((med[full] >= b[full, :, 0] - 1e-6) & (med[full] <= b[full, :, 1] + 1e-6))


def test_medians_equal_numpy_per_bin():
    rng = np.random.default_rng(3)
    va = rng.uniform(-1, 1, (500, 2)).astype(np.float32)
    g = vafx.VAGrid(5)
    med = np.asarray(g.medians(va))
    ij = np.asarray(g.bin_ij(va))
    for iv in range(5):
        for ia in range(5):
            sel = (ij[:, 0] == iv) & (ij[:, 1] == ia)
            np.testing.assert_allclose(med[iv, ia], np.median(va[sel], axis=0), rtol=1e-6)


def test_jit_and_no_recompilation():
    g = vafx.VAGrid(10)
    traces = []

    @jax.jit
    def f(va):
        traces.append(1)
        return g.bin_index(va), g.counts(va)

    a = f(jnp.zeros((8, 2)))
    b = f(jnp.full((8, 2), 0.5, jnp.float32))
    assert len(traces) == 1
    assert int(a[0][0]) == 55 and int(b[0][0]) == 77
