"""Converted cases into one split's shards, in sorted case order, as they finish.

A case's samples are keyed ``<case>/<view>/<index>`` (see :attr:`ImageRecord.key`), sorted by
key, each with ``KEY.json``, ``KEY.mask.png`` (when a mask was exported) and ``KEY.png``; the
case's sidecar, ``<case>/sidecar.json``, closes the case. Cases are appended in sorted order
whatever order workers finish in, so shards are byte-identical whatever ``-j``.

Resuming (``skip_existing``): the complete cases of existing shards (those whose sidecar member
is there) are copied from them instead of being converted again; cases of existing shards that
are no longer among the inputs are kept too. The shards are then written anew (each under a
temporary name, renamed when complete) and numbered shards left over beyond the new ones are
removed once everything is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..pictures.hooks import PAIR_TMP
from .metadata import ImageRecord, image_records
from .shards import MemberRef, ShardSize, ShardWriter, existing_shards, iter_members
from .spool import SpoolReader

log = logging.getLogger(__name__)

SIDECAR_MEMBER = "sidecar.json"

Members = list[tuple[str, bytes | memoryview]]


def sample_key(name: str) -> str:
    """WebDataset's key of a member: the name up to the first dot of its last part."""
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split('.', 1)[0]}" if head else last.split(".", 1)[0]


def spool_samples(
    spool: SpoolReader, case: str, stem: str, source: str, split: str | None
) -> Iterator[tuple[Members, bool]]:
    """``(members, is_sample)`` of one converted case, in shard order (the sidecar last)."""
    sidecar_bytes = spool.get(f"{stem}.json")
    sidecar = json.loads(bytes(sidecar_bytes))
    meta = MetaLines(source, split)
    samples: list[tuple[str, Members]] = []
    masks = any(rel.startswith(f"{PAIR_TMP}/") for rel in spool.index)
    for rec in image_records(sidecar):
        key = f"{case}/{rec.key}"
        ext = rec.file.rsplit(".", 1)[-1]
        members: Members = [
            (f"{key}.json", meta.line(rec)),
            (f"{key}.{ext}", spool.get(f"{rec.view}/{rec.file}")),
        ]
        mask = f"{PAIR_TMP}/{rec.view}/{rec.file}"
        if masks and mask in spool:
            members.append((f"{key}.mask.{ext}", spool.get(mask)))
        members.sort(key=_name)
        samples.append((key, members))
    samples.sort(key=lambda s: s[0])
    for _, members in samples:
        yield members, True
    yield [(f"{case}/{SIDECAR_MEMBER}", sidecar_bytes)], False


def _name(member: tuple[str, bytes | memoryview]) -> str:
    return member[0]


class MetaLines:
    """``KEY.json`` of each image: :func:`dumps_line` of :func:`image_fields`, built from text
    parts, the matrices encoded once per slice (a 4D series shares them across volumes)."""

    def __init__(self, source: str, split: str | None) -> None:
        self.head = '{"source":' + json.dumps(source) + ',"view":'
        self.split = "" if split is None else ',"split":' + json.dumps(split)
        self._matrices: dict[int, str] = {}
        self._spacings: dict[tuple[float, float], str] = {}
        self._views: dict[str, str] = {}

    def _matrix(self, value: list[list[float]]) -> str:
        key = id(value)  # the sidecar's lists, alive while its records are packed
        text = self._matrices.get(key)
        if text is None:
            text = self._matrices[key] = json.dumps(value, separators=(",", ":"))
        return text

    def _spacing(self, value: tuple[float, float]) -> str:
        text = self._spacings.get(value)
        if text is None:
            text = self._spacings[value] = json.dumps(list(value), separators=(",", ":"))
        return text

    def line(self, rec: ImageRecord) -> bytes:
        volume = "" if rec.volume is None else f',"volume":{rec.volume}'
        view = self._views.get(rec.view)
        if view is None:
            view = self._views[rec.view] = json.dumps(rec.view)
        return (
            f'{self.head}{view},"index":{rec.index}{volume}{self.split},'
            f'"spacing_mm":{self._spacing(rec.spacing_mm)},'
            f'"pixel_to_world":{self._matrix(rec.pixel_to_world)}}}'
        ).encode()


