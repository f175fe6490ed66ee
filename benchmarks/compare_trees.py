"""Is a change slower? niftislice from two source trees on cases (a) and (b), interleaved.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before/src src [--runs 5]

Prints the median and range of each tree's wall time per case (same inputs, same machine, runs
alternating between the trees, so background load hits both alike).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cases import all_cases
from inputs import ensure_inputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", help="src folder of the first tree")
    ap.add_argument("after", help="src folder of the second tree")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", help="folder for the generated inputs (reused when present)")
    args = ap.parse_args()
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    for src in trees.values():
        compileall.compile_dir(src, quiet=1)
    work = Path(args.keep or tempfile.mkdtemp(prefix="nscompare-"))
    times: dict[tuple[str, str], list[float]] = {}
    for case in all_cases(False):
        if case.key not in "ab":
            continue
        inputs = ensure_inputs(case.inputs, work / "inputs")
        contender = next(c for c in case.contenders if not c.naive)
        for _ in range(args.runs):
            for name, src in trees.items():
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                subprocess.run(
                    [*contender.argv(inputs, out), "-q"],
                    env=dict(os.environ, PYTHONPATH=src),
                    check=True,
                )
                times.setdefault((f"{case.key} {contender.label}", name), []).append(
                    time.perf_counter() - start
                )
    print(f"| case | tree | median s | min-max s |   ({args.runs} interleaved runs)")
    print("|---|---|---|---|")
    for (case, name), ts in times.items():
        print(f"| {case} | {name} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
