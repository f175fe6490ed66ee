"""Other formats in, the NIfTI's images out: one anatomy written as NRRD (pynrrd), MetaImage
(SimpleITK), MGH and Analyze (nibabel) in several storage orders and world spaces converts to
PNGs byte-identical to those of the same anatomy as NIfTI; nibabel's own MINC and PAR/REC files
convert as the NIfTI made from them. Folder discovery, ``info``, ``preview``, ``stack`` and bad
files in a batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from _formats_helpers import write_nibabel, write_nrrd, write_sitk
from conftest import NIBABEL_DATA, reorient_to

import niftislice
from niftislice.cli import main

sitk = pytest.importorskip("SimpleITK")

Volume = tuple[np.ndarray, np.ndarray]


def images(out: Path) -> dict[str, bytes]:
    """Every image under ``out``'s only output folder, by path with the stem replaced."""
    (folder,) = (p for p in out.iterdir() if p.is_dir())
    return {
        str(p.relative_to(folder)).replace(folder.name, "STEM"): p.read_bytes()
        for p in sorted(folder.rglob("*.png"))
    }


def converted(src: Path, out: Path) -> dict[str, bytes]:
    result = niftislice.convert(src, out)
    assert result.ok, [r.error for r in result.results]
    return images(out)


@pytest.fixture(scope="module")
def head(small_head: Volume) -> Volume:
    """The 3 mm template made anisotropic (3 x 2.4 x 4.5 mm): a swapped axis would show."""
    data, aff = small_head
    return data, aff @ np.diag([1.0, 0.8, 1.5, 1.0])


@pytest.fixture(scope="module")
def reference(head: Volume, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("reference")
    nib.save(nib.Nifti1Image(*head), root / "ref.nii.gz")
    return converted(root / "ref.nii.gz", root / "out")


def _nrrd(space: str, name: str = "v.nrrd", **fields: object) -> Callable[[Path, Volume], Path]:
    return lambda d, v: write_nrrd(d / name, *v, space=space, **fields)


WRITERS: dict[str, tuple[Callable[[Path, Volume], Path], str, str]] = {
    # name: (writer, storage order, format named in the sidecar)
    "nrrd-lps-gzip": (_nrrd("left-posterior-superior"), "PIR", "NRRD"),
    "nrrd-ras-raw-detached": (_nrrd("RAS", "v.nhdr", encoding="raw"), "ASL", "NRRD"),
    "nrrd-lps-short-big-endian": (_nrrd("LPS", endian="big"), "LAS", "NRRD"),
    "mha-sitk": (lambda d, v: write_sitk(d / "v.mha", *v), "RAS", "MetaImage"),
    "mhd-sitk-compressed": (lambda d, v: write_sitk(d / "v.mhd", *v, True), "ILA", "MetaImage"),
    "mgz": (lambda d, v: write_nibabel(d / "v.mgz", *v), "PIR", "MGH"),
    "analyze": (lambda d, v: write_nibabel(d / "v.hdr", *v), "LAS", "Analyze"),
}


@pytest.mark.parametrize("case", list(WRITERS))
def test_images_are_byte_identical_to_the_niftis(
    tmp_path: Path, head: Volume, reference: dict[str, bytes], case: str
) -> None:
    write, axcodes, fmt = WRITERS[case]
    src = write(tmp_path, reorient_to(*head, axcodes))
    got = converted(src, tmp_path / "out")
    assert len(got) == len(reference) > 100
    assert got == reference
    sidecar = json.loads((tmp_path / "out" / "v" / "v.json").read_text())
    assert sidecar["source"]["format"] == fmt
    assert sidecar["source"]["axcodes"] == axcodes


@pytest.mark.slow
def test_oblique_volume_gives_the_niftis_images(tmp_path: Path, head: Volume) -> None:
    """A tilted grid (shown on the closest axes with a warning) is the same from every format."""
    data, aff = head
    c, s = np.cos(0.25), np.sin(0.25)
    tilt = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]]) @ aff
    # NIfTI stores the affine as float32; the others keep float64. 63 slices of 4.5 mm make
    # 94.5 pixels of 3 mm, so the last bit of the affine would decide the rounding.
    tilt = tilt.astype(np.float32).astype(np.float64)
    nib.save(nib.Nifti1Image(data, tilt), tmp_path / "ref.nii.gz")
    ref = converted(tmp_path / "ref.nii.gz", tmp_path / "ref")
    for name, path in [
        ("nrrd", write_nrrd(tmp_path / "v.nrrd", *reorient_to(data, tilt, "PIR"))),
        ("mha", write_sitk(tmp_path / "v.mha", *reorient_to(data, tilt, "LPS"))),
    ]:
        assert converted(path, tmp_path / name) == ref, name
    sidecar = json.loads((tmp_path / "nrrd" / "v" / "v.json").read_text())
    assert any("oblique" in w for w in sidecar["warnings"])


@pytest.mark.slow
def test_colour_volumes_give_the_niftis_colour_images(tmp_path: Path, head: Volume) -> None:
    """Slicer's RGB-color NRRD and ITK's 3-channel MetaImage as NIfTI's RGB24."""
    data, aff = head
    grey = (data.astype(np.float64) / data.max() * 255).astype(np.uint8)
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)  # (x, y, z, 3)
    rgb = colour.copy().view([("R", "u1"), ("G", "u1"), ("B", "u1")])[..., 0]
    nib.save(nib.Nifti1Image(rgb, aff), tmp_path / "ref.nii.gz")
    ref = converted(tmp_path / "ref.nii.gz", tmp_path / "ref")
    world = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
    header = {
        "space": "left-posterior-superior",
        "space directions": np.vstack([np.full(3, np.nan), world[:3, :3].T]),
        "space origin": world[:3, 3],
        "kinds": ["RGB-color", "domain", "domain", "domain"],
    }
    nrrd.write(str(tmp_path / "v.nrrd"), np.moveaxis(colour, -1, 0), header, index_order="F")
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(colour, -1, 0).T), True)
    img.SetSpacing(np.linalg.norm(world[:3, :3], axis=0).tolist())
    img.SetDirection((world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0)).ravel().tolist())
    img.SetOrigin(world[:3, 3].tolist())
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    for path in (tmp_path / "v.nrrd", tmp_path / "v.mha"):
        got = converted(path, tmp_path / path.suffix[1:])
        assert got == ref, path.name
    assert len(ref) > 100


