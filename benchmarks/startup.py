"""Start-up cost: what a user waits for before any voxel is read, and what every worker pays.

    python benchmarks/startup.py [--runs 15]
    python benchmarks/startup.py --tree before=/tmp/before/src --tree after=src   # compare

Each command runs in a fresh interpreter ``--runs`` times, interleaved (every command, and every
tree, once per round), and the table gives the median wall time and CPU time (user + system),
each also above the interpreter's own start (``python -c pass``, the floor, measured in the same
rounds; on this machine it includes site-packages' ``.pth`` hooks we do not control). On a busy
machine wall times move by tens of ms from run to run; CPU times much less. The package is compiled
to bytecode first, as an install does. With ``--tree NAME=SRC`` (repeatable) each command runs
once per tree with ``PYTHONPATH=SRC``; without it, the niftislice the running Python imports.

**Start-up of a conversion** is the row "convert a 4x5x7 volume": the whole run of
``niftislice convert`` on nibabel's ``standard.nii.gz`` (4 x 5 x 7 voxels, 1 x 3 x 2 mm, so all
three views are resized: OpenCV is loaded as for a typical volume) above the floor. Its voxel
work (16 images of at most 7 x 15 pixels) is negligible: the row "same conversion, warm" times
that conversion again inside a process that has already run it once (what the child reports,
not its wall time), so start-up = whole run - floor, and the warm row says how little of it is
the conversion itself. The rows before it show what the parts cost: ``--help`` and usage errors
(which must not load numpy, nibabel or OpenCV), ``import niftislice`` and the conversion code,
and the libraries alone: numpy, nibabel, OpenCV and isal imported as the command imports them,
without anything of niftislice's (what start-up cannot go below while it uses them).
"""

from __future__ import annotations

import argparse
import compileall
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel.tests

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(nibabel.tests.__file__).parent / "data" / "standard.nii.gz"  # 4 x 5 x 7 voxels
FLOOR = "python -c pass (floor)"
WARM = "same conversion, warm (in-process)"
DEPS = "numpy, nibabel, OpenCV, isal alone (dependencies)"

# What a conversion's start-up cannot go below while it uses these libraries: they are imported
# as the command imports them (collector held, one OpenBLAS thread, pydicom hidden and
# urllib.request deferred), and nothing else.
_DEPS_CODE = """
import gc, os
gc.disable()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from niftislice._startup import defer_url_support
defer_url_support()
from niftislice._nib import nib
import cv2, isal.igzip
"""

_WARM_CODE = """
import sys, time
from niftislice.cli import main
argv = ["convert", sys.argv[1], "-o", sys.argv[2], "-q", "--overwrite"]
main(argv)
start = time.perf_counter()
main(argv)
print(time.perf_counter() - start)
"""


def commands(out: str) -> dict[str, list[str]]:
    py = [sys.executable]
    cli = [*py, "-m", "niftislice"]
    return {
        FLOOR: [*py, "-c", "pass"],
        "niftislice --help": [*cli, "--help"],
        "niftislice info --help": [*cli, "info", "--help"],
        "usage error (--window 5:1)": [*cli, "convert", str(TINY), "-o", out, "--window", "5:1"],
        "usage error (preview -o x.gif)": [*cli, "preview", str(TINY), "-o", out + ".gif"],
        "import niftislice": [*py, "-c", "import niftislice"],
        "niftislice info (header only)": [*cli, "info", str(TINY)],
        "import niftislice.export (conversion code)": [*py, "-c", "import niftislice.export"],
        DEPS: [*py, "-c", _DEPS_CODE],
        "convert a 4x5x7 volume (start-up)": [*cli, "convert", str(TINY), "-o", out, "-q"],
        WARM: [*py, "-c", _WARM_CODE, str(TINY), out + "-warm"],
    }


def run_once(
    argv: list[str], env: dict[str, str], out_dir: Path, warm: bool
) -> tuple[float, float]:
    """Wall and CPU (user + system) time of one run (``warm``: the time the child reports)."""
    for stale in out_dir.glob("out*"):
        subprocess.run(["rm", "-rf", str(stale)], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (float(done.stdout.split()[-1]), math.nan) if warm else (wall, cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    ap.add_argument("--only", help="run only the rows whose name contains this (and the floor)")
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"": ""}
    for src in trees.values():
        compileall.compile_dir(os.path.abspath(src) if src else ROOT / "src", quiet=1)
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        cmds = commands(str(Path(d) / "out"))
        if args.only:
            cmds = {k: v for k, v in cmds.items() if k == FLOOR or args.only in k}
        for _ in range(args.runs):
            for name, argv in cmds.items():
                for tree, src in trees.items():
                    env = dict(os.environ)
                    if src:
                        env["PYTHONPATH"] = os.path.abspath(src)
                    t = run_once(argv, env, Path(d), name == WARM)
                    times.setdefault((name, tree), []).append(t)
    load = os.getloadavg()[0]
    print(f"{args.runs} rounds; load average {load:.1f} at the end\n")
    print("| command | tree | wall s | above floor | CPU s | above floor | best CPU above floor |")
    print("|---|---|---|---|---|---|---|")
    for (name, tree), ts in times.items():
        walls, cpus = [t[0] for t in ts], [t[1] for t in ts]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        if name == WARM:
            print(f"| {name} | {tree} | {wall:.3f} | | | | |")
            continue
        floor = times[(FLOOR, tree)]
        fw, fc = (statistics.median(t[i] for t in floor) for i in (0, 1))
        best = min(cpus) - min(t[1] for t in floor)
        print(
            f"| {name} | {tree} | {wall:.3f} | {wall - fw:+.3f} "
            f"| {cpu:.3f} | {cpu - fc:+.3f} | {best:+.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
