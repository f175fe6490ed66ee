"""Summaries of measured runs and their Markdown rendering."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cases import BENCH_DIR, Case

TARGET_PARALLEL_SPEEDUP = 1.7


@dataclass
class Timings:
    """Wall times (s) of the runs of one command on one case."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def span(self) -> str:
        return f"{min(self.seconds):.2f}–{max(self.seconds):.2f}"


@dataclass
class ContenderResult:
    label: str
    timings: Timings = field(default_factory=Timings)
    peak_rss_mib: float = 0.0
    tree_rss_mib: float = 0.0
    images: int = 0
    image_sizes: str = ""
    failure: str | None = None
    failure_log: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None and bool(self.timings.seconds)


@dataclass
class FloorResult:
    load_s: list[float] = field(default_factory=list)
    write_s: list[float] = field(default_factory=list)
    images: int = 0

    @property
    def timings(self) -> Timings:
        return Timings([a + b for a, b in zip(self.load_s, self.write_s, strict=True)])


@dataclass
class CaseResult:
    case: Case
    contenders: list[ContenderResult]
    floor: FloorResult

    def result(self, label: str) -> ContenderResult | None:
        return next((r for r in self.contenders if r.label == label and r.ok), None)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip()


def machine_info() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    packages = ", ".join(
        f"{name} {_package_version(dist)}"
        for name, dist in (
            ("niftislice", "niftislice"),
            ("numpy", "numpy"),
            ("OpenCV", "opencv-python-headless"),
            ("nibabel", "nibabel"),
            ("scipy", "scipy"),
        )
    )
    return [
        f"- Machine: {os.cpu_count()} cores ({usable} usable), {_cpu_model()}, "
        f"{platform.system()} {platform.release()}, load average at start {load}",
        f"- Python {platform.python_version()}; {packages}; repository at {_git_revision()}",
    ]


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}×" if denominator > 0 else "—"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "case", "command", "median s", "min–max s", "images", "images/s",
    "peak RSS MiB", "Σ RSS MiB", "naive ÷ this", "this ÷ floor",
)  # fmt: skip


def case_rows(result: CaseResult) -> list[str]:
    naive = result.result("naive")
    floor = result.floor.timings if result.floor.load_s else None
    rows = []
    for r in result.contenders:
        if not r.ok:
            rows.append(_row([result.case.key, r.label, f"**failed**: {r.failure}", *[""] * 7]))
            continue
        median = r.timings.median
        rows.append(
            _row([
                result.case.key, r.label, f"{median:.2f}", r.timings.span(), r.images,
                f"{r.images / median:.0f}", f"{r.peak_rss_mib:.0f}", f"{r.tree_rss_mib:.0f}",
                _ratio(naive.timings.median, median) if naive else "—",
                _ratio(median, floor.median) if floor else "—",
            ])  # fmt: skip
        )
    if floor:
        f = result.floor
        rows.append(
            _row([
                result.case.key,
                f"floor, 1 core (load {statistics.median(f.load_s):.2f} + "
                f"write {statistics.median(f.write_s):.2f})",
                f"{floor.median:.2f}", floor.span(), f.images, f"{f.images / floor.median:.0f}",
                "", "", "", "1.00×",
            ])  # fmt: skip
        )
    return rows


def case_notes(result: CaseResult) -> list[str]:
    notes = [f"- **{result.case.title}**"]
    for r in result.contenders:
        if r.ok:
            notes.append(f"  - {r.label} image sizes (w×h): {r.image_sizes}")
    one, two = result.result("niftislice -j 1"), result.result("niftislice -j 2")
    if one and two:
        speedup = one.timings.median / two.timings.median
        verdict = "meets" if speedup >= TARGET_PARALLEL_SPEEDUP else "misses"
        notes.append(
            f"  - `-j 2` vs `-j 1`: {speedup:.2f}× ({verdict} the {TARGET_PARALLEL_SPEEDUP}× goal)"
        )
    for r in result.contenders:
        if r.failure is not None:
            notes.append(f"  - {r.label} failed; end of its output:\n\n```\n{r.failure_log}\n```")
    return notes


def render(results: Sequence[CaseResult], runs: int, quick: bool, elapsed: str) -> str:
    lines = ["# niftislice benchmark", ""]
    lines += machine_info()
    lines += [
        f"- {runs} run(s) per command, interleaved; {'quick (smoke-test) inputs' if quick else 'full inputs'}; "
        f"{elapsed}",
        "",
        _row(HEADER),
        _row(["---"] * len(HEADER)),
    ]
    for result in results:
        lines += case_rows(result)
    lines += [""]
    for result in results:
        lines += case_notes(result)
    return "\n".join(lines) + "\n"
