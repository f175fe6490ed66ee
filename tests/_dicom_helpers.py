"""Build DICOM series from the MNI152 template with pydicom, and run dcm2niix as the reference.

A series is described by its grid in LPS+ (the DICOM patient space): ImageOrientationPatient
``(r, c)``, PixelSpacing ``(Δrow, Δcol)``, size, the first slice's position and the step between
slices. Each pixel is sampled (nearest neighbour) from the template at its world position, so
the expected voxel array and affine are known exactly, whatever the storage order.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy import ndimage

import niftislice

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse: RAS <-> LPS
PHI = {"PatientName": "Doe^Jane", "PatientID": "PID-4711", "PatientBirthDate": "19700101"}


def template() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template (uint8, RAS, 1 mm) as (array, affine)."""
    img = nib.load(niftislice.sample_path())
    return np.asanyarray(img.dataobj), img.affine


@dataclass
class SeriesSpec:
    """A series' grid (LPS+ mm) and how its files are written."""

    r: tuple[float, float, float]  # direction of increasing column index
    c: tuple[float, float, float]  # direction of increasing row index
    spacing: tuple[float, float]  # (Δrow, Δcol)
    rows: int
    columns: int
    slices: int
    step: float  # along n = r x c
    centre: tuple[float, float, float] = (0.0, -18.0, 18.0)  # LPS mm, the grid's centre
    shear: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to the step (gantry tilt)
    modality: str = "CT"
    number: int = 3
    description: str = "Head 3mm"
    intercept: float = -1024.0
    slope: float = 1.0
    scale: float = 4.0  # stored = template * scale
    signed: bool = True
    bits_stored: int = 16
    descending: bool = False  # InstanceNumber counts against IPP·n
    shuffle_names: bool = False
    window: tuple[float, float] | None = (40.0, 80.0)
    series_uid: str = field(default_factory=generate_uid)
    study_uid: str = "1.2.826.0.1.3680043.8.498.1"
    photometric: str = "MONOCHROME2"

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.r, self.c)

    def step_vector(self) -> np.ndarray:
        return self.normal * self.step + np.asarray(self.shear)

    def first_position(self) -> np.ndarray:
        r, c = np.asarray(self.r), np.asarray(self.c)
        half = (
            r * self.spacing[1] * (self.columns - 1)
            + c * self.spacing[0] * (self.rows - 1)
            + self.step_vector() * (self.slices - 1)
        ) / 2
        return np.asarray(self.centre) - half

    def lps_affine(self) -> np.ndarray:
        """Voxel (column i, row j, slice k) -> LPS+ mm."""
        a = np.eye(4)
        a[:3, 0] = np.asarray(self.r) * self.spacing[1]
        a[:3, 1] = np.asarray(self.c) * self.spacing[0]
        a[:3, 2] = self.step_vector()
        a[:3, 3] = self.first_position()
        return a

    def ras_affine(self) -> np.ndarray:
        return LPS @ self.lps_affine()


def sample_volume(spec: SeriesSpec) -> np.ndarray:
    """Stored values on the series grid, shape (columns, rows, slices): the template sampled at
    each voxel's world position (nearest neighbour), times ``scale``."""
    data, ras = template()
    ii, jj, kk = np.meshgrid(
        np.arange(spec.columns), np.arange(spec.rows), np.arange(spec.slices), indexing="ij"
    )
    vox = np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)])
    src = np.linalg.inv(ras) @ spec.ras_affine() @ vox
    values = ndimage.map_coordinates(data, src[:3], order=0, mode="constant", cval=0)
    stored = values.reshape(ii.shape).astype(np.float64) * spec.scale
    dtype = np.int16 if spec.signed else np.uint16
    return stored.astype(dtype)


