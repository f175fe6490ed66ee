"""A head CT built from the MNI152 template: Hounsfield-like values, scanner padding, storages.

The template's T1 and its grey/white-matter maps give the anatomy; values follow CT: air -1024,
CSF about 8, white matter about 28, grey matter about 40; around the (skull-stripped) brain,
shells of CSF, skull (1000 HU), scalp (30 HU) and fat (-90 HU); a little noise (sigma 4 HU).
Outside a circle in the axial plane (the scanner's reconstruction field of view, radius 110 mm)
the scanner stores padding, as many do (-3024 HU here).

Storages, as scanners and dcm2niix write them:
- ``int16``, ``float32``: HU stored directly;
- ``int16_inter``: stored = HU + 1024 with scl_inter -1024 (padding stored as -2000);
- ``uint16_inter``: stored = HU + 1024 with scl_inter -1024; unsigned storage cannot go below
  -1024 HU, so the padding is stored as 0, the same value as the air floor.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
from conftest import TEST_DATA, patch_header, save
from scipy import ndimage

import niftislice

PADDING_HU = -3024
STORAGES = ("int16", "int16_inter", "uint16_inter", "float32")


@cache
def head_ct_hu(step: int = 2, padding: int = PADDING_HU) -> tuple[np.ndarray, np.ndarray]:
    """(HU as int16, affine) of the template sampled every ``step`` voxels."""
    t1_img = nib.load(niftislice.sample_path())
    sub = (slice(None, None, step),) * 3

    def load(path: Path) -> np.ndarray:
        return np.asanyarray(nib.load(path).dataobj)[sub].astype(np.float32)

    t1 = load(niftislice.sample_path())
    gm = load(TEST_DATA / "mni152_gm_1mm.nii.gz") / 255.0
    wm = load(TEST_DATA / "mni152_wm_1mm.nii.gz") / 255.0
    brain = ndimage.binary_fill_holes(t1 > 0)  # the template is skull-stripped
    # shells around the brain, in mm: CSF 2, skull 5, scalp 3 with a 1 mm layer of fat
    shells = [(2, 8.0), (7, 1000.0), (9, 30.0), (10, -90.0), (11, 30.0)]
    hu = np.full(t1.shape, -1024.0, np.float32)
    dist = ndimage.distance_transform_edt(~brain, sampling=step)
    for radius, value in reversed(shells):
        hu[(dist > 0) & (dist <= radius)] = value
    hu[brain] = (8 + 32 * gm + 20 * wm)[brain]  # CSF 8, GM 40, WM 28
    hu += np.random.default_rng(11).normal(0, 4, hu.shape).astype(np.float32)
    hu = np.maximum(hu, -1024)
    # outside the reconstruction circle (axial plane, centred): padding
    x, y = np.meshgrid(np.arange(t1.shape[0]), np.arange(t1.shape[1]), indexing="ij")
    cx, cy = (t1.shape[0] - 1) / 2, (t1.shape[1] - 1) / 2
    outside = ((x - cx) ** 2 + (y - cy) ** 2) * step**2 > 110.0**2
    hu[outside, :] = padding
    aff = t1_img.affine.copy()
    aff[:3, :3] *= step
    return np.rint(hu).astype(np.int16), aff


def save_ct(path: Path, hu: np.ndarray, affine: np.ndarray, storage: str) -> Path:
    """Write ``hu`` in one of :data:`STORAGES` (see the module docstring)."""
    if storage in ("int16", "float32"):
        return save(path, hu.astype(storage), affine)
    stored = hu.astype(np.int32) + 1024
    if storage == "int16_inter":
        data = stored.astype(np.int16)
    elif storage == "uint16_inter":
        data = np.maximum(stored, 0).astype(np.uint16)
    else:
        raise ValueError(storage)
    save(path, data, affine)
    return patch_header(path, scl_slope=1.0, scl_inter=-1024.0)