@pytest.mark.slow
def test_4d_nrrd_with_a_list_axis(tmp_path: Path, head: Volume) -> None:
    data, aff = head
    series = np.stack([data, data // 2], axis=-1)
    nib.save(nib.Nifti1Image(series, aff), tmp_path / "ref.nii.gz")
    ref = converted(tmp_path / "ref.nii.gz", tmp_path / "ref")
    write_nrrd(tmp_path / "v.nrrd", *reorient_to(series, aff, "PIR"))
    got = converted(tmp_path / "v.nrrd", tmp_path / "out")
    assert got == ref and any("_t0001_" in name for name in got)


def _reference_nifti(img: nib.spatialimages.SpatialImage, path: Path, time_first: bool) -> Path:
    """The NIfTI a user would make with nibabel (as parrec2nii does for PAR/REC: stored values
    and one slope/intercept when every slice shares them; else nibabel's scaled values)."""
    values = np.asanyarray(img.dataobj)
    out = nib.Nifti1Image(np.moveaxis(values, 0, -1) if time_first else values, img.affine)
    if isinstance(img, nib.parrec.PARRECImage):
        slopes, inters = img.header.get_data_scaling()
        if np.unique(slopes).size == 1 and np.unique(inters).size == 1:
            out = nib.Nifti1Image(np.asanyarray(img.dataobj.get_unscaled()), img.affine)
            out.header.set_slope_inter(float(slopes.flat[0]), float(inters.flat[0]))
    nib.save(out, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "time_first"),
    [
        ("minc1_1_scale.mnc", False),
        ("minc1_4d.mnc", True),
        ("phantom_EPI_asc_CLEAR_2_1.PAR", False),
        ("phantom_varscale.PAR", False),
    ],
)
def test_nibabel_test_files_convert_as_their_nifti(
    tmp_path: Path, name: str, time_first: bool
) -> None:
    src = NIBABEL_DATA / name
    ref_path = _reference_nifti(nib.load(src), tmp_path / "ref.nii.gz", time_first)
    ref = converted(ref_path, tmp_path / "ref")
    got = converted(src, tmp_path / "out")
    assert got == ref and len(got) > 10


@pytest.mark.slow
def test_folder_discovery_takes_every_format_and_bad_files_fail_alone(
    tmp_path: Path, head: Volume
) -> None:
    tree = tmp_path / "in"
    (tree / "sub").mkdir(parents=True)
    write_nrrd(tree / "a.nrrd", *head)
    write_nrrd(tree / "sub" / "b.nhdr", *head)
    write_sitk(tree / "c.mha", *head)
    write_nibabel(tree / "sub" / "d.mgz", *head)
    write_nibabel(tree / "e.hdr", *reorient_to(*head, "LAS"))
    (tree / "lone.hdr").write_bytes(b"not an Analyze header, and no .img beside it")
    (tree / "b.raw").write_bytes(b"a detached data file is not an input")
    (tree / "bad.mha").write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 9 9 9\n")
    write_nrrd(tree / "trunc.nhdr", *head, encoding="raw")
    (tree / "trunc.raw").write_bytes(b"\0" * 100)
    result = niftislice.convert(tree, tmp_path / "out")
    by_name = {Path(r.source).name: r for r in result.results}
    assert sorted(by_name) == sorted(
        ["a.nrrd", "b.nhdr", "c.mha", "d.mgz", "e.hdr", "bad.mha", "trunc.nhdr"]
    )
    failed = {n: r.error for n, r in by_name.items() if r.status == "failed"}
    assert set(failed) == {"bad.mha", "trunc.nhdr"}
    assert "no ElementDataFile" in failed["bad.mha"]
    assert "truncated NRRD data in trunc.raw" in failed["trunc.nhdr"]
    assert all("\n" not in e for e in failed.values())
    out = tmp_path / "out"
    for folder in ["a", "sub/b", "c", "sub/d", "e"]:
        assert (out / folder / f"{Path(folder).name}.json").is_file()


def test_info_preview_load_and_stack_accept_nrrd(
    tmp_path: Path, head: Volume, capsys: pytest.CaptureFixture[str]
) -> None:
    data, aff = head
    src = write_nrrd(tmp_path / "v.nrrd", *reorient_to(data, aff, "PIR"))
    assert main(["info", str(src), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == "NRRD" and facts["axcodes"] == "PIR" and facts["stem"] == "v"
    assert main(["preview", str(src), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    vol = niftislice.load(src)
    assert vol.spacing_mm == pytest.approx((3.0, 2.4, 4.5))  # the API on the canonical grid
    niftislice.convert(src, tmp_path / "out", niftislice.ConvertOptions(views="axial"))
    back = niftislice.stack(tmp_path / "out" / "v" / "axial", tmp_path / "back.nii.gz").image
    np.testing.assert_allclose(back.affine, reorient_to(data, aff, "PIR")[1], atol=1e-5)
    assert back.shape == reorient_to(data, aff, "PIR")[0].shape
