"""Label maps on the anatomy: a mask brought onto the anatomy's voxel grid, and painted.

A mask is a 3D NIfTI label map (integer values, 0 = background). When it shares the anatomy's
grid (same shape, affines equal within :data:`GRID_TOLERANCE_MM`) it is used as stored;
otherwise every anatomy voxel takes the label of the mask voxel nearest to the same world point
(mask index = ``round(inv(mask_affine) @ anatomy_affine @ anatomy_index)``), with 0 outside
the mask. The result lives on the anatomy's *stored* grid, so it goes through exactly the same
reorientation, view transposes and (nearest-neighbour) resampling as the anatomy.

Colours come from a fixed table of distinct saturated colours, chosen by label value
(:func:`label_colours`), so label 3 has the same colour in every image and every file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._cv2 import cv2
from ..errors import InputError
from ..naming import display_name
from ..read import NiftiFile, ReadResult, iter_volumes, open_source
from ..resample import resample_labels
from ..window import check_integral

GRID_TOLERANCE_MM = 1e-3

#: Distinct colours (RGB) for labels 1, 2, 3, ...; label v uses entry (v - 1) mod 16.
LABEL_COLOURS = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (0, 128, 128),
        (170, 110, 40),
        (128, 0, 0),
        (128, 128, 0),
        (0, 0, 128),
        (255, 105, 180),
        (0, 255, 127),
    ],
    dtype=np.uint8,
)


def label_colours(values: np.ndarray) -> np.ndarray:
    """RGB colour of each label value (> 0) as a ``(..., 3)`` uint8 array."""
    return LABEL_COLOURS[(np.asarray(values, dtype=np.int64) - 1) % len(LABEL_COLOURS)]


@dataclass(frozen=True)
class Mask:
    """Labels on the anatomy's stored voxel grid."""

    path: Path
    labels: np.ndarray  # anatomy spatial shape, uint8 or uint16, 0 = background
    resampled: bool  # False when the mask already shared the anatomy's grid
    values: tuple[int, ...]  # label values present (without 0)
    sha256: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "path": display_name(str(self.path.resolve())),
            "sha256": self.sha256,
            "resampled": self.resampled,
            "resampling": "nearest neighbour by the two affines"
            if self.resampled
            else "none (same grid)",
            "labels": {str(v): label_colours(np.array(v)).tolist() for v in self.values},
        }


def load_mask(path: str | Path, anatomy: NiftiFile, option: str = "overlay") -> Mask:
    """Read a 3D label map and bring it onto ``anatomy``'s stored grid (nearest neighbour)."""
    p = Path(path)
    where = f"{option} {p}"
    try:
        nf = open_source(p)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    if nf.n_volumes != 1:
        raise InputError(f"{where}: a mask must be 3D, this file has {nf.n_volumes} volumes")
    if nf.rgb_channels:
        raise InputError(f"{where}: a mask must be a label map, this file holds RGB colours")
    read = ReadResult()
    try:
        raw = next(arr for _, arr in iter_volumes(nf, None, read))
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    labels = _as_labels(raw, nf, where)
    same = nf.spatial_shape == anatomy.spatial_shape and np.allclose(
        nf.affine, anatomy.affine, rtol=0, atol=GRID_TOLERANCE_MM
    )
    if not same:
        labels, overlap = resample_labels(labels, nf.affine, anatomy.spatial_shape, anatomy.affine)
        if not overlap:
            raise InputError(
                f"{where}: the mask does not overlap {anatomy.path.name} in world space "
                f"(mask grid {'x'.join(map(str, nf.spatial_shape))}, anatomy grid "
                f"{'x'.join(map(str, anatomy.spatial_shape))}); check the two affines"
            )
    values = tuple(int(v) for v in np.unique(labels) if v)
    return Mask(p, labels, not same, values, read.sha256)


def _as_labels(raw: np.ndarray, nf: NiftiFile, where: str) -> np.ndarray:
    """Integer labels 0..65535 as uint8/uint16 (F order, like the stored data)."""
    try:
        check_integral(raw, nf.slope, nf.inter, "a mask")
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None
    if nf.is_scaled or raw.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            vals = raw.astype(np.float64) * nf.slope + nf.inter
        vals[~np.isfinite(vals)] = 0
    else:
        vals = raw
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
    if lo < 0 or hi > 65535:
        raise InputError(f"{where}: mask labels must be 0..65535, found {lo:g} to {hi:g}")
    dtype = np.uint8 if hi <= 255 else np.uint16
    return np.asarray(vals, order="F").astype(dtype, order="F", copy=False)


# --------------------------------------------------------------------------------------------
# painting


def contour(labels: np.ndarray) -> np.ndarray:
    """Boolean image: labelled pixels with a 4-neighbour of another label (or the image edge)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    lab = labels if labels.dtype in (np.uint8, np.uint16) else labels.astype(np.uint16)
    lo = cv2.erode(lab, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    hi = cv2.dilate(lab, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (lab > 0) & ((lo != lab) | (hi != lab))


def paint_labels(
    image: np.ndarray, labels: np.ndarray, alpha: float, contour_only: bool
) -> np.ndarray:
    """An 8-bit grey or RGB image with ``labels`` (same height and width) painted on, as RGB.

    Filled mode blends each labelled pixel: ``(1 - alpha) * pixel + alpha * colour``; contour mode
    draws the outline of each label region in its full colour and leaves the inside untouched.
    """
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else np.array(image[:, :, :3])
    sel = contour(labels) if contour_only else labels > 0
    if not sel.any():
        return rgb
    colours = label_colours(labels[sel])
    if contour_only:
        rgb[sel] = colours
    else:
        mixed = (1.0 - alpha) * rgb[sel] + alpha * colours
        rgb[sel] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return rgb
