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

import nibabel.tests
import pytest

from niftislice.cli import main

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
