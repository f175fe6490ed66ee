"""The README's examples run as written: every `niftislice ...` line of its bash blocks is run
(as `python -m niftislice`, in a fresh folder per block, in order) on the sample, with the
placeholder inputs it names (`scan.nii.gz`, `seg.nii.gz`, `study/`, ...) made beforehand; and
every option of every command is documented."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _formats_helpers import write_nrrd, write_sitk

import niftislice
from niftislice.cli.main import build_parser

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def command_blocks() -> list[list[list[str]]]:
    """Per ```bash block, its `niftislice` commands as argument lists (comments dropped, `&&`
    chains split)."""
    blocks = [_commands(body) for body in re.findall(r"```bash\n(.*?)```", README, re.S)]
    return [b for b in blocks if b]


def _commands(body: str) -> list[list[str]]:
    """The `niftislice` commands of one bash block, without the word `niftislice`."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        chain: list[list[str]] = [[]]
        for w in words:
            if w in ("&&", ";"):
                chain.append([])
            else:
                chain[-1].append(w)
        commands += [c[1:] for c in chain if c and c[0] == "niftislice"]
    return commands


def _inputs(folder: Path) -> None:
    """The files the README's examples name, built from the sample at 2 mm (fast)."""
    img = nib.load(niftislice.sample_path())
    data = np.asanyarray(img.dataobj)[::2, ::2, ::2]
    aff = img.affine.copy()
    aff[:3, :3] *= 2

    def save(rel: str, arr: np.ndarray) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        out = nib.Nifti1Image(arr, aff)
        out.header.set_xyzt_units("mm")
        nib.save(out, p)

    save("scan.nii.gz", data)
    save("extra/scan.nii.gz", data)
    save("study/sub-01/anat/T1w.nii.gz", data)
    save("seg.nii.gz", ((data > 100).astype(np.uint8) + (data > 180)).astype(np.uint8))
    save("tmap.nii.gz", ((data.astype(np.float32) - 110) / 40).astype(np.float32))
    save("shared/study/sub-01/T1w.nii.gz", data)
    save("derivatives/masks/T1w.nii.gz", (data > 100).astype(np.uint8))  # training sets
    # "Other input formats": scans/head.nrrd (pynrrd) and scans/head_sitk.mha (SimpleITK)
    (folder / "scans").mkdir()
    write_nrrd(folder / "scans" / "head.nrrd", data, aff)
    write_sitk(folder / "scans" / "head_sitk.mha", data, aff)


def _before(args: list[str], folder: Path) -> None:
    """Images drawn by another program for `stack predicted/`: the exported axial images."""
    if "predicted/" in args and not (folder / "predicted").exists():
        shutil.copytree(folder / "out" / "scan" / "axial", folder / "predicted")


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        dashboard_address=":0",
        host="127.0.0.1",
        protocol="tcp",
        silence_logs=40,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_readme_has_runnable_examples():
    blocks = command_blocks()
    flat = [" ".join(c) for b in blocks for c in b]
    assert len(blocks) >= 5 and len(flat) >= 10, flat
    assert any("stack" in c.split()[:1] for c in flat)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(len(command_blocks())))
def test_every_readme_command_runs(block, tmp_path, scheduler):
    _inputs(tmp_path)
    env = dict(os.environ)
    src = str(Path(niftislice.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    for args in command_blocks()[block]:
        args = [
            a.replace("/shared/", f"{tmp_path}/shared/").replace("tcp://host:8786", scheduler)
            for a in args
        ]
        _before(args, tmp_path)
        p = subprocess.run(
            [sys.executable, "-m", "niftislice", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, f"niftislice {' '.join(args)}\n{p.stderr}"


def test_every_option_is_in_the_readme():
    """Each option of each command (long form, or its short form) appears in the README."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        for action in command._actions:
            opts = [o for o in action.option_strings if o != "--help" and o != "-h"]
            if opts and not any(
                re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", README) for o in opts
            ):
                missing.append(f"{name} {opts[-1]}")
    assert missing == []


def test_synopsis_shows_the_sample():
    synopsis = README.split("## Commands", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    for command in ("convert", "info", "preview"):
        line = next(s for s in synopsis.splitlines() if s.startswith(f"niftislice {command}"))
        assert "--sample" in line, line


#: what each Python snippet of "Training sets" must have given, by the library it imports
_TRAINING_CHECKS = {
    "datasets": 'assert row["image"].size == row["mask"].size and row["view"] in ("axial",'
    ' "coronal", "sagittal")',
    "webdataset": 'assert image.shape == mask.shape and meta["pixel_to_world"]',
    "torch": "assert images.dtype == torch.uint8 and images.shape == masks.shape",
}


def training_blocks() -> list[tuple[str, str]]:
    """("bash" or "python", body) of every code block of the "Training sets" section, in order."""
    section = README.split("\n## Training sets", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(bash|python)\n(.*?)```", section, re.S)


def _imported(snippet: str) -> str:
    """Which of the checked libraries a snippet is about (the one it imports)."""
    (name,) = [k for k in _TRAINING_CHECKS if re.search(rf"^(import|from) {k}\b", snippet, re.M)]
    return name


@pytest.mark.slow  # imports datasets, webdataset and torch, and starts two DataLoader workers
def test_training_sets_snippets_run(tmp_path):
    """The three ways of "Training sets" run as written, in order, on the README's inputs: each
    command, then each Python snippet in its own interpreter, with a check of what it gave."""
    _inputs(tmp_path)
    env = dict(os.environ, HF_DATASETS_CACHE=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    src = str(Path(niftislice.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    blocks = training_blocks()
    snippets = [body for kind, body in blocks if kind == "python"]
    assert sorted(_imported(s) for s in snippets) == sorted(_TRAINING_CHECKS)
    for kind, body in blocks:
        if kind == "bash":
            argvs = [[sys.executable, "-m", "niftislice", *c] for c in _commands(body)]
        else:
            check = _TRAINING_CHECKS[_imported(body)]
            argvs = [[sys.executable, "-c", f"{body}\n{check}\n"]]
        for argv in argvs:
            p = subprocess.run(
                argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
            )
            assert p.returncode == 0, f"{body}\n{p.stderr[-3000:]}"
