"""Start-up stays light: which modules each kind of run imports, checked in a fresh interpreter
(no wall-clock limits here; ``benchmarks/startup.py`` measures the times).

- ``--help``, usage errors and ``import niftislice`` / ``niftislice.options`` load none of the
  heavy packages (numpy, nibabel, OpenCV, pydicom, Dask, Pillow...);
- a NIfTI conversion loads numpy and nibabel but not pydicom, Dask, Pillow, tarfile, the
  process pool (one file), the picture or training-set modules; OpenCV only once an image is
  resized or encoded as something other than PNG;
- ``info`` reads a header without OpenCV.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel.tests
import pytest

#: 4 x 5 x 7 voxels of 1 x 3 x 2 mm: every view is resized at the default spacing
TINY = str(Path(nibabel.tests.__file__).parent / "data" / "standard.nii.gz")
#: top-level packages no light run may import
HEAVY = {
    "numpy",
    "nibabel",
    "cv2",
    "pydicom",
    "dask",
    "distributed",
    "PIL",
    "scipy",
    "isal",
    "deflate",
    "tqdm",
    "nrrd",
    "SimpleITK",
    "torch",
}
#: top-level modules a single-file NIfTI conversion has no use for
NOT_FOR_NIFTI = {"pydicom", "dask", "distributed", "PIL", "tarfile", "SimpleITK", "nrrd", "torch"}

# Runs the command line in-process and records sys.modules afterwards (json is imported after
# the run, so the record does not count its own import).
_PROBE = """
import os, sys
from niftislice.cli import main
code = main(sys.argv[1:])
import json
with open(os.environ["PROBE_OUT"], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def run(tmp_path: Path, code: str, *args: str) -> tuple[int, set[str]]:
    """Run ``code`` with ``args`` in a fresh interpreter; (its exit code, modules it loaded)."""
    out = tmp_path / "probe.json"
    env = dict(os.environ, PROBE_OUT=str(out))
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    return record.get("code", 0), set(record["modules"])


def cli(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    return run(tmp_path, _PROBE, *args)


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["info", "--help"], 0),
        (["convert", "--help"], 0),
        (["preview", "--help"], 0),
        (["stack", "--help"], 0),
        ([], 2),  # no command: the help on stderr
        (["convert"], 2),  # no inputs
        (["convert", TINY, "-o", "OUT", "--window", "5:1"], 2),
        (["convert", TINY, "-o", "OUT", "--format", "bmp"], 2),
        (["preview", TINY, "-o", "preview.gif"], 2),  # a suffix preview cannot write
        (["info", TINY, "--window", "nonsense"], 2),
    ],
)
def test_help_and_usage_errors_load_nothing_heavy(tmp_path, args, status):
    code, modules = cli(tmp_path, *[str(tmp_path / a) if a == "OUT" else a for a in args])
    assert code == status
    assert not tops(modules) & HEAVY
    assert "niftislice.export" not in modules


@pytest.mark.parametrize(
    "statement",
    [
        "import niftislice",
        "import niftislice.options",
        "from niftislice import ConvertOptions; ConvertOptions(window='0:100', views='axial')",
        "from niftislice import OptionError, View, __version__",
        "import niftislice.cli",
    ],
)
def test_light_imports(tmp_path, statement):
    probe = f"{statement}\nimport os, sys, json\n"
    probe += "json.dump({'modules': sorted(sys.modules)}, open(os.environ['PROBE_OUT'], 'w'))"
    _, modules = run(tmp_path, probe)
    assert not tops(modules) & HEAVY


def test_nifti_conversion_loads_only_what_it_uses(tmp_path):
    out = tmp_path / "out"
    code, modules = cli(tmp_path, "convert", TINY, "-o", str(out), "-q", "--spacing", "native")
    assert code == 0
    assert len(list(out.rglob("*.png"))) == 4 + 5 + 7
    assert {"numpy", "nibabel"} <= tops(modules)
    assert not tops(modules) & (NOT_FOR_NIFTI | {"cv2", "multiprocessing"})
    ours = {m for m in modules if m.startswith("niftislice.")}
    assert not {m for m in ours if m.startswith("niftislice.stacking")}
    # the run itself goes through training.run (exactly run_batch without training options)
    assert {m for m in ours if m.startswith("niftislice.training.")} == {"niftislice.training.run"}
    assert ours & {"niftislice.pictures.hooks"}  # the hooks, but none of the pictures
    assert not ours & {f"niftislice.pictures.{m}" for m in ("colormap", "montage", "overlay")}
    assert not {m for m in ours if m.startswith("niftislice.read.dicom")} - {
        "niftislice.read.dicom_sniff"
    }
    other_readers = ("nrrd", "metaimage", "nibabel_formats", "foreign")
    assert not ours & {f"niftislice.read.{m}" for m in other_readers}


def test_opencv_loads_when_an_image_is_resized(tmp_path):
    out = tmp_path / "out"
    code, modules = cli(tmp_path, "convert", TINY, "-o", str(out), "-q")
    assert code == 0
    assert "cv2" in modules  # 1 x 3 x 2 mm voxels: every view is resized
    assert not tops(modules) & NOT_FOR_NIFTI


def test_info_reads_the_header_without_opencv(tmp_path):
    code, modules = cli(tmp_path, "info", TINY)
    assert code == 0
    assert not tops(modules) & (NOT_FOR_NIFTI | {"cv2"})


