"""Reading NIfTI files: header checks first, then a streaming read of voxel data.

Header bytes are read by us (gzip recognised by its magic bytes, not the suffix), checked field by
field in :mod:`.validate`, and declared sizes are checked against limits and the file before
anything is allocated (for gzip: against the most the compressed size can hold). Fifos, devices
and directories are refused without being opened for reading. Voxel data is then read once,
sequentially, in its native dtype (no float64 copy); the stream is always read to its end, so the
gzip CRC and length are verified, before the last requested volume is handed out. The file's
sha256 is computed on the way.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._nib import nib
from ..buffers import allocate
from ..errors import InputError, ResourceLimitError
from ..types import Limits
from . import validate
from .digest import SourceDigests
from .stream import READ_BLOCK, Stream

log = logging.getLogger(__name__)

#: ``loader(indices)`` yields ``(t, array)`` for the selected volumes in order, as
#: :func:`iter_volumes` does (native-endian, voxel axes x, y, z, trailing channels for RGB).
VolumeLoader = Callable[[Sequence[int]], Iterator[tuple[int, np.ndarray]]]

MAX_EXTENSION_BYTES = 64 << 20  # extensions beyond this are not walked (never allocated)
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data by more than this


@dataclass(frozen=True)
class NiftiFile:
    """What the header says about a file, checked for sanity; voxel data is not read yet."""

    path: Path
    header: nib.Nifti1Header
    nifti_version: int
    compressed: bool
    file_size: int
    data_shape: tuple[int, ...]  # as declared, dims beyond the 3rd included
    spatial_shape: tuple[int, int, int]
    n_volumes: int  # product of dims 4..7 (1 for 3D)
    dtype: np.dtype  # on-disk dtype, with byte order
    rgb_channels: int  # 0 for scalar data, 3 or 4 for RGB(A)
    slope: float
    inter: float
    affine: np.ndarray
    affine_source: str  # "sform", "qform" or "pixdim"
    zooms: tuple[float, ...]
    vox_offset: int
    is_label: bool
    warnings: tuple[str, ...] = field(default=())
    #: ``"nifti"`` for files read here; other readers (see :mod:`.source`) name their format,
    #: record what the sidecar should say about the source in ``facts``, and supply ``loader``.
    format: str = "nifti"
    facts: dict[str, Any] = field(default_factory=dict)
    loader: VolumeLoader | None = None
    #: DICOM Modality ("CT", "MR", ...) when the source has one (a reader sets it, e.g.
    #: ``dataclasses.replace(array_source(...), modality="CT")``); it tells the automatic
    #: window a CT (a preset in HU) from anything else. NIfTI has none.
    modality: str | None = None
    #: attributes that identify the patient (DICOM PatientName, PatientID, ...): never written
    #: anywhere unless the user asks (``keep_phi``)
    identity: dict[str, str] = field(default_factory=dict, repr=False)
    #: the files another format's loader reads, hashed as it reads them (see :mod:`.digest`)
    digests: SourceDigests | None = field(default=None, repr=False, compare=False)

    @property
    def volume_bytes(self) -> int:
        return int(np.prod(self.spatial_shape)) * self.dtype.itemsize

    @property
    def is_scaled(self) -> bool:
        return not (self.slope == 1.0 and self.inter == 0.0)

    def volume_subindex(self, t: int) -> tuple[int, ...]:
        """The index along dims 4..7 (file order) of flat volume ``t``."""
        extra = self.data_shape[3:]
        return tuple(int(i) for i in np.unravel_index(t, extra, order="F")) if extra else ()


def read_header(path: str | os.PathLike[str], limits: Limits = Limits()) -> NiftiFile:
    """Parse and check a file's header (see :mod:`.validate`); reads at most the header and its
    extensions. Declared sizes are checked against ``limits`` and the file before anything is
    allocated."""
    p = Path(path)
    stream = Stream(p)
    try:
        block = stream.read(540)
        hdr, version = validate.parse_header(block)
        warnings: list[str] = []
        shape = validate.declared_shape(hdr)
        validate.check_intent(hdr)
        dtype, channels = validate.data_dtype(hdr, warnings)
        spatial = (int(shape[0]), int(shape[1]), int(shape[2]) if len(shape) > 2 else 1)
        n_vol = math.prod(shape[3:])
        check_limits(spatial, n_vol, limits)
        if any(d > 1 for d in shape[4:]):
            warnings.append(
                f"{len(shape)}D image: dimensions beyond the 4th are flattened "
                "into the volume index"
            )
        vox_offset = validate.vox_offset(hdr, version, warnings)
        _check_size(stream, vox_offset, math.prod(spatial) * n_vol * dtype.itemsize, warnings)
        first = validate.HEADER_SIZES[version]
        if vox_offset - first <= MAX_EXTENSION_BYTES:
            region = block[first:] + stream.read(max(0, vox_offset - len(block)))
            validate.check_extensions(
                region[:4], region[4 : vox_offset - first], hdr.endianness, warnings
            )
        slope, inter = validate.scaling(hdr, warnings)
        affine, affine_source, zooms = _geometry(hdr, len(shape), warnings)
        intent = int(hdr["intent_code"])
        return NiftiFile(
            path=p,
            header=hdr,
            nifti_version=version,
            compressed=stream.compressed,
            file_size=stream.file_size,
            data_shape=shape,
            spatial_shape=spatial,
            n_volumes=n_vol,
            dtype=dtype,
            rgb_channels=channels,
            slope=slope,
            inter=inter,
            affine=affine,
            affine_source=affine_source,
            zooms=zooms,
            vox_offset=vox_offset,
            is_label=intent in (1002, 1003),
            warnings=tuple(warnings),
        )
    finally:
        stream.close()


def check_limits(spatial: tuple[int, int, int], n_vol: int, limits: Limits) -> None:
    size = "x".join(map(str, spatial))
    n_vox = math.prod(spatial)  # Python ints: no wrap-around however large the dims
    if n_vox > limits.max_voxels:
        raise ResourceLimitError(
            f"declared size {size} is {n_vox:,} voxels per volume, "
            f"over the limit of {limits.max_voxels:,} (raise it with --max-voxels)"
        )
    if max(spatial) > limits.max_slices and not limits.allow_many_slices:
        raise ResourceLimitError(
            f"declared size {size} would give {max(spatial):,} slices "
            f"in one view, over {limits.max_slices:,} (pass --allow-many-slices to accept it)"
        )
    if n_vol > limits.max_voxels:
        raise ResourceLimitError(
            f"declared {n_vol:,} volumes, over the limit of {limits.max_voxels:,} (--max-voxels)"
        )


def _check_size(stream: Stream, vox_offset: int, data_bytes: int, warnings: list[str]) -> None:
    """The data the header declares must fit in the file (for gzip: in what the compressed size
    can possibly hold, since deflate expands at most ~1032:1)."""
    if stream.compressed:
        most = stream.file_size * _DEFLATE_MAX_RATIO + (1 << 16)
        if vox_offset + data_bytes > most:
            raise InputError(
                f"truncated voxel data: header declares {data_bytes:,} bytes, a gzip file of "
                f"{stream.file_size:,} bytes cannot hold more than {most:,}"
            )
        return
    if vox_offset > stream.file_size:
        raise InputError(
            f"vox_offset {vox_offset:,} is past the end of the file ({stream.file_size:,} bytes)"
        )
    held = stream.file_size - vox_offset
    if held < data_bytes:
        raise InputError(
            f"truncated voxel data: header declares {data_bytes:,} bytes, file holds {held:,}"
        )
    if held > data_bytes:
        warnings.append(f"{held - data_bytes:,} bytes after the voxel data; ignored")


def _geometry(
    hdr: nib.Nifti1Header, ndim: int, warnings: list[str]
) -> tuple[np.ndarray, str, tuple[float, float, float]]:
    """Affine (voxel -> world mm), its source (sform, qform or pixdim) and voxel sizes."""
    qform_code, sform_code = validate.xform_codes(hdr, warnings)
    sform = validate.sform_of(hdr) if sform_code > 0 else None
    sform_problem = validate.affine_problem(sform) if sform is not None else None
    good_sform = sform if sform is not None and sform_problem is None else None
    zooms = validate.voxel_sizes(hdr, ndim, good_sform, warnings)
    qform = validate.qform_of(hdr, zooms, warnings) if qform_code > 0 else None
    qform_problem = validate.affine_problem(qform) if qform is not None else None
    good_qform = qform if qform is not None and qform_problem is None else None
    for name, problem in (("sform", sform_problem), ("qform", qform_problem)):
        if problem:
            warnings.append(f"{name} {problem}; ignoring it")
    if good_sform is not None and good_qform is not None:
        diff = float(np.max(np.abs(good_sform - good_qform)))
        if diff > 1e-3:
            warnings.append(f"qform and sform disagree (by up to {diff:.3g} mm); using the sform")
    if good_sform is not None:
        return good_sform, "sform", zooms
    if good_qform is not None:
        return good_qform, "qform", zooms
    if sform is None and qform is None:
        warnings.append(
            "no orientation: qform_code and sform_code are 0; "
            "assuming RAS+ storage with pixdim voxel sizes"
        )
    return np.diag([*zooms, 1.0]), "pixdim", zooms


@dataclass
class ReadResult:
    """Filled in when a full read of the file finishes (the whole file was hashed)."""

    sha256: str | None = None
    #: for a source of several files: each one's ``{"path", "sha256"}`` (``sha256`` then
    #: combines them; see :mod:`.digest`)
    files: list[dict[str, str]] | None = None
    warnings: list[str] = field(default_factory=list)  # found only by reading (gzip files)


def iter_volumes(
    nf: NiftiFile,
    indices: Sequence[int] | None = None,
    result: ReadResult | None = None,
    on_values: Callable[[np.ndarray], object] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, array)`` for each selected volume, in file order, as native-endian arrays.

    Scalar data has shape ``spatial_shape`` (Fortran order, as stored); RGB data has a trailing
    channel axis of 3 or 4 uint8 values. The whole file is read, and checked (gzip CRC and
    length, truncation), before the last selected volume is yielded, so a caller that stops
    after it still never gets data from a damaged file.

    ``on_values``, for scalar data, is called with each selected volume's values piece by piece
    (flat, native-endian, read-only views) as soon as they are decompressed, so work such as
    statistics can overlap the rest of the read. The views stay valid and unchanged; the file
    has not been checked yet when they arrive.
    """
    if nf.loader is not None:
        yield from _iter_loaded(nf, indices, on_values, result)
        return
    wanted = set(range(nf.n_volumes) if indices is None else indices)
    stream = Stream(nf.path)
    try:
        skipped = stream.skip(nf.vox_offset)
        if skipped < nf.vox_offset:
            raise InputError(
                f"truncated file: it ends at byte {skipped}, before the voxel data "
                f"(vox_offset {nf.vox_offset})"
            )
        nbytes = nf.volume_bytes
        last = max(wanted, default=-1)
        held: tuple[int, np.ndarray] | None = None
        for t in range(nf.n_volumes):
            if t not in wanted:
                got = stream.skip(nbytes)
                if got < nbytes:
                    _truncated(nf, t, got)
                continue
            buf = _read_volume(stream, nf, t, on_values)
            if t == last:
                held = (t, buf)
            else:
                yield t, _as_volume(buf, nf)
        left = stream.drain()
        if left and nf.compressed:  # for plain files read_header already said so
            _note(result, f"{left:,} bytes after the voxel data; ignored")
        if result is not None:
            result.sha256 = stream.hasher.sha256.hexdigest()
    finally:
        stream.close()
    if held is not None:
        yield held[0], _as_volume(held[1], nf)