def _dataset(spec: SeriesSpec, k: int, image: np.ndarray, instance: int) -> Dataset:
    """One slice; ``image`` is (rows, columns)."""
    meta = FileMetaDataset()
    sop = CTImageStorage if spec.modality == "CT" else MRImageStorage
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = spec.modality
    for key, value in PHI.items():
        setattr(ds, key, value)
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDate = "20240101", "20240101", "20240101"
    ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime = "120000", "120000", f"1200{k % 60:02d}"
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.FrameOfReferenceUID = spec.study_uid + ".9"
    ds.SeriesNumber = spec.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance
    ds.SeriesDescription = spec.description
    ds.ProtocolName = spec.description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    pos = spec.first_position() + spec.step_vector() * k
    ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*spec.r, *spec.c)]
    ds.PixelSpacing = [f"{spec.spacing[0]:g}", f"{spec.spacing[1]:g}"]
    ds.SliceThickness = f"{spec.step:g}"
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.BitsAllocated = 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 1 if spec.signed else 0
    ds.RescaleIntercept = f"{spec.intercept:g}"
    ds.RescaleSlope = f"{spec.slope:g}"
    if spec.window:
        ds.WindowCenter, ds.WindowWidth = f"{spec.window[0]:g}", f"{spec.window[1]:g}"
    ds.PixelData = np.ascontiguousarray(image).astype(image.dtype.newbyteorder("<")).tobytes()
    return ds


def write_series(folder: Path, spec: SeriesSpec, skip: tuple[int, ...] = ()) -> np.ndarray:
    """Write one file per slice into ``folder``; returns the stored volume (columns, rows, k)."""
    folder.mkdir(parents=True, exist_ok=True)
    vol = sample_volume(spec)
    order = list(range(spec.slices))
    names = [f"IM{n:04d}" for n in range(spec.slices)]
    if spec.shuffle_names:
        random.Random(spec.number).shuffle(names)
    for k in order:
        if k in skip:
            continue
        instance = spec.slices - k if spec.descending else k + 1
        ds = _dataset(spec, k, vol[:, :, k].T, instance)
        ds.save_as(folder / names[k], enforce_file_format=True)
    return vol


def dcm2niix(src: Path, out: Path) -> list[Path]:
    """Convert with dcm2niix (the reference); returns its NIfTI files, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("dcm2niix")
    assert exe, "dcm2niix is needed for the reference comparison (test extra)"
    subprocess.run(
        [exe, "-b", "n", "-z", "n", "-f", "%s_%d", "-o", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    return sorted(out.glob("*.nii"))


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both brought to the closest RAS+ grid (permutes and flips only)."""
    img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    return np.asanyarray(img.dataobj), img.affine


# Common grids (LPS+): axial, sagittal and coronal as scanners store them.
AXIAL = {"r": (1.0, 0.0, 0.0), "c": (0.0, 1.0, 0.0)}  # n = +S: slices from feet to head
SAGITTAL = {"r": (0.0, 1.0, 0.0), "c": (0.0, 0.0, -1.0)}  # n = -L: slices from left to right
CORONAL = {"r": (1.0, 0.0, 0.0), "c": (0.0, 0.0, -1.0)}  # n = +P


def oblique(deg_x: float, deg_z: float) -> dict[str, tuple[float, float, float]]:
    """The axial grid rotated about x (LPS) then z, in degrees."""
    ax, az = np.radians(deg_x), np.radians(deg_z)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rot = rz @ rx
    r, c = rot @ np.array([1.0, 0, 0]), rot @ np.array([0, 1.0, 0])
    return {"r": tuple(map(float, r)), "c": tuple(map(float, c))}  # type: ignore[dict-item]


def small(**kw: object) -> SeriesSpec:
    """A small series: 60 x 56 pixels of 3 mm, 40 slices 3 mm apart, unless ``kw`` says so."""
    base: dict[str, object] = {"spacing": (3.0, 3.0), "rows": 60, "columns": 56, "slices": 40}
    return SeriesSpec(**{**base, "step": 3.0, **kw})  # type: ignore[arg-type]


#: sagittal with non-square pixels and image, to catch a swapped PixelSpacing or (r, c)
SAGITTAL_NON_SQUARE: dict[str, object] = {
    **SAGITTAL,
    "spacing": (1.6, 1.1),
    "rows": 70,
    "columns": 110,
    "slices": 24,
    "step": 4.0,
}
#: ... as an MR stored in descending order under shuffled file names
SAGITTAL_MR_DESCENDING: dict[str, object] = {
    **SAGITTAL_NON_SQUARE,
    "modality": "MR",
    "intercept": 0.0,
    "descending": True,
    "shuffle_names": True,
}
#: an oblique grid with non-square pixels
OBLIQUE: dict[str, object] = {
    **oblique(17.0, -9.0),
    "spacing": (2.5, 2.0),
    "rows": 64,
    "columns": 72,
    "step": 3.2,
}
