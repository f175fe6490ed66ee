"""Shared fixtures: real volumes (the MNI152 template, nibabel's files) and ways to restore them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as ornts

import niftislice

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
TEST_DATA = Path(__file__).parent / "data"

# Storage orders used across the suite: the common ones (RAS, LAS, LPS, PIR as in MRHead) and
# permuted ones.
STORAGE_ORDERS = ["RAS", "LAS", "LPS", "PIR", "RPI", "ASL", "IRP", "SPL", "PLI", "ILA"]


def reorient_to(
    data: np.ndarray, affine: np.ndarray, axcodes: str
) -> tuple[np.ndarray, np.ndarray]:
    """Store the same anatomy in another voxel order: returns (array, affine) in ``axcodes``."""
    start = ornts.io_orientation(affine)
    end = ornts.axcodes2ornt(tuple(axcodes))
    tr = ornts.ornt_transform(start, end)
    out = ornts.apply_orientation(data, tr)
    return np.ascontiguousarray(out), affine @ ornts.inv_ornt_aff(tr, data.shape[:3])


def save(path: Path, data: np.ndarray, affine: np.ndarray, **header: object) -> Path:
    img = nib.Nifti1Image(data, affine)
    for k, v in header.items():
        img.header[k] = v
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    nib.save(img, path)
    return path


@pytest.fixture(scope="session")
def sample() -> Path:
    return niftislice.sample_path()


@pytest.fixture(scope="session")
def template() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template (uint8, RAS, 1 mm) as (array, affine)."""
    img = nib.load(niftislice.sample_path())
    return np.asanyarray(img.dataobj), img.affine


@pytest.fixture(scope="session")
def small_head(template: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The template at 3 mm (every third voxel): real anatomy, fast tests. int16."""
    data, aff = template
    small = data[::3, ::3, ::3].astype(np.int16)
    a = aff.copy()
    a[:3, :3] *= 3
    return small, a


@pytest.fixture
def write_oriented(tmp_path: Path) -> Callable[..., Path]:
    """Write (data, RAS affine) stored in ``axcodes`` with voxel sizes scaled by ``zooms``."""

    def make(
        data: np.ndarray,
        affine: np.ndarray,
        axcodes: str = "RAS",
        name: str | None = None,
        **hdr: object,
    ) -> Path:
        arr, aff = reorient_to(data, affine, axcodes)
        return save(tmp_path / (name or f"vol_{axcodes}.nii.gz"), arr, aff, **hdr)

    return make


def patch_header(path: Path, **fields: object) -> Path:
    """Set raw header fields in a saved file (nibabel resets some, e.g. scaling, when saving)."""
    import gzip

    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    body = bytearray(gzip.decompress(raw) if gz else raw)
    hdr = nib.Nifti1Header(binaryblock=bytes(body[:348]), check=False)
    for k, v in fields.items():
        hdr[k] = v
    body[:348] = hdr.binaryblock
    path.write_bytes(gzip.compress(bytes(body)) if gz else bytes(body))
    return path


@pytest.fixture(scope="session")
def unprivileged() -> list[str]:
    """A command prefix under which permission bits apply (root drops the bypassing caps)."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    if not shutil.which("setpriv") or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE")
    return prefix