def _iter_loaded(
    nf: NiftiFile,
    indices: Sequence[int] | None,
    on_values: Callable[[np.ndarray], object] | None,
    result: ReadResult | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Volumes from another format's reader, with the same contract as a NIfTI file's: the
    last one is handed out once the reader is done and its files' digests are known."""
    assert nf.loader is not None
    wanted = sorted(set(range(nf.n_volumes) if indices is None else indices))
    held: tuple[int, np.ndarray] | None = None
    for t, arr in nf.loader(wanted):
        if on_values is not None and not nf.rgb_channels:
            values = arr.reshape(-1, order="A").view()
            values.flags.writeable = False
            on_values(values)
        if held is not None:
            yield held
        held = (t, arr)
    if result is not None and nf.digests is not None:
        result.sha256, result.files = nf.digests.summary()
    if held is not None:
        yield held


def _note(result: ReadResult | None, warning: str) -> None:
    if result is not None:
        result.warnings.append(warning)
    else:
        log.debug("%s", warning)


def _truncated(nf: NiftiFile, t: int, got: int) -> None:
    where = f" in volume {t}" if nf.n_volumes > 1 else ""
    raise InputError(
        f"truncated voxel data{where}: expected {nf.volume_bytes:,} bytes, found {got:,}"
    )


def _as_volume(buf: np.ndarray, nf: NiftiFile) -> np.ndarray:
    if nf.rgb_channels:
        c = nf.rgb_channels
        arr = buf.reshape((c, *nf.spatial_shape), order="F")
        return np.moveaxis(arr, 0, -1)
    return buf.view(nf.dtype.newbyteorder("=")).reshape(nf.spatial_shape, order="F")


def _read_volume(
    stream: Stream, nf: NiftiFile, t: int, on_values: Callable[[np.ndarray], object] | None
) -> np.ndarray:
    """One volume's bytes, read piece by piece; scalar values are made native-endian per piece
    (while still in cache) and handed to ``on_values``."""
    nbytes = nf.volume_bytes
    buf = allocate(nbytes)  # a large volume's pages can be given back once windowed
    view = memoryview(buf)
    scalar = not nf.rgb_channels
    for start in range(0, nbytes, READ_BLOCK):  # a multiple of every itemsize
        end = min(start + READ_BLOCK, nbytes)
        got = stream.readinto(view[start:end])
        if got < end - start:
            _truncated(nf, t, start + got)
        if scalar:
            values = buf[start:end].view(nf.dtype)
            if not nf.dtype.isnative:
                values = values.byteswap(inplace=True).view(nf.dtype.newbyteorder("="))
            if on_values is not None:
                values = values.view()
                values.flags.writeable = False
                on_values(values)
    return buf
