"""The README's examples run as written: every `niftislice ...` line of its bash blocks (and the
`$` lines of its transcripts) is run in a fresh folder per block, in order, on the sample, with
the placeholder inputs it names (`scan.nii.gz`, `seg.nii.gz`, `study/`, a DICOM `export/`, ...)
made beforehand and only the core dependencies importable (as after `pip install .`); the
Python snippets of "Training sets" run after their commands; and every option of every command
is documented."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _formats_helpers import write_nrrd, write_sitk
from _readme_helpers import CORE_ONLY_RUNNER, NOT_INSTALLED_HOOK, blocked_modules, dicom_export

import niftislice
from niftislice.cli.parser import build_parser

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


@dataclass(frozen=True)
class Command:
    args: list[str]  # after `niftislice`
    extras: tuple[str, ...]  # extras the block pip-installed before this command


def command_blocks() -> list[list[Command]]:
    """Per ```bash block, its `niftislice` commands (see :func:`_commands`)."""
    blocks = [_commands(body) for body in re.findall(r"```bash\n(.*?)```", README, re.S)]
    return [b for b in blocks if b]


def _commands(body: str) -> list[Command]:
    """The `niftislice` commands of one bash block (comments dropped, continued lines joined,
    `&&` chains split); of a transcript (lines starting with `$ `), its `$` lines only."""
    lines = body.replace("\\\n", " ").splitlines()
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands: list[Command] = []
    extras: list[str] = []
    for line in lines:
        chains: list[list[str]] = [[]]
        for w in shlex.split(line, comments=True):
            if w in ("&&", ";"):
                chains.append([])
            else:
                chains[-1].append(w)
        for words in chains:
            if words[:1] == ["niftislice"]:
                commands.append(Command(words[1:], tuple(extras)))
            elif "install" in words:
                for w in words:
                    extras += [e for m in re.findall(r"\[([\w,-]+)\]", w) for e in m.split(",")]
    return commands


def listed_outputs() -> list[str]:
    """The folders the transcripts' `$ ls` shows (`OUT/DICOM/S0001:` then its entries)."""
    paths = []
    for body in re.findall(r"```bash\n(.*?)```", README, re.S):
        folder = None
        for line in body.splitlines():
            if line.startswith("$ "):
                folder = None
            elif re.fullmatch(r"\S+:", line):
                folder = line[:-1]
            elif folder and line.strip():
                paths += [f"{folder}/{name}" for name in line.split()]
    return paths


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
    """Inputs a command needs that another program makes: the DICOM export the "From DICOM"
    transcript converts, and for `stack predicted/` images drawn elsewhere (the exported axial
    images)."""
    if any(a.startswith("export") for a in args) and not (folder / "export").exists():
        dicom_export(folder)
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
    flat = [" ".join(c.args) for b in blocks for c in b]
    assert len(blocks) == README.count("```bash") and len(flat) >= 14, flat
    assert any("stack" in c.split()[:1] for c in flat)
    assert "info export/DICOM/S0002" in flat  # the "From DICOM" transcript's `$` lines
    assert {c.extras for b in blocks for c in b} == {(), ("dask",)}
    assert listed_outputs() == ["OUT/DICOM/S0001/0002_Head_2.5mm", "OUT/DICOM/S0002/0005_T1_SAG"]


def _check_report(path: Path) -> None:
    """The report file is what the README's Report bullet says: an object of `summary` and
    `inputs`, with the fields it names."""
    said = README.split("**Report.**", 1)[1].split("\n- ", 1)[0]
    assert '`{"summary": {...}, "inputs": [...]}`' in " ".join(said.split())
    report = json.loads(path.read_text())
    assert list(report) == ["summary", "inputs"]
    for record in [report["summary"], *report["inputs"]]:
        for key in record:
            assert f"`{key}`" in said, key


@pytest.mark.slow
@pytest.mark.parametrize("block", range(len(command_blocks())))
def test_every_readme_command_runs(block, tmp_path, scheduler):
    """Each command as typed, with only the core dependencies importable (as after the
    Quickstart's `pip install .`) unless its block installed an extra."""
    _inputs(tmp_path)
    env = dict(os.environ)
    src = str(Path(niftislice.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    for command in command_blocks()[block]:
        args = [
            a.replace("/shared/", f"{tmp_path}/shared/").replace("tcp://host:8786", scheduler)
            for a in command.args
        ]
        _before(args, tmp_path)
        blocked = blocked_modules(command.extras)
        p = subprocess.run(
            [sys.executable, "-c", CORE_ONLY_RUNNER, blocked, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, f"niftislice {' '.join(args)}\n{p.stderr}"
        if "--report" in args:
            _check_report(tmp_path / args[args.index("--report") + 1])
    if any(a.startswith("export") for c in command_blocks()[block] for a in c.args):
        for listed in listed_outputs():  # the transcript's `$ ls` shows these
            assert (tmp_path / listed).is_dir(), listed


def test_the_runner_hides_what_only_an_extra_installs():
    """scipy (the `test` extra) is installed here but not after `pip install .`: under the
    hook its import fails; what the `dask` extra installs is kept for a block installing it."""
    assert {"scipy", "SimpleITK", "torch", "distributed"} <= set(blocked_modules(()).split(","))
    assert {"numpy", "cv2", "nibabel", "PIL", "pydicom"}.isdisjoint(blocked_modules(()).split(","))
    assert "distributed" not in blocked_modules(("dask",)).split(",")
    p = subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED_HOOK + "import scipy", blocked_modules(())],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "only an extra installs it" in p.stderr


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
            argvs = [[sys.executable, "-m", "niftislice", *c.args] for c in _commands(body)]
        else:
            check = _TRAINING_CHECKS[_imported(body)]
            argvs = [[sys.executable, "-c", f"{body}\n{check}\n"]]
        for argv in argvs:
            p = subprocess.run(
                argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
            )
            assert p.returncode == 0, f"{body}\n{p.stderr[-3000:]}"
