"""Small training-set trees built from the MNI152 templates: a BIDS-like study with label maps
(grey and white matter of the template, thresholded) and an nnU-Net-style raw dataset."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from conftest import TEST_DATA, reorient_to, save

import niftislice

STEP = 5  # mm per voxel after downsampling: ~32 x 39 x 32 voxels, fast
CROP = (slice(20, 177), slice(20, 213), slice(10, 170))  # the head, without most of the air
ORDERS = ["RAS", "LAS", "LPS", "PIR", "RPI", "ASL"]  # one storage order per subject
SUBJECTS = [f"sub-{i:02d}" for i in range(1, 7)]


def _small(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)[CROP][::STEP, ::STEP, ::STEP]
    aff = img.affine.copy()
    aff[:3, 3] = (aff @ [*(c.start for c in CROP), 1])[:3]
    aff[:3, :3] *= STEP
    return np.ascontiguousarray(data), aff


@lru_cache(maxsize=1)
def _head() -> tuple[np.ndarray, np.ndarray]:
    data, aff = _small(niftislice.sample_path())
    return data.astype(np.int16), aff


@lru_cache(maxsize=1)
def _labels() -> np.ndarray:
    gm, _ = _small(TEST_DATA / "mni152_gm_1mm.nii.gz")
    wm, _ = _small(TEST_DATA / "mni152_wm_1mm.nii.gz")
    out = np.zeros(gm.shape, dtype=np.uint8)
    out[gm > 127] = 1
    out[wm > 127] = 2
    return out


def head() -> tuple[np.ndarray, np.ndarray]:
    """The T1 template, cropped and at 5 mm: (int16 array, RAS affine)."""
    data, aff = _head()
    return data.copy(), aff.copy()


def labels() -> np.ndarray:
    """Label map on :func:`head`'s grid: 1 grey matter, 2 white matter (probability > 50 %)."""
    return _labels().copy()


def subject_image(i: int) -> np.ndarray:
    """Subject ``i``'s scan: the template scaled and with seeded noise, so subjects differ."""
    data, _ = head()
    rng = np.random.default_rng(i)
    noisy = data * (0.9 + 0.05 * i) + rng.normal(0, 3, data.shape)
    return np.clip(noisy, 0, None).astype(np.int16)


def write(path: Path, data: np.ndarray, affine: np.ndarray, axcodes: str = "RAS") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr, aff = reorient_to(data, affine, axcodes)
    return save(path, arr, aff)


def bids_tree(root: Path, n: int = 6, masks_order: str | None = "RAS") -> tuple[Path, Path]:
    """``root/bids/sub-XX/anat/sub-XX_T1w.nii.gz`` (subject XX stored in ``ORDERS[XX-1]``) and
    ``root/masks/sub-XX/anat/sub-XX_T1w.nii.gz`` (stored in ``masks_order``, so most masks sit
    on another voxel grid than their scan and are placed by their affine)."""
    _, aff = head()
    lab = labels()
    bids, masks = root / "bids", root / "masks"
    for i, sub in enumerate(SUBJECTS[:n]):
        name = f"{sub}_T1w.nii.gz"
        write(bids / sub / "anat" / name, subject_image(i), aff, ORDERS[i])
        if masks_order:
            write(masks / sub / "anat" / name, lab, aff, masks_order)
    return bids, masks


def nnunet_tree(root: Path, cases: int = 3) -> tuple[Path, Path]:
    """``imagesTr/case_00N_0000.nii.gz`` and ``_0001`` (two channels), ``labelsTr/case_00N``."""
    _, aff = head()
    lab = labels()
    images, labels_dir = root / "Dataset001" / "imagesTr", root / "Dataset001" / "labelsTr"
    for c in range(cases):
        for ch in range(2):
            write(images / f"case_{c:03d}_{ch:04d}.nii.gz", subject_image(10 * c + ch), aff)
        write(labels_dir / f"case_{c:03d}.nii.gz", lab, aff, "LPS")
    return images, labels_dir


def series_4d(path: Path, frames: int = 5) -> Path:
    """A short 4D series (int16) of the small head, each frame a little brighter."""
    data, aff = head()
    arr = np.stack([data + 5 * t for t in range(frames)], axis=-1).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(path, arr, aff)