def old_cases(shards: list[Path]) -> dict[str, list[MemberRef]]:
    """The complete cases of existing shards: members up to and including each sidecar."""
    cases: dict[str, list[MemberRef]] = {}
    pending: list[MemberRef] = []
    for m in iter_members(shards):
        pending.append(m)
        head, _, last = m.name.rpartition("/")
        if last == SIDECAR_MEMBER and head:
            cases.setdefault(head, pending)
            pending = []
    return cases


@dataclass
class _Arrived:
    spool_dir: Path | None  # None: failed, or copied from the old shards
    stem: str = ""
    source: str = ""


class SplitPacker:
    """Appends the cases of one split (``folder``, shards ``<prefix>-NNNNNN.tar``)."""

    def __init__(
        self,
        folder: Path,
        prefix: str,
        size: ShardSize,
        split: str | None,
        cases: list[str],
        *,
        resume: bool,
    ) -> None:
        self.folder = folder
        self.prefix = prefix
        self.split = split
        self.previous = existing_shards(folder, prefix)
        self.old = old_cases(self.previous) if resume else {}
        # open now: a new shard may be renamed over an old one we still read from
        self._old_files = {p: open(p, "rb") for p in self.previous} if self.old else {}  # noqa: SIM115
        self.order = sorted(set(cases) | set(self.old))
        self._arrived: dict[str, _Arrived] = {c: _Arrived(None) for c in self.old}
        self._next = 0
        self.writer = ShardWriter(folder, prefix, size)
        self.samples = 0

    def kept(self, case: str) -> bool:
        """Whether ``case`` is complete in the existing shards (and is copied from there)."""
        return case in self.old

    def done(self, case: str, spool_dir: Path | None, stem: str = "", source: str = "") -> None:
        """``case`` finished: converted into ``spool_dir``, or failed (``None``)."""
        self._arrived[case] = _Arrived(spool_dir, stem, source)
        self._flush()

    def finish(self) -> list[Path]:
        """Write what is left, close the last shard, drop shards left from before."""
        for case in self.order[self._next :]:
            self._arrived.setdefault(case, _Arrived(None))
        self._flush()
        self.writer.close()
        for f in self._old_files.values():
            f.close()
        written = {p.name for p in self.writer.written}
        for p in self.previous:
            if p.name not in written:
                p.unlink(missing_ok=True)
        return self.writer.written

    def abort(self) -> None:
        self.writer.abort()
        for f in self._old_files.values():
            f.close()

    def _flush(self) -> None:
        while self._next < len(self.order) and self.order[self._next] in self._arrived:
            case = self.order[self._next]
            a = self._arrived.pop(case)
            if case in self.old:
                self._copy_old(self.old.pop(case))
            elif a.spool_dir is not None:
                self._append_spool(case, a)
            self._next += 1

    def _append_spool(self, case: str, a: _Arrived) -> None:
        assert a.spool_dir is not None
        spool = SpoolReader(a.spool_dir)
        try:
            for members, is_sample in spool_samples(spool, case, a.stem, a.source, self.split):
                self.writer.add(members, sample=is_sample)
                self.samples += is_sample
        finally:
            spool.close()
        shutil.rmtree(a.spool_dir, ignore_errors=True)

    def _copy_old(self, refs: list[MemberRef]) -> None:
        read: Callable[[MemberRef], bytes] = lambda m: os.pread(  # noqa: E731
            self._old_files[m.shard].fileno(), m.size, m.offset
        )
        group: Members = []
        key = None
        for m in refs:
            k = sample_key(m.name)
            if group and k != key:
                self._add_old(group)
                group = []
            key = k
            group.append((m.name, read(m)))
        if group:
            self._add_old(group)

    def _add_old(self, group: Members) -> None:
        is_sample = not group[0][0].endswith("/" + SIDECAR_MEMBER)
        self.writer.add(group, sample=is_sample)
        self.samples += is_sample


def shard_prefix(split: str | None) -> str:
    """``train`` for ``OUT/train/train-000000.tar``; ``shard`` without splits."""
    return split or "shard"


def check_no_shards(folder: Path, split: str | None) -> Path | None:
    """The first existing shard of this split, if any."""
    found = existing_shards(folder, shard_prefix(split))
    return found[0] if found else None
