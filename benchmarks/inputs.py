"""Benchmark inputs, derived deterministically from the MNI152 T1 template shipped with niftislice.

Every input is the template (197 x 233 x 189, 1 mm, uint8, RAS) linearly resampled to a grid,
scaled into a realistic intensity range with seeded noise, and then stored in the voxel order the
case asks for (the affine is reoriented with the array, so world space is unchanged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy import ndimage

log = logging.getLogger(__name__)

TEMPLATE_NAME = "mni152_t1_1mm.nii.gz"
REPO_TEMPLATE = Path(__file__).resolve().parents[1] / "src" / "niftislice" / "data" / TEMPLATE_NAME
RAS = ("R", "A", "S")
# Bump when the derivation changes, so cached inputs in a --keep folder are rebuilt.
DERIVATION_VERSION = 1
MANIFEST_NAME = "inputs.json"


@dataclass(frozen=True)
class InputSpec:
    """One derived NIfTI file.

    ``shape`` and ``zooms_mm`` describe the RAS grid before it is stored in ``axcodes`` order;
    ``frames`` > 0 makes a 4D series with a sinusoidal signal over time (``tr_s`` apart).
    Intensities: template 0..255 maps to 0..``peak`` (data units), plus |N(0, ``noise_sd``)|-style
    magnitude noise drawn from ``seed``.
    """

    name: str
    shape: tuple[int, int, int]
    zooms_mm: tuple[float, float, float]
    axcodes: tuple[str, str, str]
    dtype: str
    peak: float
    noise_sd: float
    seed: int
    frames: int = 0
    tr_s: float = 2.0
    signal_amplitude: float = 0.02
    signal_period_frames: float = 20.0

    @property
    def filename(self) -> str:
        return f"{self.name}.nii.gz"


def _template_resource() -> Traversable:
    """The template shipped in the installed package, else the one in this repository."""
    try:
        resource = files("niftislice") / "data" / TEMPLATE_NAME
    except ModuleNotFoundError:
        return REPO_TEMPLATE
    return resource if resource.is_file() else REPO_TEMPLATE


@lru_cache(maxsize=1)
def load_template() -> tuple[np.ndarray, np.ndarray]:
    """The template as float32 RAS data (0..255) and its affine."""
    with as_file(_template_resource()) as path:
        img = cast(nib.Nifti1Image, nib.load(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    if nib.aff2axcodes(img.affine) != RAS:
        raise ValueError(f"expected a RAS template, got {nib.aff2axcodes(img.affine)}")
    return data, img.affine


@lru_cache(maxsize=2)
def resampled_template(shape: tuple[int, int, int]) -> np.ndarray:
    """The template linearly resampled (order=1) to ``shape``, float32, 0..255."""
    data, _ = load_template()
    factors = [n / m for n, m in zip(shape, data.shape, strict=True)]
    out = ndimage.zoom(data, factors, order=1, output=np.float32)
    if out.shape != shape:
        raise AssertionError(f"zoom gave {out.shape}, wanted {shape}")
    np.clip(out, 0, 255, out=out)
    return out


def ras_affine(spec: InputSpec) -> np.ndarray:
    """A RAS affine with ``spec.zooms_mm`` whose grid centre is the template's grid centre."""
    data, template_affine = load_template()
    centre_world = nib.affines.apply_affine(template_affine, (np.array(data.shape) - 1) / 2)
    zooms = np.array(spec.zooms_mm, dtype=float)
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = centre_world - zooms * (np.array(spec.shape) - 1) / 2
    return affine


def intensities(spec: InputSpec) -> np.ndarray:
    """RAS data in ``spec.dtype``: scaled template, optional 4D signal, magnitude noise."""
    rng = np.random.default_rng(spec.seed)
    base = resampled_template(spec.shape) * np.float32(spec.peak / 255.0)
    if spec.frames:
        t = np.arange(spec.frames, dtype=np.float32)
        gain = 1 + spec.signal_amplitude * np.sin(2 * np.pi * t / spec.signal_period_frames)
        data = base[..., np.newaxis] * gain.astype(np.float32)
    else:
        data = base.copy()
    data += spec.noise_sd * rng.standard_normal(data.shape, dtype=np.float32)
    np.abs(data, out=data)  # magnitude images: background noise is positive, as in MRI
    if np.issubdtype(np.dtype(spec.dtype), np.integer):
        np.rint(data, out=data)
        info = np.iinfo(spec.dtype)
        np.clip(data, info.min, info.max, out=data)
    return data.astype(spec.dtype, copy=False)


def derive(spec: InputSpec) -> nib.Nifti1Image:
    """Build the image for ``spec``: stored in ``spec.axcodes`` order with a matching affine."""
    ornt = ornt_transform(axcodes2ornt(RAS), axcodes2ornt(spec.axcodes))
    data = apply_orientation(intensities(spec), ornt)
    affine = ras_affine(spec) @ inv_ornt_aff(ornt, spec.shape)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if spec.frames:
        img.header.set_zooms((*img.header.get_zooms()[:3], spec.tr_s))
    return img


def ensure_inputs(specs: Iterable[InputSpec], folder: Path) -> list[Path]:
    """Write each spec's file into ``folder`` unless an identical derivation is already there."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST_NAME
    manifest: dict[str, dict[str, object]] = (
        json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    )
    paths = []
    for spec in specs:
        path = folder / spec.filename
        record = {"version": DERIVATION_VERSION, **asdict(spec)}
        # JSON turns tuples into lists; compare in the same form.
        if not (path.is_file() and manifest.get(spec.name) == json.loads(json.dumps(record))):
            log.info("deriving %s", path.name)
            nib.save(derive(spec), path)
            manifest[spec.name] = record
            manifest_path.write_text(json.dumps(manifest, indent=1))
        paths.append(path)
    return paths
