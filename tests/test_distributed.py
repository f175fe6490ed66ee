"""``--scheduler``: the same batch on a Dask cluster converts, fails and reports as locally."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from _batch_helpers import NOT_NIFTI, make_tree, snapshot

from niftislice.batch import dask as dist
from niftislice.cli import main

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> str:
    """A real two-process cluster on this machine, started and stopped by the tests."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=40,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def run(capsys, *args: object) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


@pytest.mark.slow
def test_cluster_output_and_report_match_a_local_run(scheduler, tmp_path, capsys, monkeypatch):
    root = tmp_path / "study"
    make_tree(root)
    (root / "sub-01" / "anat" / "sub-01_T2w.nii.gz").write_bytes(NOT_NIFTI)  # fails, in the middle
    # relative paths: workers do not share our working folder, so they must be resolved here
    monkeypatch.chdir(tmp_path)
    local_rc, local_err = run(
        capsys, "convert", "study", "-o", "local", "-j", "1", "--report", "local.json"
    )
    dask_rc, dask_err = run(
        capsys, "convert", "study", "-o", "dask", "--scheduler", scheduler, "--report", "dask.json"
    )
    assert local_rc == dask_rc == 1
    assert "6 converted, 0 skipped, 1 failed" in dask_err
    a, b = snapshot(tmp_path / "local"), snapshot(tmp_path / "dask")
    assert len([k for k in a if k.endswith(".png")]) == 5 * 104 + 3 * 104
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []

    def records(name: str, out: str) -> list[dict]:
        recs = json.loads((tmp_path / name).read_text())["inputs"]
        for r in recs:
            del r["seconds"]
            r["output_dir"] = r["output_dir"] and Path(r["output_dir"]).relative_to(out).as_posix()
        return recs

    assert records("dask.json", "dask") == records("local.json", "local")
    failed = [r for r in records("dask.json", "dask") if r["status"] == "failed"]
    assert [r["source"] for r in failed] == ["study/sub-01/anat/sub-01_T2w.nii.gz"]
    errors = [line for line in dask_err.splitlines() if ": error: " in line]
    assert len(errors) == 1
    assert errors == [line for line in local_err.splitlines() if ": error: " in line]


@pytest.mark.slow
def test_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = tmp_path / "x.nii"
    src.write_bytes(NOT_NIFTI)
    rc, err = run(
        capsys, "convert", src, "-o", tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}"
    )
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == err.strip().splitlines()[0]
    assert f"cannot connect to tcp://127.0.0.1:{port} within 1 s" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_dask_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    src = tmp_path / "x.nii"
    src.write_bytes(NOT_NIFTI)
    rc, err = run(
        capsys, "convert", src, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:8786"
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'niftislice[dask]'" in err
