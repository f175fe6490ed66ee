"""One window per volume: consistent values, no clipping inside, invertible, labels exact."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import patch_header, save

import niftislice
from niftislice import ConvertOptions, OptionError
from niftislice.stats import StatsBuilder, raw_stats
from niftislice.window import CT_PRESETS, parse_window


def _all_pixels(vol, view="axial"):
    return {s.index: s.image for s in vol.slices(view)}


def test_same_value_same_pixel_in_every_slice(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 3000, size=(16, 16, 12)).astype(np.int16)
    data[:, :, 5] += 2000  # one much brighter slice must not change the mapping elsewhere
    data[3, 4, :] = 1234  # the same value in every axial slice
    vol = niftislice.load(
        save(tmp_path / "v.nii.gz", data, np.eye(4)), ConvertOptions(spacing="native")
    )
    vals = set()
    for img in _all_pixels(vol).values():
        # axial radiological: column = 15 - x, row = 15 - y
        vals.add(int(img[15 - 4, 15 - 3]))
    assert len(vals) == 1


def test_values_inside_window_never_clip_and_16bit_inverts(tmp_path):
    data = np.linspace(-500.0, 2500.0, 20 * 20 * 10).reshape(20, 20, 10).astype(np.float32)
    path = save(tmp_path / "f.nii.gz", data, np.eye(4))
    vol = niftislice.load(path, ConvertOptions(window="0:2000", bit_depth=16, spacing="native"))
    w = vol.plan.window
    assert (w.low, w.high, w.out_max) == (0.0, 2000.0, 65535)
    step = (w.high - w.low) / w.out_max
    ras = vol.data()
    for s in vol.slices("axial"):
        src = ras[:, :, s.index][::-1, ::-1].T  # display orientation of an axial slice
        inside = (src > 0) & (src < 2000)
        px = s.image.astype(np.float64)
        assert px[inside].min() > 0 and px[inside].max() < 65535  # never clipped inside
        back = w.low + px * step
        assert np.all(np.abs(back[inside] - src[inside]) <= step / 2 + 1e-6)
        assert np.all(px[src <= 0] == 0) and np.all(px[src >= 2000] == 65535)


def test_scl_slope_applied_before_window(tmp_path):
    data = np.arange(0, 1000, dtype=np.int16).reshape(10, 10, 10)
    path = patch_header(
        save(tmp_path / "s.nii.gz", data, np.eye(4)), scl_slope=2.0, scl_inter=-100.0
    )
    vol = niftislice.load(path, ConvertOptions(window="minmax"))
    assert (vol.plan.window.low, vol.plan.window.high) == (-100.0, 1898.0)


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


def test_nan_inf_and_constant_volumes(tmp_path):
    data = np.full((8, 8, 8), 7.0, np.float32)
    data[0, 0, 0] = np.nan
    data[1, 0, 0] = np.inf
    data[2, 0, 0] = -np.inf
    vol = niftislice.load(
        save(tmp_path / "c.nii.gz", data, np.eye(4)), ConvertOptions(spacing="native")
    )
    assert any("constant" in w for w in vol.plan.warnings)
    assert any("NaN/Inf" in w for w in vol.plan.warnings)
    img = next(s.image for s in vol.slices("axial") if s.index == 0)
    assert img[7, 7] == 0 and img[7, 6] == 255 and img[7, 5] == 0  # NaN, +Inf, -Inf
    assert img[0, 0] == 128  # the constant value: mid-grey


def test_ct_presets_and_level_width():
    assert set(CT_PRESETS) >= {
        "brain",
        "subdural",
        "stroke",
        "bone",
        "lung",
        "soft-tissue",
        "liver",
        "mediastinum",
    }
    lung = parse_window("lung")
    assert (lung.a, lung.b) == (-1350.0, 150.0)
    opts = ConvertOptions(level=40, width=80)
    assert (opts.window.a, opts.window.b) == (0.0, 80.0)
    assert ConvertOptions(window="p2:p98").window.kind == "percentile"
    for bad in ("5:1", "p50:p10", "nonsense", "1:nan"):
        with pytest.raises(OptionError, match="window"):
            ConvertOptions(window=bad)
    with pytest.raises(OptionError, match="level"):
        ConvertOptions(level=40)


def test_ct_window_in_hounsfield_units(tmp_path):
    hu = np.array([-1000, 0, 40, 80, 1000], dtype=np.int16)
    data = np.tile(hu[:, None, None], (1, 5, 5))
    vol = niftislice.load(
        save(tmp_path / "ct.nii.gz", data, np.eye(4)),
        ConvertOptions(window="brain", spacing="native"),
    )
    img = next(vol.slices("axial")).image
    # radiological axial: column 4 - x
    assert [int(img[2, 4 - x]) for x in range(5)] == [0, 0, 128, 255, 255]


@pytest.mark.parametrize(
    "values,dtype,expected_dtype",
    [
        ([0, 1, 2, 41, 255], np.uint8, np.uint8),
        ([0, 3, 300, 1024], np.int16, np.uint16),
        ([0.0, 2.0, 7.0], np.float32, np.uint8),
    ],
)
def test_label_maps_keep_exact_values(tmp_path, values, dtype, expected_dtype):
    rng = np.random.default_rng(2)
    data = rng.choice(np.array(values), size=(12, 14, 10)).astype(dtype)
    path = save(tmp_path / "lab.nii.gz", data, np.diag([1.0, 1.0, 1.3, 1.0]), intent_code=1002)
    vol = niftislice.load(path)  # intent NIFTI_INTENT_LABEL: detected
    assert vol.plan.label
    seen = set()
    for s in vol.slices("coronal"):  # resampled (1.3 mm rows -> 1 mm) with nearest neighbour
        assert s.image.dtype == expected_dtype
        seen |= set(np.unique(s.image).tolist())
    assert seen == {int(v) for v in values}


def test_label_refuses_fractional_values(tmp_path):
    data = np.array([0.0, 0.5, 1.0], np.float32).reshape(3, 1, 1) * np.ones((3, 4, 4), np.float32)
    path = save(tmp_path / "x.nii.gz", data, np.eye(4))
    with pytest.raises(niftislice.InputError, match="integer"):
        niftislice.load(path, ConvertOptions(label=True))
