"""Benchmark niftislice against the naive recipe it replaces, on inputs derived at run time.

    python benchmarks/run.py [--runs 3] [--quick] [--keep DIR] [--save] [--cases abc]

Prints a Markdown table (and with ``--save`` writes it to benchmarks/results.md). See
benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
from cases import BENCH_DIR, Case, all_cases
from floor import image_files
from inputs import ensure_inputs
from measure import run_child
from report import CaseResult, ContenderResult, FloorResult, render

log = logging.getLogger("benchmark")
FLOOR_SCRIPT = BENCH_DIR / "floor.py"
RESULTS_PATH = BENCH_DIR / "results.md"
LOG_TAIL_LINES = 20


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def image_sizes(out: Path) -> str:
    """Size (wxh) of the first image in each folder under ``out``, grouped by folder name."""
    first_per_folder: dict[Path, Path] = {}
    for path in image_files(out):
        first_per_folder.setdefault(path.parent, path)
    by_view: dict[str, set[str]] = {}
    for folder, first in first_per_folder.items():
        pixels = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
        if pixels is not None:
            by_view.setdefault(folder.name, set()).add(f"{pixels.shape[1]}x{pixels.shape[0]}")
    return "; ".join(f"{view} {', '.join(sorted(sizes))}" for view, sizes in by_view.items())


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-LOG_TAIL_LINES:])


def measure_contender(result: ContenderResult, argv: Sequence[str], out: Path, logs: Path) -> None:
    """One timed run of one command; adds to ``result`` or records its failure."""
    _fresh(out)
    os.sync()  # flush the previous run's writes so they are not charged to this one
    log.info("  %s", result.label)
    child = run_child(argv, logs)
    measured = child.measurement
    if measured.returncode != 0:
        lines = child.stderr.strip().splitlines() or [f"exit status {measured.returncode}"]
        result.failure = f"exit {measured.returncode}: {lines[-1]}"
        result.failure_log = _tail(child.stderr + child.stdout)
        log.warning("  %s failed: %s", result.label, result.failure)
        return
    images = len(image_files(out))
    if result.timings.runs and images != result.images:
        log.warning("  %s wrote %d images, %d before", result.label, images, result.images)
    result.timings.add(measured.wall_s, measured.cpu_s)
    result.peak_rss_mib = max(result.peak_rss_mib, measured.peak_rss_mib)
    result.tree_rss_mib = max(result.tree_rss_mib, measured.tree_rss_mib)
    result.images = images
    result.image_sizes = result.image_sizes or image_sizes(out)


def measure_floor(floor: FloorResult, inputs: Sequence[Path], images: Path, work: Path) -> None:
    out = _fresh(work / "floor")
    os.sync()
    log.info("  floor")
    argv = [sys.executable, str(FLOOR_SCRIPT), *map(str, inputs), "--images", str(images)]
    child = run_child([*argv, "--out", str(out)], work / "logs" / "floor")
    if child.measurement.returncode != 0:
        raise RuntimeError(f"floor failed:\n{_tail(child.stderr)}")
    floor.add(**json.loads(child.stdout))


def bench_case(case: Case, runs: int, work: Path) -> CaseResult:
    inputs = ensure_inputs(case.inputs, work / "inputs" / case.key)
    results = [ContenderResult(c.label) for c in case.contenders]
    floor = FloorResult()
    case_work = work / "runs" / case.key
    for run in range(runs):
        log.info("case %s, run %d/%d", case.key, run + 1, runs)
        # Interleave the commands, rotating who goes first, so drift in machine load is shared.
        shift = run % len(case.contenders)
        order = list(zip(case.contenders, results, strict=True))
        for contender, result in order[shift:] + order[:shift]:
            if result.failure is None:
                out = case_work / "out" / _slug(contender.label)
                logs = case_work / "logs" / f"{_slug(contender.label)}_{run}"
                measure_contender(result, contender.argv(inputs, out), out, logs)
        # The floor re-encodes what niftislice (first successful variant) just wrote.
        reference = next((c for c, r in order if not c.naive and r.ok), None)
        if reference is not None:
            measure_floor(floor, inputs, case_work / "out" / _slug(reference.label), case_work)
    return CaseResult(case, results, floor)


@contextmanager
def work_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="niftislice-bench-") as tmp:
        yield Path(tmp)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 run, small inputs: a smoke test")
    parser.add_argument("--keep", type=Path, help="work folder to keep (inputs are cached there)")
    parser.add_argument("--save", action="store_true", help=f"also write {RESULTS_PATH.name}")
    parser.add_argument("--cases", default="abc", help="which cases to run (default abc)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    return args


def ensure_bytecode() -> None:
    """Compile niftislice's modules once, as ``pip install .`` does at install time.

    An editable install (``pip install -e .``) under ``PYTHONDONTWRITEBYTECODE=1`` never writes
    ``.pyc`` files, so every command would recompile the package from source at start-up (about
    0.15 s a process on the development machine), a cost no installed copy pays.
    """
    spec = importlib.util.find_spec("niftislice")
    if spec is None or spec.origin is None:
        raise SystemExit("benchmark: niftislice is not installed in this Python (pip install -e .)")
    compileall.compile_dir(Path(spec.origin).parent, quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ensure_bytecode()
    cases = [c for c in all_cases(args.quick) if c.key in args.cases]
    start = time.perf_counter()
    with work_dir(args.keep) as work:
        results = [bench_case(case, args.runs, work) for case in cases]
    elapsed = f"whole benchmark took {time.perf_counter() - start:.0f} s"
    table = render(results, args.runs, args.quick, elapsed)
    print(table)
    if args.save:
        RESULTS_PATH.write_text(table)
    failed = any(r.failure is not None for result in results for r in result.contenders)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