def test_opencv_stand_in(tmp_path):
    """``_cv2.cv2`` imports OpenCV at the first real attribute, silenced; introspection of
    dunder names does not import it."""
    probe = """
import os, sys, json
from niftislice._cv2 import cv2
hasattr(cv2, "__wrapped__")
before = "cv2" in sys.modules
area = cv2.INTER_AREA
import cv2 as real
silent = real.utils.logging.getLogLevel() == real.utils.logging.LOG_LEVEL_SILENT
same = cv2.resize is real.resize and area == real.INTER_AREA
json.dump({"modules": [], "code": [before, silent, same]}, open(os.environ["PROBE_OUT"], "w"))
"""
    result, _ = run(tmp_path, probe)
    assert result == [False, True, True]


def test_the_command_ends_through_entry(tmp_path):
    """The console script and ``python -m niftislice`` run ``cli.entry``: main, then the
    objects made so far are left out of the collection at exit (``gc.freeze``); ``main`` alone,
    which callers run in a process that goes on, leaves the collector as it was."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert 'niftislice = "niftislice.cli:entry"' in pyproject.read_text()  # [project.scripts]
    probe = """
import gc, json, os, sys
from niftislice import cli
sys.argv = ["niftislice", "--version"]
after_main = (cli.main(["--version"]), gc.get_freeze_count())
after_entry = (cli.entry(), gc.get_freeze_count())
json.dump({"modules": [], "code": [after_main, after_entry]}, open(os.environ["PROBE_OUT"], "w"))
"""
    (main_code, main_frozen), (entry_code, entry_frozen) = run(tmp_path, probe)[0]
    assert main_code == entry_code == 0
    assert main_frozen == 0 and entry_frozen > 1000


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("3", "3")])
def test_the_command_keeps_openblas_to_one_thread_unless_told(
    tmp_path, monkeypatch, preset, expected
):
    """``cli.entry`` sets OPENBLAS_NUM_THREADS before numpy loads (its spinning threads cost
    CPU and niftislice multiplies only 4 x 4 matrices), unless the environment already says."""
    if preset is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", preset)
    probe = """
import json, os, sys
from niftislice import cli
sys.argv = ["niftislice", "info", sys.argv[1]]
code = cli.entry()
threads = os.environ.get("OPENBLAS_NUM_THREADS")
json.dump({"modules": [threads], "code": code}, open(os.environ["PROBE_OUT"], "w"))
"""
    code, record = run(tmp_path, probe, TINY)
    assert code == 0 and record == {expected}


def test_the_command_collects_no_garbage_while_it_imports(tmp_path, monkeypatch):
    """Under ``cli.entry`` the collector is held while numpy, nibabel and niftislice load (each
    collection would walk everything they made), then frozen; ``main`` alone changes nothing:
    a caller's process collects as it always does (dozens of collections over the same run)."""
    probe = """
import gc, json, os, sys
from niftislice import cli
def collections():
    return sum(s["collections"] for s in gc.get_stats())
sys.argv = ["niftislice", "info", sys.argv[1]]
start = collections()
code = cli.entry() if os.environ["HOW"] == "entry" else cli.main(sys.argv[1:])
json.dump({"modules": [collections() - start], "code": code}, open(os.environ["PROBE_OUT"], "w"))
"""
    counts = {}
    for how in ("entry", "main"):
        monkeypatch.setenv("HOW", how)
        code, (counts[how],) = run(tmp_path, probe, TINY)
        assert code == 0
    assert counts["entry"] == 0 and counts["main"] > 10, counts


def test_the_command_defers_nibabels_url_support(tmp_path, monkeypatch):
    """nibabel imports ``urllib.request`` (for ``from_url``, which niftislice never calls), and
    with it ``http.client``, ``ssl``, ``email`` and OpenSSL's hashes. Under ``cli.entry`` it is
    loaded lazily: nothing of it runs during a conversion, yet it works the moment it is used.
    ``main`` alone leaves a caller's imports as they are."""
    probe = """
import json, os, sys
from niftislice import cli
sys.argv = ["niftislice", "convert", sys.argv[1], "-o", sys.argv[2], "-q"]
code = cli.entry() if os.environ["HOW"] == "entry" else cli.main(sys.argv[1:])
before = sorted({"http.client", "ssl", "email.parser"} & set(sys.modules))
import nibabel.filebasedimages
import urllib.request
same = nibabel.filebasedimages.request is urllib.request is sys.modules["urllib.request"]
url = urllib.request.Request("http://example.org/a.nii").full_url
after = sorted({"http.client", "ssl", "email.parser"} & set(sys.modules))
record = [json.dumps([before, same, url, after])]
json.dump({"modules": record, "code": code}, open(os.environ["PROBE_OUT"], "w"))
"""
    real = ["email.parser", "http.client", "ssl"]
    for how, loaded in (("entry", []), ("main", real)):
        monkeypatch.setenv("HOW", how)
        out = tmp_path / how
        code, (record,) = run(tmp_path, probe, TINY, str(out))
        before, same, url, after = json.loads(record)
        assert code == 0 and len(list(out.rglob("*.png"))) == 16
        assert before == loaded, how
        assert same and url == "http://example.org/a.nii" and after == real
