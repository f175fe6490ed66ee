"""Training sets: ``--layout files`` against ``--layout webdataset``, and ``SliceDataset``.

    python benchmarks/training.py [--runs 3] [--quick] [--keep DIR] [--save] [--cases bc]
                                  [--reading-only] [--baseline OTHER/src]

On the inputs of cases (b), the batch of 8 heads, and (c), the 4D series of small images
(``cases.py``, derived as ``run.py`` derives them and cached alike with ``--keep``):

- both layouts in the same run, interleaved and rotated as ``run.py`` does, each command in its
  own process through ``measure.py``'s launcher: median wall and CPU time, images, and the ratio
  files / webdataset; the shards' images are checked byte for byte against the files';
- in the same rotation, the floor of both: the ``webdataset`` conversion with every image
  rendered and encoded but none kept (a ``sitecustomize`` in the child's path makes the spool keep
  only the sidecar and the packer do nothing), so ``files / floor`` is the most any layout could
  gain over files, and ``webdataset - floor`` what spooling and packing cost;
- reading every slice back: ``SliceDataset`` (from the NIfTI, no files) against ``cv2.imread`` of
  the exported PNGs, in slices per second, each reader in its own process, ``--runs`` rounds
  interleaved and rotated (medians); ``--baseline OTHER/src`` adds ``SliceDataset`` from another
  checkout's code to the same rotation (before / after a change), ``--reading-only`` skips the
  layouts (the files layout is converted once, or reused from an earlier run's ``--keep``).

Prints a Markdown table (``--save`` also writes ``benchmarks/results_training.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from cases import BENCH_DIR, Case, all_cases
from floor import image_files
from inputs import ensure_inputs
from measure import run_child
from run import _fresh, ensure_bytecode, work_dir

log = logging.getLogger("benchmark")
RESULTS_PATH = BENCH_DIR / "results_training.md"
LAYOUTS = ("files", "webdataset")
RUNS = (*LAYOUTS, "floor")
#: the floor run's sitecustomize (imported by every process of the child, pool workers too)
FLOOR_SITE = """
from niftislice.training import pack, spool

_write = spool.SpoolWriter.write


def _sidecar_only(self, rel, data):
    if str(rel).endswith(".json"):
        _write(self, rel, data)


spool.SpoolWriter.write = _sidecar_only
pack.SplitPacker._append_spool = lambda self, case, arrived: None
"""
READ_SCRIPT = """
import sys, time, cv2, numpy as np
from pathlib import Path
from niftislice.training import SliceDataset
kind, target = sys.argv[1], sys.argv[2:]
start, cpu = time.perf_counter(), time.process_time(); n = 0; total = 0
if kind == "png":
    for p in sorted(Path(target[0]).rglob("*.png")):
        total += int(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[0, 0]); n += 1
else:
    ds = SliceDataset(target)
    for i in range(len(ds)):
        total += int(ds[i]["image"][0, 0]); n += 1
print(n, time.perf_counter() - start, time.process_time() - cpu)
"""


def convert_argv(inputs: Sequence[Path], out: Path, layout: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "niftislice",
        "convert",
        *map(str, inputs),
        "-o",
        str(out),
        "--overwrite",
        "--layout",
        layout,
    ]


def count_images(out: Path, layout: str) -> int:
    if layout == "files":
        return len(image_files(out))
    n = 0
    for shard in out.rglob("*.tar"):
        with tarfile.open(shard) as tf:
            n += sum(m.name.endswith(".png") for m in tf)
    return n


def check_same_bytes(files: Path, shards: Path) -> tuple[int, int]:
    """Every image in the shards against the file of the same case, view and index: how many
    were compared, and how many differ in bytes (those must still decode to equal pixels)."""
    checked = differ = 0
    for shard in sorted(shards.rglob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf:
                if not m.name.endswith(".png"):
                    continue
                head, _, last = m.name.rpartition("/")
                case, view = head.rsplit("/", 1)
                stem, key = case.rsplit("/", 1)[-1], last[: -len(".png")]
                tpart = f"_{key.split('_')[0]}" if "_" in key else ""
                index = key.split("_")[-1]
                path = files / case / view / f"{stem}{tpart}_{view}_{index}.png"
                mine, theirs = tf.extractfile(m).read(), path.read_bytes()  # type: ignore[union-attr]
                checked += 1
                if mine != theirs:
                    differ += 1
                    a, b = (cv2.imdecode(np.frombuffer(x, np.uint8), -1) for x in (mine, theirs))
                    if a is None or b is None or not np.array_equal(a, b):
                        raise SystemExit(f"benchmark: {m.name} differs from {path}")
                    log.warning("%s: same pixels as %s, other bytes", m.name, path)
    return checked, differ


def floor_argv(inputs: Sequence[Path], out: Path, work: Path) -> list[str]:
    """The webdataset conversion with FLOOR_SITE first on the child's path."""
    site = work / "floor_site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(FLOOR_SITE)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return ["/usr/bin/env", f"PYTHONPATH={path}", *convert_argv(inputs, out, "webdataset")]


