"""Per-image metadata for training sets, read back from a conversion's sidecar.

The sidecar already lists every exported image with its view, slice index, volume and
``pixel_to_world``; this module turns it into one record per image, used for a shard's
``KEY.json`` members and for ``metadata.jsonl`` (Hugging Face ``imagefolder``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..files import make_dirs, replace_file
from ..naming import sample_name

METADATA_NAME = "metadata.jsonl"


class ImageRecord(NamedTuple):
    """One exported image of a case, as its sidecar describes it (a named tuple, not a frozen
    dataclass: a 4D series has tens of thousands, and building them took a sixth of packing
    its shards)."""

    view: str
    index: int  # slice index along the view's RAS+ axis (as in the file name)
    volume: int | None  # source volume for 4D, None for 3D
    file: str  # file name in the view's folder
    spacing_mm: tuple[float, float]  # (column, row) mm per pixel
    pixel_to_world: list[list[float]]  # 4x4: (column, row, 0, 1) -> world mm

    @property
    def key(self) -> str:
        """The sample key below the case: ``axial/0042`` (3D), ``axial/t0003_0042`` (4D); see
        :func:`~niftislice.naming.sample_name`."""
        return f"{self.view}/{sample_name(self.file, self.volume).split('.', 1)[0]}"


def image_records(sidecar: dict[str, Any]) -> Iterator[ImageRecord]:
    """Every image the sidecar lists, view by view, slice by slice, volume by volume."""
    for view, v in sidecar["views"].items():
        spacing = (float(v["pixel_spacing_mm"][0]), float(v["pixel_spacing_mm"][1]))
        for entry in v["slices"]:
            if "files" in entry:
                for t, name in entry["files"].items():
                    yield ImageRecord(
                        view, entry["index"], int(t), name, spacing, entry["pixel_to_world"]
                    )
            else:
                yield ImageRecord(
                    view, entry["index"], None, entry["file"], spacing, entry["pixel_to_world"]
                )


def image_fields(
    record: ImageRecord, source: str, split: str | None, *, volume_always: bool = False
) -> dict[str, Any]:
    """The fields shared by ``KEY.json`` and ``metadata.jsonl``: ``source``, ``view``,
    ``index``, ``volume`` (4D; always with ``volume_always``, 0 for 3D), ``split`` (when
    splitting), ``spacing_mm`` and ``pixel_to_world``."""
    out: dict[str, Any] = {"source": source, "view": record.view, "index": record.index}
    if record.volume is not None or volume_always:
        out["volume"] = record.volume or 0
    if split is not None:
        out["split"] = split
    out["spacing_mm"] = list(record.spacing_mm)
    out["pixel_to_world"] = record.pixel_to_world
    return out


def dumps_line(fields: dict[str, Any]) -> str:
    """One compact JSON line (keys in the order given, so output is deterministic)."""
    return json.dumps(fields, separators=(",", ":"))


@dataclass(frozen=True)
class CaseFiles:
    """Where one converted case of the ``files`` layout is, relative to its split folder."""

    source: str  # the input as given
    image_dir: str  # e.g. "images/sub-01/anat/sub-01_T1w" (holds the sidecar)
    mask_dir: str | None  # e.g. "masks/sub-01/anat/sub-01_T1w", when a mask was exported


def metadata_lines(
    folder: Path, cases: Iterable[CaseFiles], split: str | None
) -> list[dict[str, Any]]:
    """One record per image of ``cases`` under ``folder``: ``file_name`` (and
    ``mask_file_name``) relative to ``folder``, plus :func:`image_fields`; sorted by file name."""
    rows: list[dict[str, Any]] = []
    for case in cases:
        stem = Path(case.image_dir).name
        sidecar_path = folder / case.image_dir / f"{stem}.json"
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, ValueError):
            continue  # not converted (failed): nothing to list
        for rec in image_records(sidecar):
            row: dict[str, Any] = {"file_name": f"{case.image_dir}/{rec.view}/{rec.file}"}
            if case.mask_dir is not None:
                row["mask_file_name"] = f"{case.mask_dir}/{rec.view}/{rec.file}"
            row.update(image_fields(rec, case.source, split, volume_always=True))
            rows.append(row)
    rows.sort(key=lambda r: r["file_name"])
    return rows


def write_metadata(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """``folder/metadata.jsonl``, written under a temporary name and renamed."""
    path = folder / METADATA_NAME
    make_dirs(folder)
    replace_file(path, "".join(dumps_line(r) + "\n" for r in rows).encode())
    return path
