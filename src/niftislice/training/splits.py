"""Deterministic train/val/test splits by subject, never by slice.

The subject of a scan is the BIDS ``sub-<label>`` in its path below the input folder (its file
name, or a folder such as ``sub-01/ses-2/anat``) when there is one, else its case name (the
file's stem without an nnU-Net channel suffix, so every channel of a case goes to the same
split); see :func:`niftislice.training.run.subject`. A subject's split follows from a hash of
``(seed, subject)`` alone: a number ``u`` in [0, 1) is compared with the cumulative fractions,
in the order given. So the split does not depend on the other subjects, on the order of the
inputs or on the machine, and adding subjects never moves existing ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath

from ..errors import OptionError
from .pairing import case_stem

#: BIDS subject entity: ``sub-<label>`` with an alphanumeric label, as a folder or file prefix.
BIDS_SUBJECT = re.compile(r"^sub-([A-Za-z0-9]+)(?:_|$)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SplitSpec:
    """Named fractions summing to 1, e.g. ``train=0.8,val=0.1,test=0.1``."""

    fractions: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, value: SplitSpec | str | Mapping[str, float]) -> SplitSpec:
        """Accept ``"train=0.8,val=0.2"`` or ``{"train": 0.8, "val": 0.2}``."""
        if isinstance(value, SplitSpec):
            return value
        if isinstance(value, Mapping):
            items = [(str(k), v) for k, v in value.items()]
        else:
            items = []
            for part in str(value).split(","):
                name, eq, frac = part.partition("=")
                if not eq:
                    raise OptionError(
                        f"split: expected NAME=FRACTION,... (e.g. train=0.8,val=0.1,test=0.1), "
                        f"got {value!r}"
                    )
                items.append((name.strip(), frac.strip()))
        return cls(tuple(_checked(items, value)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fractions)

    def assign(self, subject: str, seed: int = 0) -> str:
        """The split of ``subject``: depends only on the subject, the seed and the fractions."""
        u = subject_hash(subject, seed)
        total = 0.0
        for name, fraction in self.fractions:
            total += fraction
            if u < total:
                return name
        return self.fractions[-1][0]  # u just below 1 with fractions summing to 1 - 1e-12

    def to_json(self) -> dict[str, float]:
        return dict(self.fractions)

    def __str__(self) -> str:
        return ",".join(f"{name}={fraction:g}" for name, fraction in self.fractions)


def _checked(items: list[tuple[str, object]], value: object) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for name, frac in items:
        if not _NAME.match(name):
            raise OptionError(
                f"split: a split name must be letters, digits, '_', '+' or '-', got {name!r}"
            )
        if name in dict(out):
            raise OptionError(f"split: split {name!r} is named twice in {value!r}")
        try:
            f = float(frac)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise OptionError(f"split: fraction of {name!r} is not a number: {frac!r}") from None
        if not 0 < f <= 1:
            raise OptionError(f"split: fraction of {name!r} must be in (0, 1], got {frac!r}")
        out.append((name, f))
    if not out:
        raise OptionError(f"split: no splits in {value!r}")
    total = sum(f for _, f in out)
    if abs(total - 1) > _TOLERANCE:
        raise OptionError(f"split: fractions must sum to 1, got {total:g} in {value!r}")
    return out


def subject_hash(subject: str, seed: int = 0) -> float:
    """A number in [0, 1) from SHA-256 of ``"<seed>:<subject>"``: stable across machines and
    Python versions (unlike ``hash()``)."""
    import hashlib  # here: options imports this module for its parser

    digest = hashlib.sha256(f"{int(seed)}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def subject_of(path: str | PurePath) -> str:
    """``sub-<label>`` of the last path part that names a BIDS subject, else the case name."""
    parts = PurePath(path).parts
    for part in reversed(parts):
        m = BIDS_SUBJECT.match(part)
        if m:
            return f"sub-{m.group(1)}"
    return case_stem(parts[-1]) if parts else ""


def splits_json(spec: SplitSpec, seed: int, subjects: Iterable[tuple[str, str]]) -> str:
    """``splits.json``: the fractions, the seed and the sorted subjects of each split.

    ``subjects`` yields ``(subject, split)`` pairs (duplicates are fine)."""
    by_split: dict[str, set[str]] = {name: set() for name in spec.names}
    for subject, split in subjects:
        by_split[split].add(subject)
    doc = {
        "seed": int(seed),
        "fractions": spec.to_json(),
        "rule": "split = first NAME whose cumulative fraction exceeds "
        "int(sha256(f'{seed}:{subject}')[:8 bytes]) / 2**64; subject = BIDS sub-<label>, "
        "else the case name",
        "subjects": {name: sorted(s) for name, s in by_split.items()},
    }
    return json.dumps(doc, indent=1) + "\n"
