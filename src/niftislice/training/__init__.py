"""Training sets: masks paired by name, subject-level splits, WebDataset shards, a dataset.

- :mod:`.pairing`: a scan's label map in a masks folder (same stem, or without ``_NNNN``);
- :mod:`.splits`: deterministic splits by subject (BIDS ``sub-<label>``, else the case);
- :mod:`.shards`, :mod:`.spool`, :mod:`.pack`: POSIX tar shards, written deterministically;
- :mod:`.metadata`: per-image records (``KEY.json``, ``metadata.jsonl``);
- :mod:`.dataset`: :class:`SliceDataset`, the exported images without files.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SliceDataset"]


def __getattr__(name: str) -> Any:
    # lazily: options imports the pure parsers of this package, and the dataset imports options
    if name == "SliceDataset":
        from .dataset import SliceDataset

        return SliceDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
