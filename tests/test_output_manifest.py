"""Refactoring never changes what users get: a fixed set of conversions is compared file by file
(sha256) with a committed manifest, made at 51ae519, before the package was reshaped (issue 10).

A deliberate change of output regenerates the manifest, and says why in its commit:
``python tests/test_output_manifest.py > tests/data/output_manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import nibabel.tests
import pytest

from niftislice.cli import main
from niftislice.png import encode_png

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "data" / "output_manifest.json"
NIB_DATA = Path(nibabel.tests.__file__).parent / "data"
SAMPLE = HERE.parent / "src" / "niftislice" / "data" / "mni152_t1_1mm.nii.gz"

RUNS: dict[str, list[str]] = {
    "sample": [str(SAMPLE)],
    "sample_jpg": [str(SAMPLE), "--spacing", "1.3", "--format", "jpg", "--slices", "::20"],
    "anatomical_lossless": [str(NIB_DATA / "anatomical.nii"), "--lossless", "--spacing", "native"],
    "example4d": [
        str(NIB_DATA / "example4d.nii.gz"),
        *("--volumes", "0:2", "--views", "axial,sagittal"),
    ],
    "standard_16bit_tif": [
        str(NIB_DATA / "standard.nii.gz"),
        *("--bit-depth", "16", "--format", "tif"),
    ],
}


def digest(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".json":  # the sidecar: all but the absolute source path
        sidecar = json.loads(data)
        sidecar["source"].pop("path", None)
        data = json.dumps(sidecar, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def convert_all(root: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, args in RUNS.items():
        out = root / name
        assert main(["convert", *args, "-o", str(out), "-j", "1", "-q"]) == 0, name
        found[name] = {
            f.relative_to(out).as_posix(): digest(f) for f in sorted(out.rglob("*")) if f.is_file()
        }
    return found


def same_png_pixels(path: Path, expected_sha: str) -> bool:
    """Whether a PNG whose bytes differ holds the pixels the manifest's file held.

    ISA-L's deflate very rarely picks other (equally valid) matches for the same input (seen
    about once in 30,000 images under load, never reproduced on its own), so a file can differ
    in its compressed bytes only. Its pixels are the manifest's when re-encoding them gives the
    manifest's bytes.
    """
    if path.suffix != ".png":
        return False
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels.ndim == 3:  # OpenCV decodes colour as BGR(A); the writer takes RGB(A)
        pixels = cv2.cvtColor(
            pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
        )
    return any(hashlib.sha256(encode_png(pixels)).hexdigest() == expected_sha for _ in range(3))


@pytest.mark.slow
def test_outputs_are_byte_identical_to_the_manifest(tmp_path):
    expected = json.loads(MANIFEST.read_text())
    found = convert_all(tmp_path)
    for name in RUNS:
        missing = sorted(set(expected[name]) - set(found[name]))
        extra = sorted(set(found[name]) - set(expected[name]))
        changed = sorted(
            k for k in expected[name] if found[name].get(k, expected[name][k]) != expected[name][k]
        )
        assert not (missing or extra or changed), (
            f"{name}: {len(changed)} changed (e.g. {changed[:3]}), "
            f"missing {missing[:3]}, unexpected {extra[:3]}"
        )


if __name__ == "__main__":  # regenerate: python tests/test_output_manifest.py > MANIFEST
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        json.dump(convert_all(Path(d)), sys.stdout, indent=0, sort_keys=True)
        sys.stdout.write("\n")
