"""Masks paired with scans by name: the label map of the same case in a masks folder.

A scan ``FOLDER/<rel>/<name>`` pairs with the mask whose stem is the scan's stem, or the scan's
stem without a trailing ``_NNNN`` channel suffix (nnU-Net's ``imagesTr/case_0000.nii.gz`` with
``labelsTr/case.nii.gz``). The mirrored relative path ``MASKS/<rel>/`` is searched first, then
the whole masks folder; a stem found in several places outside the mirrored folder is ambiguous
and pairs with nothing (the caller reports it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError
from ..walk import walk

#: nnU-Net's channel suffix: ``case_0000`` is channel 0 of case ``case``.
CHANNEL_SUFFIX = re.compile(r"_\d{4}$")
_SUFFIXES = (".nii.gz", ".nii")


def volume_stem(name: str) -> str:
    """``case_0000.nii.gz`` -> ``case_0000``; the name itself when it has no NIfTI suffix."""
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def case_stem(name: str) -> str:
    """The case a file belongs to: its stem without an nnU-Net channel suffix (``_0000``)."""
    return CHANNEL_SUFFIX.sub("", volume_stem(name))


def candidate_stems(name: str) -> list[str]:
    """Mask stems to look for, best first: the scan's stem, then without its channel suffix."""
    stem = volume_stem(name)
    case = CHANNEL_SUFFIX.sub("", stem)
    return [stem] if case == stem or not case else [stem, case]


@dataclass(frozen=True)
class MaskMatch:
    """The outcome of pairing one scan: ``path`` is None when nothing (or too much) matched."""

    path: Path | None
    reason: str = ""  # why there is no mask: what was looked for


class MaskIndex:
    """All NIfTI files under a masks folder, by stem (case-sensitive), built once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise OptionError(f"masks: no such folder {str(root)!r}")
        self._by_stem: dict[str, list[Path]] = {}
        for folder in walk(self.root):  # symlinked folders followed, each real one once
            for name in folder.files:
                if name.lower().endswith(_SUFFIXES):
                    self._by_stem.setdefault(volume_stem(name), []).append(folder.path / name)

    def __len__(self) -> int:
        return sum(map(len, self._by_stem.values()))

    def find(self, scan: str | os.PathLike[str], rel_dir: Path = Path()) -> MaskMatch:
        """The mask of ``scan``, whose folder is ``rel_dir`` below the input folder it came from.

        For each candidate stem (see :func:`candidate_stems`), the mirrored folder
        ``root/rel_dir`` wins; otherwise a single match anywhere under ``root``.
        """
        name = Path(scan).name
        stems = candidate_stems(name)
        mirrored = (self.root / rel_dir).resolve()
        for stem in stems:
            for p in self._by_stem.get(stem, []):
                if p.parent.resolve() == mirrored:
                    return MaskMatch(p)
        for stem in stems:
            found = self._by_stem.get(stem, [])
            if len(found) == 1:
                return MaskMatch(found[0])
            if len(found) > 1:
                where = ", ".join(str(p.relative_to(self.root)) for p in found[:3])
                return MaskMatch(
                    None,
                    f"several masks named {stem} in {self.root} ({where}) and none in {rel_dir}",
                )
        wanted = " or ".join(f"{s}.nii[.gz]" for s in stems)
        return MaskMatch(None, f"no mask {wanted} in {self.root}")
