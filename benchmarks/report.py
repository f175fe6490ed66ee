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
    """Wall and CPU seconds of the runs of one command on one case."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    def add(self, wall_s: float, cpu_s: float) -> None:
        self.wall_s.append(wall_s)
        self.cpu_s.append(cpu_s)

    @property
    def runs(self) -> int:
        return len(self.wall_s)

    @property
    def wall(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_s)

    def span(self) -> str:
        return f"{min(self.wall_s):.2f}-{max(self.wall_s):.2f}"

    def best(self) -> Timings:
        """The fastest run (wall and CPU separately): the estimate for a lower bound."""
        return Timings([min(self.wall_s)], [min(self.cpu_s)])


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
        return self.failure is None and self.timings.runs > 0


@dataclass
class FloorResult:
    timings: Timings = field(default_factory=Timings)
    load_s: list[float] = field(default_factory=list)
    write_s: list[float] = field(default_factory=list)
    write_ns_s: list[float] = field(default_factory=list)  # with niftislice's PNG writer
    images: int = 0

    def add(
        self, load_s: float, write_s: float, write_ns_s: float, cpu_s: float, images: int
    ) -> None:
        self.timings.add(load_s + write_s, cpu_s)
        self.load_s.append(load_s)
        self.write_s.append(write_s)
        self.write_ns_s.append(write_ns_s)
        self.images = images

    def two_cores(self, write: list[float]) -> float:
        """Load on one core, then writing spread over two: the best run of each phase."""
        return min(self.load_s) + min(write) / 2


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
            capture_output=True,
            text=True,
            check=True,
        )
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


def _ratio(numerator: Timings, denominator: Timings) -> str:
    """Wall-time ratio of the medians, CPU-time ratio in brackets."""
    return f"{numerator.wall / denominator.wall:.2f}x ({numerator.cpu / denominator.cpu:.2f}x)"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "case", "command", "median s", "min-max s", "CPU s", "images", "images/s",
    "peak RSS MiB", "Σ RSS MiB", "naive ÷ this", "this ÷ best floor",
)  # fmt: skip


def _timing_cells(t: Timings, images: int) -> list[object]:
    return [f"{t.wall:.2f}", t.span(), f"{t.cpu:.2f}", images, f"{images / t.wall:.0f}"]


def case_rows(result: CaseResult) -> list[str]:
    key, naive = result.case.key, result.result("naive")
    floor = result.floor if result.floor.timings.runs else None
    rows = []
    for r in result.contenders:
        if not r.ok:
            rows.append(_row([key, r.label, f"**failed**: {r.failure}", *[""] * 8]))
            continue
        rows.append(
            _row([
                key, r.label, *_timing_cells(r.timings, r.images),
                f"{r.peak_rss_mib:.0f}", f"{r.tree_rss_mib:.0f}",
                _ratio(naive.timings, r.timings) if naive else "-",
                _ratio(r.timings, floor.timings.best()) if floor else "-",
            ])
        )  # fmt: skip
    if floor:
        phases = (
            f"load {statistics.median(floor.load_s):.2f} + "
            f"write {statistics.median(floor.write_s):.2f}"
        )
        rows.append(
            _row([
                key, f"floor, 1 core ({phases})", *_timing_cells(floor.timings, floor.images),
                "", "", "", "",
            ])
        )  # fmt: skip
    return rows


def case_notes(result: CaseResult) -> list[str]:
    notes = [f"- **{result.case.title}**"]
    for r in result.contenders:
        if r.ok:
            notes.append(f"  - {r.label} image sizes (wxh): {r.image_sizes}")
    floor = result.floor if result.floor.timings.runs else None
    if floor:
        opencv, ours = floor.two_cores(floor.write_s), floor.two_cores(floor.write_ns_s)
        notes.append(
            f"  - floor spread over 2 cores (best load + best write / 2): {opencv:.2f} s with "
            f"OpenCV's PNG encoder, {ours:.2f} s with niftislice's PNG writer (write "
            f"{min(floor.write_ns_s):.2f} s on 1 core vs {min(floor.write_s):.2f} s)"
        )
        for r in result.contenders:
            if r.ok and r.label.startswith("niftislice"):
                notes.append(
                    f"    - {r.label} ÷ 2-core floor: {r.timings.wall / opencv:.2f}x "
                    f"(OpenCV), {r.timings.wall / ours:.2f}x (niftislice writer)"
                )
    one, two = result.result("niftislice -j 1"), result.result("niftislice -j 2")
    if one and two:
        speedup = one.timings.wall / two.timings.wall
        verdict = "meets" if speedup >= TARGET_PARALLEL_SPEEDUP else "misses"
        notes.append(
            f"  - `-j 2` vs `-j 1`: {speedup:.2f}x faster ({verdict} the "
            f"{TARGET_PARALLEL_SPEEDUP}x goal), using {two.timings.cpu / one.timings.cpu:.2f}x "
            "the CPU time"
        )
    for r in result.contenders:
        if r.failure is not None:
            notes.append(f"  - {r.label} failed; end of its output:\n\n```\n{r.failure_log}\n```")
    return notes


def render(results: Sequence[CaseResult], runs: int, quick: bool, elapsed: str) -> str:
    lines = ["# niftislice benchmark", ""]
    lines += machine_info()
    inputs = "quick (smoke-test) inputs" if quick else "full inputs"
    lines += [
        f"- {runs} run(s) per command, interleaved; {inputs}; {elapsed}",
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
