"""For the batch, Dask and memory tests: small input trees, output snapshots, peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

import niftislice
from niftislice.batch.discover import Job
from niftislice.batch.worker import run_one
from niftislice.export import ConvertResult
from niftislice.files import TMP_PREFIX
from niftislice.options import ConvertOptions

NOT_NIFTI = b"this is not a NIfTI file, only its name says so " * 20


def tiny_head() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template at 6 mm (33 x 39 x 32, int16): real anatomy, ~100 images a file."""
    img = nib.load(niftislice.sample_path())
    data = np.asanyarray(img.dataobj)[::6, ::6, ::6].astype(np.int16)
    aff = img.affine.copy()
    aff[:3, :3] *= 6
    return data, aff


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    nib.save(img, path)
    return path


def make_tree(root: Path) -> dict[str, str]:
    """A small study folder; returns {input path relative to root: expected output folder}.

    Holds nested subjects, an upper-case suffix, a stem collision (``a.nii`` beside
    ``a.nii.gz``), a 4D series, and things discovery must leave alone: a hidden file, a macOS
    ``._`` resource fork, a hidden folder and a text file.
    """
    data, aff = tiny_head()
    series = np.stack([data, data // 2, data[::-1]], axis=-1)  # 3 volumes
    expected = {
        "sub-01/anat/sub-01_T1w.nii.gz": "sub-01/anat/sub-01_T1w",
        "sub-02/anat/sub-02_T1w.NII.GZ": "sub-02/anat/sub-02_T1w",
        "sub-02/func/bold.nii.gz": "sub-02/func/bold",
        "pair/a.nii": "pair/a_nii",
        "pair/a.nii.gz": "pair/a_nii_gz",
        "top.Nii": "top",
    }
    for rel in expected:
        arr = series if "bold" in rel else (data[::-1] if rel.startswith("pair/a.nii.gz") else data)
        # nibabel picks gzip from a lower-case suffix only: write, then rename
        tmp_name = "_tmp.nii.gz" if rel.lower().endswith(".gz") else "_tmp.nii"
        tmp = write_nifti(root / tmp_name, arr, aff)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(root / rel)
    (root / "sub-02/anat/._sub-02_T1w.nii.gz").write_bytes(NOT_NIFTI)
    (root / "sub-02/anat/.scratch.nii").write_bytes(NOT_NIFTI)
    write_nifti(root / ".cache/cached.nii.gz", data, aff)
    (root / "notes.txt").write_text("not an image\n")
    return expected


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` (relative POSIX path -> bytes)."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in files}


def mtimes(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in sorted(out.rglob("*"))}


def sidecar_dirs(out: Path) -> set[str]:
    """Output folders that are complete (hold their sidecar)."""
    sidecars = [p for p in out.rglob("*.json") if p.stem == p.parent.name]
    return {p.parent.relative_to(out).as_posix() for p in sidecars}


# A small parent that starts the command and reads the child's peak RSS from wait4. A big parent
# (pytest) would inflate the child's ru_maxrss: Linux counts the pages a child shares before exec.
_RSS_PARENT = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = p.stderr.read()
_, status, usage = os.wait4(p.pid, 0)
sys.stderr.buffer.write(err)
print(usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))
"""


def peak_rss(*cmd: str | os.PathLike[str]) -> tuple[int, int, str]:
    """(peak RSS in bytes, exit status, stderr) of ``cmd`` run as a grandchild of a small parent."""
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PARENT, *map(str, cmd)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rss, rc = done.stdout.split()
    return int(rss), int(rc), done.stderr


def killed_for_kill_files(
    job: Job, out: Path, options: ConvertOptions, threads: int
) -> ConvertResult:
    """A pool task whose worker dies as the out-of-memory killer ends it, for files named kill*:
    half-way through, leaving its temporary folder behind."""
    if job.path.name.startswith("kill"):
        (out / f"{TMP_PREFIX}{job.stem}-k1ll3d_x").mkdir(parents=True)
        (out / f"{TMP_PREFIX}{job.stem}-k1ll3d_x" / "half.png").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    return run_one(job, out, options, threads)
