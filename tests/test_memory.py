"""Peak memory: a 4D series is kept whole only up to ``HOLD_BYTES``, else converted one 3D volume
at a time; a large volume is given back as it is windowed.

Measured the way a user's machine feels it: the peak resident set size of a real
``python -m niftislice convert`` process, read from ``wait4`` in a small parent.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _batch_helpers import peak_rss

from niftislice.export import HOLD_BYTES

MiB = 1 << 20
SHAPE = (64, 64, 36)  # one volume: 576 KiB as float32; 120 volumes: 68 MiB, 135 MiB as float64


def _convert_peak(src: Path, out: Path, *options: str) -> tuple[int, int, str]:
    """Peak RSS (bytes), exit status and stderr of ``niftislice convert SRC -o OUT OPTIONS``."""
    return peak_rss(sys.executable, "-m", "niftislice", "convert", src, "-o", out, *options)


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


@pytest.mark.slow
def test_peak_memory_is_bounded_whatever_the_length_of_the_series(tmp_path):
    """A series whose volumes fit ``HOLD_BYTES`` is read once and kept from its statistics to its
    images; a longer one is converted one volume at a time (and read twice), so the peak never
    grows with the series beyond ``HOLD_BYTES``: the longer series takes less memory."""
    volume_bytes = int(np.prod(SHAPE)) * 4
    baseline, rc, err = peak_rss(sys.executable, "-c", "import niftislice.export")
    assert rc == 0, err
    peaks = {}
    for n in (120, 240):  # 68 MiB of volumes, kept; 135 MiB, over HOLD_BYTES (128 MiB)
        assert (n * volume_bytes <= HOLD_BYTES) == (n == 120)
        src = write_series(tmp_path / f"bold{n}.nii.gz", n)
        # every volume is read, windowed and cut into all three views; one slice per view is
        # written, so the run stays short while the sidecar still lists every volume's files
        peak, rc, err = _convert_peak(src, tmp_path / "out", "--slices", "middle", "-j", "2")
        assert rc == 0, err
        assert len(list((tmp_path / "out" / f"bold{n}" / "axial").iterdir())) == n
        peaks[n] = peak
    mib = {n: p / MiB for n, p in peaks.items()}
    assert peaks[120] < baseline + 120 * volume_bytes + 150 * MiB, (baseline / MiB, mib)
    assert peaks[240] < baseline + volume_bytes + 150 * MiB, (baseline / MiB, mib)
    # the 240-volume series held whole would be 135 MiB (float32; 270 MiB as float64)
    assert peaks[240] < peaks[120] - 30 * MiB, mib


@pytest.mark.slow
def test_large_volume_peak_is_about_one_volume(tmp_path):
    """A 48 MiB uint8 volume (the case where windowed pixels are as large as the raw data): the
    raw pages are given back as they are windowed and views are cut in slabs, so the peak is
    the volume plus a bounded working set, not the volume, its pixels and two whole view blocks
    (about 4 volumes) as a straightforward pipeline would hold."""
    shape = (416, 416, 288)
    volume_bytes = int(np.prod(shape))
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in shape), indexing="ij")
    data = (np.clip(1 - (x**2 + y**2 + z**2), 0, 1) * 250).astype(np.uint8)
    del x, y, z
    src = tmp_path / "big.nii"  # uncompressed: quick to write and to read
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 0.7, 1.0])), src)
    del data
    baseline, rc, err = peak_rss(sys.executable, "-c", "import niftislice.export")
    assert rc == 0, err
    # --spacing 4 keeps the images small (quick to encode); slabs are cut at the native size
    peak, rc, err = _convert_peak(src, tmp_path / "out", "--spacing", "4", "-j", "2")
    assert rc == 0, err
    assert (tmp_path / "out" / "big" / "big.json").is_file()
    extra = (peak - baseline - volume_bytes) / MiB
    why = f"peak {peak / MiB:.0f} MiB = baseline {baseline / MiB:.0f} + volume 48 + {extra:.0f}"
    assert extra < 75, why
