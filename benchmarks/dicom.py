"""Benchmark: a DICOM CT series converted directly vs through dcm2niix first, in the same run.

    python benchmarks/dicom.py [--runs 5] [--keep DIR] [--quick] [--before SRC]

The input is a 512 x 512 x 300 axial CT series (300 files, int16, RescaleIntercept -1024),
derived deterministically from the MNI152 T1 template shipped in the package (linear resampling
onto a 0.5 x 0.5 x 0.7 mm grid over the head). Two contenders, interleaved, ``--runs`` times:

- direct: ``niftislice convert DICOM -o OUT``;
- via dcm2niix: ``dcm2niix -z n`` (uncompressed NIfTI, its fastest) into a folder, then
  ``niftislice convert THAT.nii -o OUT``; the time is the sum of both steps.

Both write the same images (their pixels are compared after the runs). Prints the median wall time
of each and their ratio (dcm2niix + niftislice time / direct time: above 1 means the direct path
is faster); ``--quick`` uses 256 x 256 x 120 and one run. ``--before SRC`` adds a third
contender, interleaved with the others: the direct path with niftislice from another source tree
(``git archive COMMIT src | tar -x -C /tmp/before``, then ``--before /tmp/before/src``), to
measure a change of the DICOM reader in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
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


def timed(*commands: list[str], src: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of running ``commands`` one after the other."""
    env = dict(os.environ, PYTHONPATH=str(src)) if src else None
    start, cpu = time.perf_counter(), _children_cpu()
    for cmd in commands:
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start, _children_cpu() - cpu


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def same_images(a: Path, b: Path) -> tuple[int, int]:
    """The PNGs under ``a`` and ``b`` (one series each), matched by view and slice number (the
    file names start with each output's own stem): their pixels must be equal. Returns how many
    images there are and how many of them are also byte-identical files (all of them since the
    PNG writer compresses with libdeflate; with ISA-L, rarely not: see the notes)."""

    def by_slice(root: Path) -> dict[tuple[str, str], Path]:
        return {(p.parent.name, p.name.rsplit("_", 1)[1]): p for p in root.rglob("*.png")}

    ours, theirs = by_slice(a), by_slice(b)
    assert ours.keys() == theirs.keys() and ours, (len(ours), len(theirs))
    same_bytes = 0
    for key, path in ours.items():
        if path.read_bytes() == theirs[key].read_bytes():
            same_bytes += 1
            continue
        x, y = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (path, theirs[key]))
        assert x.shape == y.shape and (x == y).all(), f"{key}: the pixels differ"
    return len(ours), same_bytes


def run(work: Path, runs: int, size: int, slices: int, before: Path | None = None) -> None:
    src = work / "dicom"
    if not src.is_dir():
        t = time.perf_counter()
        make_series(src, size, slices)
        print(f"wrote {slices} files in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    dcm2niix = shutil.which("dcm2niix")
    assert dcm2niix, "dcm2niix is needed (pip install dcm2niix)"
    direct: list[tuple[float, float]] = []  # (wall, CPU) seconds of each run
    via: list[tuple[float, float]] = []
    old: list[tuple[float, float]] = []

    def through_dcm2niix() -> tuple[float, float]:
        nii_dir = work / "nii"
        shutil.rmtree(nii_dir, ignore_errors=True)
        nii_dir.mkdir()
        first = [dcm2niix, "-z", "n", "-b", "n", "-f", "ct", "-o", str(nii_dir), str(src)]
        return timed(first, niftislice_cmd(nii_dir / "ct.nii", work / "out_via"))

    contenders = [
        (direct, lambda: timed(niftislice_cmd(src, work / "out_direct"))),
        (via, through_dcm2niix),
    ]
    if before:
        contenders.append(
            (old, lambda: timed(niftislice_cmd(src, work / "out_before"), src=before))
        )
    for r in range(runs):
        for k in range(len(contenders)):  # each goes first in turn
            times, measure = contenders[(r + k) % len(contenders)]
            times.append(measure())
        also = f", direct (before) {old[-1][0]:.2f} s" if before else ""
        print(
            f"run {r + 1}: direct {direct[-1][0]:.2f} s, via dcm2niix {via[-1][0]:.2f} s{also}",
            file=sys.stderr,
        )
    n, same_bytes = same_images(work / "out_direct", work / "out_via")
    if before:
        same_images(work / "out_direct", work / "out_before")
    print(
        "| input | runs | direct (median wall) | dcm2niix + niftislice (median wall) | ratio "
        "| CPU: direct | CPU: dcm2niix + niftislice | CPU ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    name = f"CT {size} x {size} x {slices} ({slices} files)"
    print(_row(name, runs, direct, via))
    if before:
        print(_row(f"{name}, before", runs, old, via))
    print(
        f"images per run: {n}, the same pixels on both paths ({same_bytes} byte-identical files); "
        "ratio: dcm2niix path / direct path"
    )


def _row(
    name: str, runs: int, ours: list[tuple[float, float]], theirs: list[tuple[float, float]]
) -> str:
    """A table row: wall medians (and ranges), their ratio, CPU medians and their ratio."""
    wall = [statistics.median(t[0] for t in x) for x in (ours, theirs)]
    cpu = [statistics.median(t[1] for t in x) for x in (ours, theirs)]
    spans = [f"{min(t[0] for t in x):.2f}-{max(t[0] for t in x):.2f}" for x in (ours, theirs)]
    return (
        f"| {name} | {runs} | {wall[0]:.2f} s ({spans[0]}) | {wall[1]:.2f} s ({spans[1]}) "
        f"| {wall[1] / wall[0]:.2f}x | {cpu[0]:.2f} s | {cpu[1]:.2f} s | {cpu[1] / cpu[0]:.2f}x |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--keep", type=Path, help="work folder to keep (the series is reused)")
    p.add_argument("--quick", action="store_true", help="256 x 256 x 120, one run")
    p.add_argument("--before", type=Path, help="src folder of another tree: its direct path too")
    a = p.parse_args()
    size, slices, runs = (256, 120, 1) if a.quick else (512, 300, a.runs)
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        run(a.keep, runs, size, slices, a.before)
    else:
        with tempfile.TemporaryDirectory(prefix="niftislice-dicom-bench-") as d:
            run(Path(d), runs, size, slices, a.before)


if __name__ == "__main__":
    main()
