"""The benchmark cases and the commands that compete on them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inputs import InputSpec

BENCH_DIR = Path(__file__).resolve().parent
NAIVE_SCRIPT = BENCH_DIR / "naive.py"
TEMPLATE_SHAPE = (197, 233, 189)  # the MNI152 template's 1 mm grid
BATCH_SIZE = 8


@dataclass(frozen=True)
class Contender:
    """One command run on a case's inputs: the naive baseline or niftislice with ``options``."""

    label: str
    naive: bool = False
    options: tuple[str, ...] = ()

    def argv(self, inputs: Sequence[Path], out: Path) -> list[str]:
        paths = [str(p) for p in inputs]
        if self.naive:
            return [sys.executable, str(NAIVE_SCRIPT), *paths, "-o", str(out)]
        return [
            sys.executable,
            "-m",
            "niftislice",
            "convert",
            *paths,
            "-o",
            str(out),
            "--overwrite",
            *self.options,
        ]


NAIVE = Contender("naive", naive=True)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    inputs: tuple[InputSpec, ...]
    contenders: tuple[Contender, ...]


def _head_zooms(shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """Voxel sizes (mm) that keep the template's physical extent on a grid of ``shape``."""
    return (
        TEMPLATE_SHAPE[0] / shape[0],
        TEMPLATE_SHAPE[1] / shape[1],
        TEMPLATE_SHAPE[2] / shape[2],
    )


def large_volume(quick: bool) -> Case:
    shape = (192, 192, 150) if quick else (512, 512, 400)
    spec = InputSpec(
        name="large_lps",
        shape=shape,
        zooms_mm=(0.5, 0.5, 1.25),
        axcodes=("L", "P", "S"),
        dtype="int16",
        peak=3000.0,
        noise_sd=30.0,
        seed=1,
    )
    return Case(
        key="a",
        title="(a) {}x{}x{} int16 LPS, 0.5x0.5x1.25 mm, `--spacing 1`".format(*shape),
        inputs=(spec,),
        contenders=(NAIVE, Contender("niftislice --spacing 1", options=("--spacing", "1"))),
    )


def head_batch(quick: bool) -> Case:
    count = 2 if quick else BATCH_SIZE
    # Like the MRHead sample: 1 x 1 x 1.3 mm slices, stored P-I-R.
    shape, zooms = ((99, 117, 73), (2.0, 2.0, 2.6)) if quick else ((197, 233, 145), (1.0, 1.0, 1.3))
    specs = tuple(
        InputSpec(
            name=f"head_pir_{i + 1}",
            shape=shape,
            zooms_mm=zooms,
            axcodes=("P", "I", "R"),
            dtype="int16",
            peak=1000.0 * (1 + 0.05 * i),
            noise_sd=8.0 + i,
            seed=100 + i,
        )
        for i in range(count)
    )
    return Case(
        key="b",
        title=f"(b) batch of {count} heads, int16 PIR, 1x1x1.3 mm, one call",
        inputs=specs,
        contenders=(
            NAIVE,
            Contender("niftislice"),
            Contender("niftislice -j 1", options=("-j", "1")),
            Contender("niftislice -j 2", options=("-j", "2")),
        ),
    )


def series_4d(quick: bool) -> Case:
    shape, frames = ((32, 32, 18), 20) if quick else ((64, 64, 36), 200)
    spec = InputSpec(
        name="series_4d",
        shape=shape,
        zooms_mm=_head_zooms(shape),
        axcodes=("R", "A", "S"),
        dtype="float32",
        peak=1000.0,
        noise_sd=10.0,
        seed=7,
        frames=frames,
    )
    return Case(
        key="c",
        title="(c) 4D {}x{}x{}x{} float32".format(*shape, frames),
        inputs=(spec,),
        contenders=(NAIVE, Contender("niftislice")),
    )


def all_cases(quick: bool) -> list[Case]:
    return [large_volume(quick), head_batch(quick), series_4d(quick)]
