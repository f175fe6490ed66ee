"""The built-in sample volume (no heavy imports: the command line resolves it first)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "mni152_t1_1mm.nii.gz"


def sample_path() -> Path:
    """The built-in sample: the MNI152 2009a T1 template (1 mm, 197 x 233 x 189)."""
    from importlib.resources import as_file, files  # 30-50 ms to import; only needed here

    with as_file(files("niftislice") / "data" / SAMPLE_NAME) as p:
        return Path(p)
