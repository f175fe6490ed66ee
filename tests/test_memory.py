"""Peak memory: a 4D series is converted one 3D volume at a time, never loaded whole.

Measured the way a user's machine feels it: the peak resident set size of a real
``python -m niftislice convert`` process, read from ``wait4`` in a small parent.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from _batch_helpers import peak_rss

MiB = 1 << 20
SHAPE = (64, 64, 36)  # one volume: 576 KiB as float32; 120 volumes: 68 MiB, 135 MiB as float64


def write_series(path: Path, n_volumes: int) -> Path:
    """A float32 fMRI-like series: a head-shaped blob on a zero background that brightens over
    time, plus integer noise (zeros and whole numbers keep gzip quick; still float32 on disk)."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in SHAPE), indexing="ij")
    r2 = x**2 + y**2 + z**2
    blob = np.exp(-3 * r2).astype(np.float32) * 1000
    noise = np.random.default_rng(0).integers(-20, 20, SHAPE).astype(np.float32)
    data = np.empty((*SHAPE, n_volumes), dtype=np.float32)
    for t in range(n_volumes):
        vol = np.round(blob * (1 + 0.002 * t)) + np.roll(noise, t, axis=0)
        data[..., t] = np.where(r2 < 0.8, vol, 0)
    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.5, 1.0]))
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=1))
    return path


def test_peak_memory_is_one_volume_and_does_not_grow_with_the_series(tmp_path):
    volume_bytes = int(np.prod(SHAPE)) * 4
    baseline, rc, err = peak_rss(sys.executable, "-c", "import niftislice")
    assert rc == 0, err
    peaks = {}
    for n in (30, 120):
        src = write_series(tmp_path / f"bold{n}.nii.gz", n)
        # every volume is read, windowed and cut into all three views; one slice per view is
        # written, so the run stays short while the sidecar still lists every volume's files
        peak, rc, err = peak_rss(sys.executable, "-m", "niftislice", "convert", src,
                                 "-o", tmp_path / "out", "--slices", "middle", "-j", "2")
        assert rc == 0, err
        assert len(list((tmp_path / "out" / f"bold{n}" / "axial").iterdir())) == n
        peaks[n] = peak
    assert peaks[120] < baseline + volume_bytes + 150 * MiB, (baseline / MiB, peaks[120] / MiB)
    # the whole series would be 51 MiB more at 120 volumes than at 30 (float32; 101 MiB as float64)
    assert abs(peaks[120] - peaks[30]) < 30 * MiB, {n: p / MiB for n, p in peaks.items()}