def bench_layouts(case: Case, inputs: list[Path], runs: int, work: Path) -> dict[str, object]:
    walls: dict[str, list[float]] = {k: [] for k in RUNS}
    cpus: dict[str, list[float]] = {k: [] for k in RUNS}
    images: dict[str, int] = {}
    for run in range(runs):
        order = RUNS[run % len(RUNS) :] + RUNS[: run % len(RUNS)]
        for layout in order:
            out = _fresh(work / "out" / case.key / layout)
            os.sync()
            log.info("case %s run %d/%d: %s", case.key, run + 1, runs, layout)
            argv = (
                floor_argv(inputs, out, work)
                if layout == "floor"
                else convert_argv(inputs, out, layout)
            )
            child = run_child(argv, work / "logs" / case.key / f"{layout}{run}")
            if child.measurement.returncode != 0:
                raise SystemExit(f"benchmark: {layout} failed:\n{child.stderr[-2000:]}")
            walls[layout].append(child.measurement.wall_s)
            cpus[layout].append(child.measurement.cpu_s)
            if layout in LAYOUTS:
                images[layout] = count_images(out, layout)
            elif any(out.rglob("*.tar")):
                raise SystemExit("benchmark: the floor run wrote shards (FLOOR_SITE not loaded)")
    if images["files"] != images["webdataset"]:
        raise SystemExit(f"benchmark: image counts differ: {images}")
    outs = work / "out" / case.key
    checked, differ = check_same_bytes(outs / "files", outs / "webdataset")
    return {
        "wall": {k: statistics.median(v) for k, v in walls.items()},
        "cpu": {k: statistics.median(v) for k, v in cpus.items()},
        "range": {k: (min(v), max(v)) for k, v in walls.items()},
        "images": images["files"],
        "checked": checked,
        "differ": differ,
    }


def bench_reading(
    case: Case, inputs: list[Path], work: Path, runs: int, baseline: Path | None
) -> dict[str, float]:
    """Slices per second (medians of ``runs`` rotated rounds): cv2.imread of the exported PNGs,
    SliceDataset from the inputs and, with ``baseline`` (a ``src`` folder), from that code."""
    files = work / "out" / case.key / "files"
    kinds = ("png", "dataset", "baseline") if baseline else ("png", "dataset")
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    cpu_rates: dict[str, list[float]] = {k: [] for k in kinds}
    counts: dict[str, int] = {}
    for run in range(runs):
        for kind in kinds[run % len(kinds) :] + kinds[: run % len(kinds)]:
            argv = [sys.executable, "-c", READ_SCRIPT]
            argv += ["png", str(files)] if kind == "png" else ["dataset", *map(str, inputs)]
            if kind == "baseline":
                argv = ["/usr/bin/env", f"PYTHONPATH={baseline}", *argv]
            log.info("case %s reading %d/%d: %s", case.key, run + 1, runs, kind)
            child = run_child(argv, work / "logs" / case.key / f"{kind}{run}")
            if child.measurement.returncode != 0:
                raise SystemExit(f"benchmark: reading {kind} failed:\n{child.stderr[-2000:]}")
            n, seconds, cpu = child.stdout.split()
            rates[kind].append(int(n) / float(seconds))
            cpu_rates[kind].append(int(n) / float(cpu))
            counts[kind] = int(n)
    if len(set(counts.values())) != 1:
        raise SystemExit(f"benchmark: slice counts differ: {counts}")
    out = {k: statistics.median(v) for k, v in rates.items()}
    out.update({f"{k}_cpu": statistics.median(v) for k, v in cpu_rates.items()})
    out["n"] = counts["png"]
    return out


