"""Start-up cost: what a user waits for before any voxel is read, and what every worker pays.

    python benchmarks/startup.py [--runs 15]

Each command runs in a fresh interpreter ``--runs`` times, interleaved; the table gives the
median wall time and the median above the interpreter's own start (``python -c pass``, which on
this machine includes site-packages' ``.pth`` hooks we do not control). The package is compiled
to bytecode first, as an install does.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel.tests

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(nibabel.tests.__file__).parent / "data" / "standard.nii.gz"  # 4 x 5 x 7 voxels


def commands(out: str) -> dict[str, list[str]]:
    py = [sys.executable]
    cli = [*py, "-m", "niftislice"]
    return {
        "python -c pass (floor)": [*py, "-c", "pass"],
        "niftislice --help": [*cli, "--help"],
        "niftislice info --help": [*cli, "info", "--help"],
        "usage error (--window 5:1)": [*cli, "convert", str(TINY), "-o", out, "--window", "5:1"],
        "import niftislice": [*py, "-c", "import niftislice"],
        "import niftislice.export (conversion code)": [*py, "-c", "import niftislice.export"],
        "convert a 4x5x7 volume (whole run)": [*cli, "convert", str(TINY), "-o", out, "-q"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    compileall.compile_dir(ROOT / "src", quiet=1)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        cmds = commands(str(Path(d) / "out"))
        for _ in range(args.runs):
            for name, argv in cmds.items():
                for stale in Path(d).glob("out*"):
                    subprocess.run(["rm", "-rf", str(stale)], check=True)
                start = time.perf_counter()
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.setdefault(name, []).append(time.perf_counter() - start)
    floor = statistics.median(times["python -c pass (floor)"])
    print(f"| command | median s | above floor s |   ({args.runs} interleaved runs)")
    print("|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.3f} | {med - floor:+.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
