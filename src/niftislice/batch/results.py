"""What a batch reports: one result per input and a summary, also as a JSON report file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..export import ConvertResult
from ..files import replace_file


@dataclass
class BatchResult:
    """One :class:`ConvertResult` per job, in the order the jobs were given."""

    results: list[ConvertResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def images(self) -> int:
        return sum(r.images for r in self.results)

    @property
    def ok(self) -> bool:
        """Every input was converted or skipped (complete output kept)."""
        return all(r.status != "failed" for r in self.results)

    def summary(self) -> str:
        return (
            f"{self.count('converted')} converted, {self.count('skipped')} skipped, "
            f"{self.count('failed')} failed; {self.images} images in {self.seconds:.1f} s"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "summary": {
                "converted": self.count("converted"),
                "skipped": self.count("skipped"),
                "failed": self.count("failed"),
                "images": self.images,
                "seconds": round(self.seconds, 3),
            },
            "inputs": [r.to_json() for r in self.results],
        }


def write_report(result: BatchResult, path: str | os.PathLike[str]) -> None:
    """The JSON report: a summary and one record per input (status, output folder, error)."""
    text = json.dumps(result.to_json(), indent=1) + "\n"
    replace_file(Path(path), text.encode(), label="the report")
