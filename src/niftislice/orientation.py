"""Reorientation to the closest canonical RAS+ grid: axis permutations and flips only.

All orientation math is nibabel's (``io_orientation``, ``apply_orientation``, ``inv_ornt_aff``);
this module packages it with what the rest of the pipeline needs to know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._nib import nib

ornts = nib.orientations
obliquity, voxel_sizes = nib.affines.obliquity, nib.affines.voxel_sizes


@dataclass(frozen=True)
class Reorientation:
    """How a stored voxel grid maps onto the canonical RAS+ grid."""

    ornt: np.ndarray  # (3, 2): nibabel orientation of the stored axes
    source_shape: tuple[int, int, int]
    source_affine: np.ndarray
    canonical_shape: tuple[int, int, int]
    canonical_affine: np.ndarray
    source_axcodes: tuple[str, str, str]
    obliquity_deg: float  # largest angle between a voxel axis and its closest world axis

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along canonical x, y, z in mm."""
        return tuple(float(v) for v in voxel_sizes(self.canonical_affine))  # type: ignore[return-value]

    @property
    def is_oblique(self) -> bool:
        return self.obliquity_deg > 1e-3

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """A view of a stored-order array (extra trailing axes kept) in canonical order."""
        return ornts.apply_orientation(arr, self.ornt)

    def to_json(self) -> dict[str, object]:
        return {
            "source_axcodes": "".join(self.source_axcodes),
            "canonical_axcodes": "RAS",
            "ornt": self.ornt.astype(int).tolist(),
            "canonical_shape": list(self.canonical_shape),
            "canonical_affine": self.canonical_affine.tolist(),
            "obliquity_deg": self.obliquity_deg,
        }


def reorientation(affine: np.ndarray, shape: tuple[int, int, int]) -> Reorientation:
    ornt = ornts.io_orientation(affine)
    if np.any(np.isnan(ornt)):  # degenerate affine: keep the stored order
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    canonical_affine = affine @ ornts.inv_ornt_aff(ornt, shape)
    canonical_shape = tuple(int(shape[int(ax)]) for ax in np.argsort(ornt[:, 0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        angles = obliquity(affine)
    ob = float(np.nanmax(np.abs(angles))) if np.any(np.isfinite(angles)) else 0.0
    return Reorientation(
        ornt=ornt,
        source_shape=shape,
        source_affine=affine,
        canonical_shape=canonical_shape,  # type: ignore[arg-type]
        canonical_affine=canonical_affine,
        source_axcodes=tuple(ornts.ornt2axcodes(ornt)),  # type: ignore[arg-type]
        obliquity_deg=math.degrees(ob),
    )
