"""Helpers for the round-trip tests: small real volumes, export-then-stack, agreement measures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from conftest import TEST_DATA

import niftislice
from niftislice import ConvertOptions
from niftislice.naming import stem_of

VIEWS = ("axial", "coronal", "sagittal")


def small_template() -> nib.Nifti1Image:
    """The MNI152 T1 template cropped to the head and at 2 mm: 76 x 96 x 80, real anatomy."""
    img = nib.load(niftislice.sample_path())
    return img.slicer[22:174:2, 20:212:2, 10:170:2]


def label_map() -> tuple[np.ndarray, np.ndarray]:
    """0 background, 1 grey matter, 2 white matter (probability > 0.5), on the 1 mm grid."""
    gm = np.asanyarray(nib.load(TEST_DATA / "mni152_gm_1mm.nii.gz").dataobj)
    wm_img = nib.load(TEST_DATA / "mni152_wm_1mm.nii.gz")
    wm = np.asanyarray(wm_img.dataobj)
    labels = np.zeros(gm.shape, np.uint8)
    labels[gm > 127] = 1
    labels[(wm > 127) & (wm >= gm)] = 2
    return labels, wm_img.affine


def export(path: Path, out: Path, **options: Any) -> Path:
    """Convert one file; returns its output folder (sidecar inside)."""
    res = niftislice.convert(path, out, ConvertOptions.parse(jobs=2, **options))
    assert res.ok, [r.error for r in res.results]
    folder = out / stem_of(path)
    assert (folder / f"{folder.name}.json").is_file()
    return folder


def sidecar(folder: Path) -> dict[str, Any]:
    return json.loads((folder / f"{folder.name}.json").read_text())


def stored(path: Path) -> np.ndarray:
    """Voxel values as stored (no scaling applied), in stored order."""
    return np.asanyarray(nib.load(path).dataobj.get_unscaled())


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    x, y = a == label, b == label
    return float(2 * np.logical_and(x, y).sum() / (x.sum() + y.sum()))


def max_affine_error(result: nib.Nifti1Image, source: nib.Nifti1Image) -> float:
    errs = [np.abs(result.affine - source.affine).max()]
    for get in ("get_qform", "get_sform"):
        errs.append(np.abs(getattr(result.header, get)() - getattr(source.header, get)()).max())
    return float(max(errs))
