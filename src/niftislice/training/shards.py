"""WebDataset shards: plain POSIX tar files, written deterministically and atomically.

Every member has the same metadata (mode 0644, uid/gid 0, no user or group name, mtime 0), so a
shard's bytes depend only on its members' names and contents, in the order they are added. A
shard is written under a hidden temporary name and renamed when complete; a new shard starts
before a sample that would take the current one past its sample limit, or before any members
(a sample, or a case's sidecar) that would take its finished size (end-of-archive blocks and
padding to a whole record included) past its byte limit. A group of members is never split
across shards, so only a group larger than the byte limit makes a shard above it.

Names are ASCII (niftislice builds them from a safe character set). A name up to 100 bytes, or
one that splits at a ``/`` into a 155-byte prefix and a 100-byte name, gets a single ustar header;
longer names get a POSIX.1-2001 (pax) ``path`` record first, as Python's ``tarfile`` writes it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import OptionError, OutputError

log = logging.getLogger(__name__)

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default blocking factor; shards are padded to whole records
MEMBER_MODE = 0o644
MEMBER_MTIME = 0
TMP_PREFIX = ".niftislice-tmp-"

DEFAULT_MAX_BYTES = 10**9
DEFAULT_MAX_SAMPLES = 10_000
_SIZE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?i?b)$")
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


@dataclass(frozen=True)
class ShardSize:
    """When to start a new shard: before it would exceed ``max_bytes`` or ``max_samples``."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_samples: int = DEFAULT_MAX_SAMPLES

    @classmethod
    def parse(cls, value: ShardSize | str | int | None) -> ShardSize:
        """``"500MB"`` (bytes; KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024), ``"2000"``
        (samples), or both: ``"500MB,2000"``. A limit not given keeps its default."""
        if value is None:
            return cls()
        if isinstance(value, ShardSize):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        max_bytes, max_samples = DEFAULT_MAX_BYTES, DEFAULT_MAX_SAMPLES
        seen: set[str] = set()
        for part in str(value).split(","):
            t = part.strip().lower().replace(" ", "")
            m = _SIZE.match(t)
            if t.isdigit():
                kind, number = "samples", int(t)
            elif m:
                kind, number = "bytes", int(float(m.group(1)) * _UNITS[m.group(2)])
            else:
                raise OptionError(
                    "shard-size: expected a size such as 500MB or 1GiB, a number of samples "
                    f"such as 2000, or both (500MB,2000); got {value!r}"
                )
            if kind in seen:
                raise OptionError(f"shard-size: two {kind} limits in {value!r}")
            seen.add(kind)
            if kind == "samples":
                max_samples = number
            else:
                max_bytes = number
        if max_samples < 1:
            raise OptionError(f"shard-size: at least 1 sample per shard, got {value!r}")
        if max_bytes < RECORD:
            raise OptionError(
                f"shard-size: at least 10KiB per shard (the smallest tar file), got {value!r}"
            )
        return cls(max_bytes, max_samples)

    def __str__(self) -> str:
        return f"{self.max_bytes}B,{self.max_samples}"


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


