"""The Python API; the CLI is a thin layer over these functions.

Each verb takes its input first, then where the result goes, then one options object, as
``convert(inputs, out_dir, options)`` and ``stack(folder, out, options)``; how a run is carried
out (workers, existing output, a Dask scheduler) is given as keywords, not as options.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from .batch.discover import check_jobs, discover
from .batch.results import BatchResult
from .describe import info
from .options import ConvertOptions
from .pictures.preview import preview
from .sample import sample_path
from .stacking.stack import StackOptions, StackResult, stack_folder
from .training.run import run_convert
from .volume import Volume

PathLike = str | os.PathLike[str]


def convert(
    inputs: PathLike | list[PathLike],
    out_dir: PathLike,
    options: ConvertOptions | None = None,
    *,
    jobs: int | None = None,
    overwrite: bool | None = None,
    skip_existing: bool | None = None,
    scheduler: str | None = None,
) -> BatchResult:
    """Convert files and folders into ``out_dir``; one result per input, failures included.

    ``jobs``: worker processes (default: the CPUs this process may use); ``overwrite``: replace
    existing output; ``skip_existing``: keep complete output and resume the rest (existing
    output is otherwise refused as a whole, before anything is written); ``scheduler``: a Dask
    scheduler address to run on instead of local processes.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    run: dict[str, Any] = {"jobs": jobs, "overwrite": overwrite, "skip_existing": skip_existing}
    opts = dataclasses.replace(
        options or ConvertOptions(), **{k: v for k, v in run.items() if v is not None}
    )
    found = discover(items)
    check_jobs(found, items)
    return run_convert(found, out_dir, opts, scheduler=scheduler)


def load(path: PathLike, options: ConvertOptions | None = None, *, volume: int = 0) -> Volume:
    """One 3D volume, windowed once, whose :meth:`Volume.slices` yield display-ready arrays.

    ``volume`` picks a volume of a 4D series (negative counts from the end); an index out of
    range is refused (:class:`~niftislice.errors.OptionError`).
    """
    return Volume(path, options or ConvertOptions(), volume)


def stack(
    folder: PathLike,
    out: PathLike | None = None,
    options: StackOptions | None = None,
    *,
    sidecar: PathLike | None = None,
) -> StackResult:
    """Stack exported (or edited) images of one view back into a volume on the source grid.

    ``folder`` is a view folder (``OUT/scan/axial``) or the export folder; ``out``, when given,
    is where the NIfTI is written. The result carries the nibabel image (``.image``) and any
    warnings (such as missing slices, which are filled with ``options.fill``).
    """
    return stack_folder(folder, out, options or StackOptions(), sidecar=sidecar)


__all__ = ["convert", "info", "load", "preview", "sample_path", "stack"]
