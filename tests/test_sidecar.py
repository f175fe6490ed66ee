"""sidecar.py, called directly on a plan: the facts and matrices it records, and its JSON."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import reorient_to, save
from nifti_bytes import gradient, header_for, nifti_file

from niftislice.naming import image_name
from niftislice.options import ConvertOptions
from niftislice.plan import make_plan
from niftislice.read.nifti import iter_volumes, read_header
from niftislice.sidecar import build_sidecar, dumps, header_facts
from niftislice.slicing import view_block

SHAPE = (9, 11, 7)
AFFINE = np.array([[1.2, 0, 0, -10.5], [0, 0.9, 0, 20.25], [0, 0, 2.0, -3.0], [0, 0, 0, 1]])


def _sidecar(path, options: ConvertOptions, slices: dict | None = None) -> dict:
    """The sidecar for converting ``path``; ``slices[view]`` lists the slices with a file
    (default: every selected one)."""
    nf = read_header(path)
    plan = make_plan(nf, options, lambda: (a for _, a in iter_volumes(nf)))
    files: dict = {}
    for view, g in plan.geometries.items():
        ks = (slices or {}).get(view.value, plan.slice_indices(view))
        for k in ks:
            for t in plan.volumes:
                name = image_name("v", view.value, k, g.n_slices, ".png", t if plan.is_4d else None)
                files.setdefault(view, {}).setdefault(k, {})[t] = name
    return build_sidecar(plan, path, "0" * 64, files)


def _strict_loads(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "ILA"])
@pytest.mark.parametrize("neurological", [False, True])
def test_pixel_to_world_of_a_known_voxel(tmp_path, axcodes, neurological):
    """The pixel showing a marked voxel maps to that voxel's world position, in every view,
    whatever the storage order (native spacing: one pixel per voxel)."""
    data = np.zeros(SHAPE, np.int16)
    ijk = (6, 3, 4)
    data[ijk] = 1000
    arr, aff = reorient_to(data, AFFINE, axcodes)
    path = save(tmp_path / "v.nii.gz", arr, aff)
    nf = read_header(path)
    options = ConvertOptions(spacing="native", neurological=neurological)
    plan = make_plan(nf, options, lambda: (a for _, a in iter_volumes(nf)))
    side = _strict_loads(dumps(_sidecar(path, options)))
    world = (AFFINE @ [*ijk, 1])[:3]
    canonical = plan.reo.apply(next(a for _, a in iter_volumes(nf)))
    for view, g in plan.geometries.items():
        block = view_block(canonical, g)
        k, r, c = (int(v[0]) for v in np.nonzero(block == 1000))
        entry = next(s for s in side["views"][view.value]["slices"] if s["index"] == k)
        m = np.array(entry["pixel_to_world"])
        np.testing.assert_allclose((m @ [c, r, 0, 1])[:3], world, atol=1e-4)


def test_json_is_strict_readable_and_round_trips(tmp_path):
    """No NaN/Infinity (strict parsers refuse them), one line per slice entry, same content."""
    path = save(
        tmp_path / "v.nii.gz", np.arange(math.prod(SHAPE), dtype=np.int16).reshape(SHAPE), AFFINE
    )
    side = _sidecar(path, ConvertOptions())
    text = dumps(side)
    back = _strict_loads(text)
    assert back == json.loads(json.dumps(side))
    n_entries = sum(len(v["slices"]) for v in side["views"].values())
    assert sum(1 for line in text.splitlines() if '"pixel_to_world"' in line) == n_entries
    assert text.endswith("}\n")


def test_header_facts_never_write_nan(tmp_path):
    """nibabel writes scl_slope NaN for "no scaling": the sidecar says null and applies 1, 0;
    a qform with qfac 0 (nibabel's get_qform refuses it) does not break the sidecar."""
    arr = gradient()
    hdr = header_for(arr, scl_slope=math.nan, scl_inter=math.nan, xyzt_units=2 | 16)
    path = tmp_path / "v.nii"
    path.write_bytes(nifti_file(replace(hdr, pixdim=(0.0, *hdr.pixdim[1:])), arr))
    facts = header_facts(read_header(path))
    assert facts["scl_slope_on_disk"] is None and facts["scl_inter_on_disk"] is None
    assert (facts["scl_slope_applied"], facts["scl_inter_applied"]) == (1.0, 0.0)
    assert facts["units"] == {"space": "mm", "time": "ms"}
    assert facts["affine_source"] == "sform" and facts["qform_code"] == 1
    _strict_loads(json.dumps(facts))


@pytest.mark.parametrize(
    ("options", "kind", "label"),
    [
        (ConvertOptions(), "window", False),
        (ConvertOptions(lossless=True), "lossless", False),
        (ConvertOptions(label=True), "label", True),
    ],
)
def test_intensity_and_output_sections_say_how_values_were_mapped(tmp_path, options, kind, label):
    data = (np.arange(math.prod(SHAPE)) % 5).astype(np.int16).reshape(SHAPE)
    path = save(tmp_path / "v.nii.gz", data, AFFINE)
    side = _sidecar(path, options)
    assert side["intensity"]["kind"] == kind
    assert side["output"]["label"] is label
    assert side["output"]["interpolation"] == ("nearest" if label else "linear")
    assert side["output"]["bit_depth"] == (16 if kind == "lossless" else 8)


def test_4d_entries_list_a_file_per_volume_and_only_written_slices(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, (*SHAPE, 3)).astype(np.int16)
    path = save(tmp_path / "v.nii.gz", data, AFFINE)
    side = _sidecar(path, ConvertOptions(volumes="0:3:2", views="axial"), {"axial": [1, 4]})
    axial = side["views"]["axial"]
    assert side["output"]["volumes"] == [0, 2]
    assert [s["index"] for s in axial["slices"]] == [1, 4]
    assert axial["slices"][0]["files"] == {
        "0": "v_t0000_axial_0001.png",
        "2": "v_t0002_axial_0001.png",
    }
    assert axial["selected_slices"] == {"start": 0, "stop": SHAPE[2], "step": 1}
    assert axial["n_slices_in_volume"] == SHAPE[2]