_MODE_IDS = _octal(MEMBER_MODE, 8) + _octal(0, 8) + _octal(0, 8)  # mode, uid, gid
_MTIME = _octal(MEMBER_MTIME, 12)
# type "0" (regular file), no link name, ustar magic and version, no user/group names, and
# empty device numbers, as tarfile writes them for regular files
_TYPE_TO_DEVICES = b"0" + b"\0" * 100 + b"ustar\x0000" + b"\0" * 64 + b"\0" * 16
_FIXED_SUM = sum(_MODE_IDS) + sum(_MTIME) + sum(b" " * 8) + sum(_TYPE_TO_DEVICES)
_ZEROS = bytes(BLOCK)


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for a ustar header, or None when the name does not fit one."""
    if len(name) <= 100:
        return b"", name
    for i in range(len(name) - 1, 0, -1):
        if name[i] == 0x2F and i <= 155 and len(name) - i - 1 <= 100:  # '/'
            return name[:i], name[i + 1 :]
    return None


def member_header(name: str, size: int) -> bytes:
    """The header block(s) of a regular file member with the fixed metadata."""
    raw = name.encode("ascii", "strict")
    split = _split_name(raw)
    if split is None:  # too long for ustar: let tarfile write a pax 'path' record
        import tarfile  # only here and in iter_members: options imports this module

        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, MEMBER_MODE, MEMBER_MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "ascii", "strict")
    prefix, short = split
    size_field = _octal(size, 12)
    # the checksum is the sum of the header's bytes with blanks in its own field: the fixed
    # fields' part is computed once (headers are built for every member of every shard)
    checksum = _FIXED_SUM + sum(short) + sum(size_field) + sum(prefix)
    return b"".join(
        (
            short.ljust(100, b"\0"),
            _MODE_IDS,
            size_field,
            _MTIME,
            b"%06o\0 " % checksum,
            _TYPE_TO_DEVICES,
            prefix.ljust(155, b"\0"),
            b"\0" * 12,
        )
    )


def finished_size(nbytes: int) -> int:
    """A shard's size once closed, with ``nbytes`` of members: the two zero blocks that end a
    tar archive, then zeros to a whole record (as ``tarfile`` pads)."""
    end = nbytes + 2 * BLOCK
    return end + (-end % RECORD)


def shard_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:06d}.tar"


class ShardWriter:
    """Samples into ``folder/<prefix>-000000.tar``, ``-000001.tar``, ... (see module notes).

    Use as a context manager: an exception removes the shard being written (complete shards
    stay). :attr:`written` lists the complete shards in order.
    """

    def __init__(self, folder: Path, prefix: str, size: ShardSize = ShardSize()) -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.size = size
        self.written: list[Path] = []
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None
        self._bytes = 0
        self._samples = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def add(
        self, members: Iterable[tuple[str, bytes | memoryview]], *, sample: bool = True
    ) -> None:
        """One sample's members (or, with ``sample=False``, members that are not a sample and
        do not count against the sample limit, such as a case's sidecar), in the order given."""
        parts: list[bytes | memoryview] = []
        for name, data in members:
            size = len(data)
            parts += (member_header(name, size), data, _ZEROS[: -size % BLOCK])
        chunk = b"".join(parts)  # one write per sample: a 4D series has tens of thousands
        nbytes = len(chunk)
        if (
            self._file is not None
            and self._bytes  # a group larger than the limit gets a shard of its own
            and (
                (sample and self._samples + 1 > self.size.max_samples)
                or finished_size(self._bytes + nbytes) > self.size.max_bytes
            )
        ):
            self.close()
        f = self._file or self._open()
        try:
            f.write(chunk)
        except OSError as e:
            raise OutputError(f"cannot write shard {self._tmp}: {e.strerror or e}") from None
        self._bytes += nbytes
        self._samples += int(sample)

    def close(self) -> None:
        """Finish the current shard (end-of-archive blocks, padding to a record) and rename it."""
        if self._file is None or self._tmp is None:
            return
        end = finished_size(self._bytes) - self._bytes
        final = self.folder / shard_name(self.prefix, len(self.written))
        try:
            self._file.write(b"\0" * end)
            self._file.close()
            os.replace(self._tmp, final)
        except OSError as e:
            self.abort()
            raise OutputError(f"cannot write shard {final}: {e.strerror or e}") from None
        log.debug("wrote %s (%d samples, %d bytes)", final, self._samples, self._bytes + end)
        self.written.append(final)
        self._file, self._tmp = None, None

    def abort(self) -> None:
        """Drop the shard being written (complete shards stay)."""
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._file, self._tmp = None, None

    def _open(self) -> BinaryIO:
        name = shard_name(self.prefix, len(self.written))
        self._tmp = self.folder / f"{TMP_PREFIX}{name}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = open(self._tmp, "wb", buffering=1 << 20)  # noqa: SIM115
        except OSError as e:
            raise OutputError(f"cannot create shard {self._tmp}: {e.strerror or e}") from None
        self._bytes = self._samples = 0
        return self._file


def existing_shards(folder: Path, prefix: str) -> list[Path]:
    """Complete shards ``<prefix>-NNNNNN.tar`` in ``folder``, in number order."""
    pattern = re.compile(re.escape(prefix) + r"-(\d{6})\.tar")
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if pattern.fullmatch(p.name)]
    return sorted(found, key=lambda p: p.name)


@dataclass(frozen=True)
class MemberRef:
    """A member of an existing shard: where its data is."""

    shard: Path
    name: str
    offset: int  # of the data, in bytes from the start of the shard
    size: int


def iter_members(shards: Iterable[Path]) -> Iterator[MemberRef]:
    """Every member of ``shards`` in order; a shard that cannot be read ends the walk there."""
    import tarfile

    for shard in shards:
        try:
            with tarfile.open(shard, "r:") as tf:
                for m in tf:
                    if m.isfile():
                        yield MemberRef(shard, m.name, m.offset_data, m.size)
        except (OSError, tarfile.TarError) as e:
            log.warning("cannot read %s (%s); cases from there on are converted again", shard, e)
            return
