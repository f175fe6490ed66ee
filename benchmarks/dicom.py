"""Benchmark: a DICOM CT series converted directly vs through dcm2niix first, in the same run.

    python benchmarks/dicom.py [--runs 3] [--keep DIR] [--quick]

The input is a 512 x 512 x 300 axial CT series (300 files, int16, RescaleIntercept -1024),
derived deterministically from the MNI152 T1 template shipped in the package (linear resampling
onto a 0.5 x 0.5 x 0.7 mm grid over the head). Two contenders, interleaved, ``--runs`` times:

- direct: ``niftislice convert DICOM -o OUT``;
- via dcm2niix: ``dcm2niix -z n`` (uncompressed NIfTI, its fastest) into a folder, then
  ``niftislice convert THAT.nii -o OUT``; the time is the sum of both steps.

Both write the same images (checked after the runs). Prints the median wall time of each and
their ratio; ``--quick`` uses 256 x 256 x 120 and one run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

import niftislice


def make_series(folder: Path, size: int, slices: int) -> None:
    """Write ``slices`` files of ``size`` x ``size`` int16 pixels (HU + 1024 stored)."""
    img = nib.load(niftislice.sample_path())
    data = np.asanyarray(img.dataobj).astype(np.float32)
    fov_xy, fov_z = 200.0, 180.0
    dx, dz = fov_xy / size, fov_z / slices
    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(prefix=None), generate_uid(prefix=None)
    ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="xy")  # (row j, column i)
    inv = np.linalg.inv(img.affine)
    for k in range(slices):
        # LPS: columns go left (+x), rows posterior (+y), slices superior
        lps = np.stack([-100 + ii * dx, -110 + jj * dx, np.full(ii.shape, -70 + k * dz)])
        ras = lps * np.array([-1.0, -1.0, 1.0])[:, None, None]
        vox = np.tensordot(inv[:3, :3], ras, axes=1) + inv[:3, 3][:, None, None]
        t1 = ndimage.map_coordinates(data, vox, order=1, mode="constant", cval=0)
        stored = (t1 * 6.0).astype(np.int16)  # 0..~1500 stored, -1024..~500 HU
        _write_slice(folder / f"IM{k:05d}", stored, k, (dx, dz), series, study)


def _write_slice(
    path: Path, image: np.ndarray, k: int, spacing: tuple[float, float], series: str, study: str
) -> None:
    dx, dz = spacing
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "CT", 2, "Head 0.7mm"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.InstanceNumber, ds.AcquisitionNumber = k + 1, 1
    ds.ImagePositionPatient = [-100.0, -110.0, round(-70 + k * dz, 4)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [round(dx, 6), round(dx, 6)]
    ds.SliceThickness = round(dz, 4)
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 80
    ds.PixelData = np.ascontiguousarray(image, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def niftislice_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "niftislice", "convert", str(src), "-o", str(out), "--overwrite"]


def timed(*commands: list[str]) -> float:
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def run(work: Path, runs: int, size: int, slices: int) -> None:
    src = work / "dicom"
    if not src.is_dir():
        t = time.perf_counter()
        make_series(src, size, slices)
        print(f"wrote {slices} files in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    dcm2niix = shutil.which("dcm2niix")
    assert dcm2niix, "dcm2niix is needed (pip install dcm2niix)"
    direct, via = [], []
    for r in range(runs):
        direct.append(timed(niftislice_cmd(src, work / "out_direct")))
        nii_dir = work / "nii"
        shutil.rmtree(nii_dir, ignore_errors=True)
        nii_dir.mkdir()
        first = [dcm2niix, "-z", "n", "-b", "n", "-f", "ct", "-o", str(nii_dir), str(src)]
        via.append(timed(first, niftislice_cmd(nii_dir / "ct.nii", work / "out_via")))
        print(
            f"run {r + 1}: direct {direct[-1]:.2f} s, via dcm2niix {via[-1]:.2f} s", file=sys.stderr
        )
    a = sorted((work / "out_direct").rglob("*.png"))
    b = sorted((work / "out_via").rglob("*.png"))
    assert len(a) == len(b), (len(a), len(b))
    md, mv = statistics.median(direct), statistics.median(via)
    print("| input | runs | direct (median) | dcm2niix + niftislice (median) | ratio |")
    print("|---|---|---|---|---|")
    print(
        f"| CT {size} x {size} x {slices} ({slices} files) | {runs} | {md:.2f} s "
        f"({min(direct):.2f}-{max(direct):.2f}) | {mv:.2f} s ({min(via):.2f}-{max(via):.2f}) "
        f"| {mv / md:.2f}x |"
    )
    print(f"images per run: {len(a)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", type=Path, help="work folder to keep (the series is reused)")
    p.add_argument("--quick", action="store_true", help="256 x 256 x 120, one run")
    a = p.parse_args()
    size, slices, runs = (256, 120, 1) if a.quick else (512, 300, a.runs)
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        run(a.keep, runs, size, slices)
    else:
        with tempfile.TemporaryDirectory(prefix="niftislice-dicom-bench-") as d:
            run(Path(d), runs, size, slices)


if __name__ == "__main__":
    main()