def files_output(case: Case, inputs: list[Path], work: Path) -> None:
    """The files layout's output for the reading table, converted unless already there."""
    out = work / "out" / case.key / "files"
    if out.is_dir() and image_files(out):
        return
    child = run_child(convert_argv(inputs, _fresh(out), "files"), work / "logs" / case.key / "f")
    if child.measurement.returncode != 0:
        raise SystemExit(f"benchmark: files failed:\n{child.stderr[-2000:]}")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def render(
    rows: list[tuple[Case, dict[str, object] | None, dict[str, float]]],
    command: str,
    load_start: float,
) -> str:
    load = load_average()
    lines = [
        "# Training-set benchmark: files vs WebDataset shards, SliceDataset",
        "",
        f"`PYTHONPATH=src python benchmarks/training.py {command}`; medians of interleaved "
        f"runs (each command in its own process), load average {load_start:.1f} at the start and "
        f"{load:.1f} at the end, {os.cpu_count()} CPUs.",
    ]
    if any(lay for _, lay, _ in rows):
        lines += ["", *layout_table(rows)]
    baseline = all("baseline" in rd for _, _, rd in rows)
    head = "| case | slices | SliceDataset (from NIfTI) | cv2.imread of the PNGs | ratio |"
    rule = "|---|---|---|---|---|"
    if baseline:
        head += " SliceDataset, --baseline | ratio | SliceDataset ÷ baseline |"
        rule += "---|---|---|"
    lines += [
        "",
        "Reading every slice back in one process (slices per second of wall time, and in "
        "brackets per second of the process's CPU time; ratios of wall (CPU) rates):",
        "",
        head,
        rule,
    ]

    def rate(rd: dict[str, float], kind: str) -> str:
        return f"{rd[kind]:.0f} ({rd[kind + '_cpu']:.0f})"

    def ratio(rd: dict[str, float], a: str, b: str) -> str:
        return f"{rd[a] / rd[b]:.2f}x ({rd[a + '_cpu'] / rd[b + '_cpu']:.2f}x)"

    for case, _, rd in rows:
        line = (
            f"| {case.title} | {int(rd['n'])} | {rate(rd, 'dataset')} | {rate(rd, 'png')} | "
            f"{ratio(rd, 'dataset', 'png')} |"
        )
        if baseline:
            line += (
                f" {rate(rd, 'baseline')} | {ratio(rd, 'baseline', 'png')} | "
                f"{ratio(rd, 'dataset', 'baseline')} |"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def layout_table(rows: list[tuple[Case, dict[str, object] | None, dict[str, float]]]) -> list[str]:
    lines = [
        "| case | images | files s (CPU) | webdataset s (CPU) | files ÷ webdataset "
        "| floor s (CPU) | files ÷ floor |",
        "|---|---|---|---|---|---|---|",
    ]
    done = [(case, lay) for case, lay, _ in rows if lay]
    for case, lay in done:
        wall, cpu = lay["wall"], lay["cpu"]  # type: ignore[index]
        lines.append(
            f"| {case.title} | {lay['images']} | {wall['files']:.2f} ({cpu['files']:.2f}) | "  # type: ignore[index]
            f"{wall['webdataset']:.2f} ({cpu['webdataset']:.2f}) | "  # type: ignore[index]
            f"{wall['files'] / wall['webdataset']:.2f}x "  # type: ignore[index]
            f"({cpu['files'] / cpu['webdataset']:.2f}x) | "  # type: ignore[index]
            f"{wall['floor']:.2f} ({cpu['floor']:.2f}) | "  # type: ignore[index]
            f"{wall['files'] / wall['floor']:.2f}x |"  # type: ignore[index]
        )
    checked = sum(int(lay["checked"]) for _, lay in done)  # type: ignore[call-overload]
    differ = sum(int(lay["differ"]) for _, lay in done)  # type: ignore[call-overload]
    lines += [
        "",
        f"{checked} images of the last runs' shards compared with the files layout's: "
        f"{checked - differ} byte-identical, {differ} with other bytes but identical pixels.",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run, small inputs")
    parser.add_argument("--keep", type=Path, help="work folder to keep (inputs cached there)")
    parser.add_argument("--save", action="store_true", help=f"also write {RESULTS_PATH.name}")
    parser.add_argument("--cases", default="bc", help="which cases (default bc)")
    parser.add_argument("--reading-only", action="store_true", help="only the reading table")
    parser.add_argument("--baseline", type=Path, help="SliceDataset from this src folder too")
    args = parser.parse_args(argv)
    if args.baseline:
        args.baseline = args.baseline.resolve()
    runs = 1 if args.quick else args.runs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ensure_bytecode()
    cases = [c for c in all_cases(args.quick) if c.key in args.cases and c.key in "bc"]
    start, load_start = time.perf_counter(), load_average()
    rows = []
    with work_dir(args.keep) as work:
        for case in cases:
            inputs = ensure_inputs(case.inputs, work / "inputs" / case.key)
            layouts = None
            if args.reading_only:
                files_output(case, inputs, work / "training")
            else:
                layouts = bench_layouts(case, inputs, runs, work / "training")
                log.info("%s", json.dumps(layouts["wall"]))
            reading = bench_reading(case, inputs, work / "training", runs, args.baseline)
            rows.append((case, layouts, reading))
    table = (
        render(rows, " ".join(sys.argv[1:] if argv is None else argv), load_start)
        + f"\nWhole benchmark took {time.perf_counter() - start:.0f} s.\n"
    )
    print(table)
    if args.save:
        RESULTS_PATH.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
