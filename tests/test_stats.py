"""Statistics of raw values: one-pass histograms, percentiles, bands and the minimum left out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from niftislice.stats import StatsBuilder, raw_stats


def test_auto_percentiles_match_numpy_exactly_for_integers(template):
    data, _ = template
    st = raw_stats(lambda: [data.astype(np.int16)])
    for q in (0.5, 50, 99.5):
        assert st.percentile(q) == pytest.approx(np.percentile(data, q))


def test_float_percentiles_close_to_numpy():
    rng = np.random.default_rng(3)
    data = rng.normal(100, 30, size=(50, 50, 40)).astype(np.float32)
    st = raw_stats(lambda: [data])
    for q in (0.5, 99.5):
        assert st.percentile(q) == pytest.approx(np.percentile(data, q), rel=5e-4)
    assert (st.percentile(0), st.percentile(100)) == (data.min(), data.max())


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["<i2", ">i2", "u1", "<f4", ">f8", "<i4"])
def test_statistics_in_pieces_on_threads_equal_one_pass(template, dtype):
    """Statistics gathered piece by piece, out of order, on four threads (as while reading a
    file) equal the one-pass statistics, whatever the dtype and byte order."""
    from concurrent.futures import ThreadPoolExecutor

    data, _ = template
    values = (data.astype(np.float64) * 7 - 300).astype(dtype)
    if values.dtype.kind == "f":
        values.flat[::997] = np.nan
    flat = values.reshape(-1, order="F")
    pieces = [flat[i : i + 300_007] for i in range(0, flat.size, 300_007)][::-1]
    builder = StatsBuilder(values.dtype)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(builder.add, pieces))
    ours = builder.result()
    ref = raw_stats(lambda: [values.astype(values.dtype.newbyteorder("="))])
    assert (ours.vmin, ours.vmax, ours.count, ours.nonfinite, ours.exact) == (
        ref.vmin,
        ref.vmax,
        ref.count,
        ref.nonfinite,
        ref.exact,
    )
    np.testing.assert_array_equal(ours.counts, ref.counts)
    for q in (0.5, 50, 99.5):
        assert ours.percentile(q) == ref.percentile(q)


def test_statistics_refuse_another_dtype():
    with pytest.raises(ValueError, match="int16"):
        StatsBuilder(np.dtype("<i2")).add(np.zeros(4, np.float32))


# dtypes with exact (integer) and approximate (float key) histograms, both byte orders
DTYPES = ["<i2", ">i2", "u1", "<u2", "<f4", ">f8", "<i4"]


def _padded(dtype: str) -> np.ndarray:
    """Values 100..899 (100..249 in a byte) plus 30 % of the voxels at a padding value far
    below."""
    rng = np.random.default_rng(5)
    high = 250 if np.dtype(dtype).itemsize == 1 else 900
    values = rng.integers(100, high, size=7000).astype(np.float64)
    values[:3000] = 0 if np.dtype(dtype).kind == "u" else -2000
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_count_between_counts_values_in_a_band(dtype):
    values = _padded(dtype)
    st = raw_stats(lambda: [values.astype(values.dtype.newbyteorder("="))])
    native = values.astype(np.float64)
    for lo, hi in [(100, 899), (200, 300), (-5000, 50), (400, 400), (900, 1000), (5, 1)]:
        want = int(np.count_nonzero((native >= lo) & (native <= hi)))
        got = st.count_between(lo, hi)
        if st.exact:
            assert got == want
        else:  # float bins are 0.05 % wide: the band's ends may take in a neighbour value
            assert abs(got - want) <= 2 * np.count_nonzero(np.isin(native, [lo, hi])) + 30


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_minimum_leaves_the_padding_out(dtype):
    values = _padded(dtype)
    st = raw_stats(lambda: [values.astype(values.dtype.newbyteorder("="))])
    rest, n = st.without_minimum()
    assert n == 3000
    assert rest.count == 4000 and rest.vmax == st.vmax
    assert rest.vmin == pytest.approx(100, rel=1e-3)
    inside = values[3000:].astype(np.float64)
    for q in (0.5, 50, 99.5):
        assert rest.percentile(q) == pytest.approx(np.percentile(inside, q), rel=1e-3)


def test_without_minimum_of_a_constant_is_unchanged():
    st = raw_stats(lambda: [np.full(10, 7, np.int16)])
    assert st.without_minimum() == (st, 0)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_count_between_takes_infinite_and_nan_bounds(dtype):
    """A CT band in HU divided by a denormal scl_slope is infinite in raw units (found by the
    header fuzzer): the count clamps to the data instead of failing."""
    st = raw_stats(lambda: [np.array([1, 2, 3, 250], dtype=dtype)])
    assert st.count_between(-math.inf, math.inf) == 4
    assert st.count_between(2, math.inf) == 3
    assert st.count_between(-math.inf, 1) == 1
    assert st.count_between(math.nan, 3) == 0
