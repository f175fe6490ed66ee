"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from pathlib import Path

from .batch.discover import check_jobs, discover
from .batch.results import BatchResult
from .batch.run import run_batch
from .describe import info
from .options import ConvertOptions
from .stacking.stack import stack
from .volume import Volume

SAMPLE_NAME = "mni152_t1_1mm.nii.gz"


def sample_path() -> Path:
    """The built-in sample: the MNI152 2009a T1 template (1 mm, 197 x 233 x 189)."""
    from importlib.resources import as_file, files  # 30-50 ms to import; only needed here

    with as_file(files("niftislice") / "data" / SAMPLE_NAME) as p:
        return Path(p)


def convert(
    inputs: str | os.PathLike[str] | list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    scheduler: str | None = None,
) -> BatchResult:
    """Convert files and folders into ``out_dir``; one result per input, failures included."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    jobs = discover(items)
    check_jobs(jobs)
    return run_batch(jobs, out_dir, options or ConvertOptions(), scheduler=scheduler)


def load(
    path: str | os.PathLike[str], options: ConvertOptions | None = None, *, volume: int = 0
) -> Volume:
    """One 3D volume, windowed once, whose :meth:`Volume.slices` yield display-ready arrays."""
    return Volume(path, options or ConvertOptions(), volume)


__all__ = ["convert", "info", "load", "sample_path", "stack"]
