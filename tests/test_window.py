"""Windows: parsing, the rules that choose one (padding, CT), applying it; one window per volume
(consistent values, no clipping inside, invertible, labels exact)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import patch_header, save

import niftislice
from niftislice import ConvertOptions, OptionError
from niftislice.mapping import apply_window
from niftislice.pictures.colormap import COLORMAPS, get_colormap
from niftislice.stats import raw_stats
from niftislice.window import (
    CT_PRESETS,
    DIVERGING_COLORMAPS,
    ValueFacts,
    Window,
    WindowSpec,
    choose_window,
    parse_window,
    symmetric_about_zero,
)


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
    opts = ConvertOptions.parse(level=40, width=80)
    assert (opts.window.a, opts.window.b) == (0.0, 80.0)
    assert ConvertOptions(window="p2:p98").window.kind == "percentile"
    for bad in ("5:1", "p50:p10", "nonsense", "1:nan"):
        with pytest.raises(OptionError, match="window"):
            ConvertOptions(window=bad)
    with pytest.raises(OptionError, match="level"):
        ConvertOptions.parse(level=40)


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


# --------------------------------------------------------------------------------------------
# unit tests of the window module


@pytest.mark.parametrize(
    "text,kind,a,b",
    [
        ("auto", "auto", 0.5, 99.5),
        (" MinMax ", "minmax", 0.0, 0.0),
        ("-100:500", "range", -100.0, 500.0),
        ("p2:p98", "percentile", 2.0, 98.0),
        ("40/80", "range", 0.0, 80.0),
        ("brain", "preset", 0.0, 80.0),
        ("soft-tissue", "preset", -160.0, 240.0),
    ],
)
def test_parse_window(text, kind, a, b):
    spec = parse_window(text)
    assert (spec.kind, spec.a, spec.b) == (kind, a, b)
    assert parse_window(spec) is spec


def _choose(values, spec="auto", slope=1.0, inter=0.0, **facts):
    arr = np.asarray(values)
    stats = raw_stats(lambda: [arr])
    return choose_window(
        parse_window(spec),
        stats,
        ValueFacts(arr.dtype, slope, inter, **facts),
        mode="window",
        out_max=255,
    )


def _hu_mix(**fractions: float) -> np.ndarray:
    """int16 HU values: ``fractions`` of air, brain, bone, fat, organ, padding (100 000 voxels)."""
    rng = np.random.default_rng(4)
    bands = {
        "air": (-1024, -1000),
        "csf": (0, 15),
        "brain": (20, 45),
        "organ": (40, 70),
        "fat": (-120, -60),
        "bone": (400, 1500),
        "padding": (-3024, -3023),
    }
    parts = [
        rng.integers(*bands[name], size=int(f * 100_000)) for name, f in fractions.items() if f
    ]
    return np.concatenate(parts).astype(np.int16)


HEAD = dict(air=0.35, csf=0.03, brain=0.35, fat=0.02, bone=0.1)
BODY = dict(air=0.3, organ=0.35, fat=0.25, bone=0.05)


@pytest.mark.parametrize(
    "mix,facts,preset,padding",
    [
        (dict(HEAD, padding=0.3), {}, "brain", -3024.0),
        (HEAD, {}, "brain", None),
        (dict(BODY, padding=0.2), {}, "soft-tissue", -3024.0),
        (BODY, {}, "soft-tissue", None),
        (dict(BODY, air=0.0), {"modality": "CT"}, "soft-tissue", None),  # no air: modality says
        (dict(BODY, air=0.01), {"description": "CT abdomen"}, "soft-tissue", None),
    ],
)
def test_ct_gets_a_preset_and_says_why(mix, facts, preset, padding):
    choice = _choose(_hu_mix(**mix), **facts)
    level, width = CT_PRESETS[preset]
    assert (choice.window.low, choice.window.high) == (level - width / 2, level + width / 2)
    assert choice.reason is not None and "CT recognised" in choice.reason["reason"]
    assert choice.reason["ct"]["preset"] == preset
    assert (choice.reason["padding"] or {}).get("value") == padding
    assert preset in choice.window.description


def test_ct_stored_with_an_intercept_is_recognised_in_hu():
    hu = _hu_mix(**HEAD, padding=0.3)
    stored = (hu.astype(np.int32) + 1024).astype(np.int16)  # padding stored as -2000
    choice = _choose(stored, inter=-1024.0)
    assert (choice.window.low, choice.window.high) == (0.0, 80.0)
    assert choice.reason["padding"]["value"] == -3024.0


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).integers(0, 4096, 50_000),  # MR magnitude
        np.r_[np.zeros(60_000), np.random.default_rng(1).integers(200, 900, 40_000)],  # masked
        np.random.default_rng(1).integers(-4096, 4096, 50_000),  # phase
        np.random.default_rng(1).integers(-1000, 1000, 50_000),  # uniform, HU-like range
        np.random.default_rng(1).normal(0, 1, 50_000).astype(np.float32),  # z-scores
    ],
)
def test_no_rule_for_mr_phase_and_statistics(values):
    """Without padding or CT, auto is the plain 0.5-99.5 percentile window, with no reason."""
    arr = np.asarray(values)
    dtype = np.int16 if arr.dtype.kind in "iu" or arr.dtype == np.float64 else arr.dtype
    choice = _choose(arr.astype(dtype))
    assert choice.reason is None
    lo, hi = np.percentile(arr.astype(dtype), [0.5, 99.5])
    assert choice.window.low == pytest.approx(lo, rel=1e-3, abs=1e-3)
    assert choice.window.high == pytest.approx(hi, rel=1e-3, abs=1e-3)


def test_mr_modality_is_never_ct():
    choice = _choose(_hu_mix(**HEAD), modality="MR")
    assert choice.reason is None


def test_padding_alone_is_left_out_of_percentiles():
    """A perfusion-like map (0..100) with 30 % padding at -1024: percentiles of the rest."""
    rng = np.random.default_rng(2)
    values = rng.uniform(0, 100, 70_000).astype(np.float32)
    arr = np.r_[np.full(30_000, -1024.0, np.float32), values]
    choice = _choose(arr)
    lo, hi = np.percentile(values, [0.5, 99.5])
    assert choice.window.low == pytest.approx(lo, rel=2e-3)
    assert choice.window.high == pytest.approx(hi, rel=2e-3)
    assert "padding -1024 left out" in choice.window.description
    assert choice.reason["ct"] is None and choice.reason["padding"]["fraction"] == 0.3


@pytest.mark.parametrize("spec", ["minmax", "-100:500", "bone", "40/400"])
def test_explicit_windows_are_kept_for_ct(spec):
    choice = _choose(_hu_mix(**HEAD, padding=0.3), spec=spec)
    assert choice.reason is None
    expected = parse_window(spec)
    if expected.kind != "minmax":
        assert (choice.window.low, choice.window.high) == (expected.a, expected.b)
    else:
        assert (choice.window.low, choice.window.high) == (-3024.0, 1499.0)


def test_diverging_colormaps_get_a_window_symmetric_about_zero():
    assert {
        n for n in COLORMAPS if get_colormap(n).diverging
    } == DIVERGING_COLORMAPS  # the window rule knows every diverging map
    w = symmetric_about_zero(Window(-2.0, 5.0, 255, "x"))
    assert (w.low, w.high) == (-5.0, 5.0)
    arr = np.linspace(-2, 5, 1000).astype(np.float32)
    stats = raw_stats(lambda: [arr])
    facts = ValueFacts(arr.dtype, 1.0, 0.0)
    choice = choose_window(
        WindowSpec("minmax"), stats, facts, mode="window", out_max=255, colormap="bwr"
    )
    assert (choice.window.low, choice.window.high) == (-5.0, 5.0)


@pytest.mark.parametrize("dtype", ["u1", "i2", "u2", "i4", "f4", "f8"])
@pytest.mark.parametrize("out_max", [255, 65535])
def test_apply_window_lookup_table_and_float_paths_agree(dtype, out_max):
    """Small integers go through a table, others through float64: the same pixels for the same
    values (native byte order, as the reader hands them out), within half a step of the ideal."""
    values = np.arange(0, 250, dtype=np.float64).reshape(5, 5, 10)
    window = Window(20.0, 200.0, out_max, "test")
    got = apply_window(values.astype(dtype), window, 2.0, -10.0)
    reference = apply_window(values, window, 2.0, -10.0)  # float64: the float path
    assert got.dtype == (np.uint8 if out_max == 255 else np.uint16)
    np.testing.assert_array_equal(got, reference)
    ideal = np.clip((values * 2.0 - 10.0 - 20.0) / 180.0 * out_max, 0, out_max)
    assert np.abs(got - ideal).max() <= 0.5 + 1e-6
