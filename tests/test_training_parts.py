"""The pure parts of training sets: pairing by name, splits by subject, tar shards, spools."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from _training_helpers import SUBJECTS, bids_tree, nnunet_tree

from niftislice.errors import OptionError
from niftislice.training.metadata import ImageRecord
from niftislice.training.pack import old_cases, sample_key
from niftislice.training.pairing import MaskIndex, candidate_stems, case_stem
from niftislice.training.shards import (
    ShardSize,
    ShardWriter,
    existing_shards,
    member_header,
)
from niftislice.training.splits import SplitSpec, splits_json, subject_of
from niftislice.training.spool import SpoolReader, SpoolWriter

# ---------------------------------------------------------------------------------------------
# pairing


def test_candidate_stems_strip_nnunet_channel_suffix() -> None:
    assert candidate_stems("case_001_0000.nii.gz") == ["case_001_0000", "case_001"]
    assert candidate_stems("sub-01_T1w.nii") == ["sub-01_T1w"]
    assert case_stem("case_001_0003.NII.GZ") == "case_001"
    assert case_stem("scan_12.nii.gz") == "scan_12"  # not four digits: not a channel


def test_bids_masks_pair_by_mirrored_path(tmp_path: Path) -> None:
    bids, masks = bids_tree(tmp_path, n=3)
    index = MaskIndex(masks)
    for sub in SUBJECTS[:3]:
        scan = bids / sub / "anat" / f"{sub}_T1w.nii.gz"
        found = index.find(scan, Path(sub) / "anat")
        assert found.path == masks / sub / "anat" / f"{sub}_T1w.nii.gz"


def test_nnunet_channels_pair_with_the_case_label(tmp_path: Path) -> None:
    images, labels = nnunet_tree(tmp_path, cases=2)
    index = MaskIndex(labels)
    for ch in ("0000", "0001"):
        assert index.find(images / f"case_001_{ch}.nii.gz").path == labels / "case_001.nii.gz"


def test_mirrored_path_wins_over_a_name_elsewhere_and_ambiguity_is_reported(
    tmp_path: Path,
) -> None:
    for rel in ("a/scan.nii.gz", "b/scan.nii.gz"):
        (tmp_path / "m" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "m" / rel).write_bytes(b"")
    index = MaskIndex(tmp_path / "m")
    assert index.find("x/scan.nii.gz", Path("b")).path == tmp_path / "m" / "b" / "scan.nii.gz"
    ambiguous = index.find("x/scan.nii.gz", Path("c"))
    assert ambiguous.path is None and "several masks named scan" in ambiguous.reason
    missing = index.find("other.nii.gz")
    assert missing.path is None and "no mask other.nii[.gz]" in missing.reason


def test_masks_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="masks: no such folder"):
        MaskIndex(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# splits


def test_subject_from_bids_path_else_case_name() -> None:
    assert subject_of("study/sub-07/ses-1/anat/sub-07_ses-1_T1w.nii.gz") == "sub-07"
    assert subject_of("sub-AB12_T1w.nii.gz") == "sub-AB12"
    assert subject_of("imagesTr/case_004_0001.nii.gz") == "case_004"
    assert subject_of("scans/patient3.nii") == "patient3"


def test_split_spec_parsing_and_errors() -> None:
    spec = SplitSpec.parse("train=0.8, val=0.1,test=0.1")
    assert spec.names == ("train", "val", "test")
    assert str(spec) == "train=0.8,val=0.1,test=0.1"
    assert SplitSpec.parse({"a": 0.5, "b": 0.5}).names == ("a", "b")
    for bad, message in [
        ("train=0.8,val=0.1", "sum to 1, got 0.9"),
        ("train=0.8,train=0.2", "named twice"),
        ("train", "expected NAME=FRACTION"),
        ("train=x,val=1", "not a number"),
        ("../x=1", "split name"),
        ("a=0,b=1", "must be in \\(0, 1\\]"),
    ]:
        with pytest.raises(OptionError, match=f"split: .*{message}"):
            SplitSpec.parse(bad)


def test_split_is_deterministic_and_adding_subjects_moves_none() -> None:
    spec = SplitSpec.parse("train=0.6,val=0.2,test=0.2")
    subjects = [f"sub-{i:03d}" for i in range(400)]
    first = {s: spec.assign(s, seed=3) for s in subjects[:200]}
    again = {s: spec.assign(s, seed=3) for s in reversed(subjects)}  # more, other order
    assert all(again[s] == split for s, split in first.items())
    counts = {n: sum(v == n for v in again.values()) for n in spec.names}
    assert 200 < counts["train"] < 280 and 50 < counts["val"] < 110, counts
    other_seed = {s: spec.assign(s, seed=4) for s in subjects}
    assert other_seed != again  # the seed reshuffles


def test_splits_json_lists_each_subject_once() -> None:
    spec = SplitSpec.parse("train=0.5,test=0.5")
    doc = json.loads(splits_json(spec, 1, [("b", "train"), ("a", "train"), ("b", "train")]))
    assert doc["subjects"] == {"train": ["a", "b"], "test": []}
    assert doc["seed"] == 1 and doc["fractions"] == {"train": 0.5, "test": 0.5}


# ---------------------------------------------------------------------------------------------
# shards


def test_shard_size_option() -> None:
    assert ShardSize.parse(None) == ShardSize(10**9, 10_000)
    assert ShardSize.parse("500MB") == ShardSize(500 * 10**6, 10_000)
    assert ShardSize.parse("2000") == ShardSize(10**9, 2000)
    assert ShardSize.parse("1.5GiB, 300") == ShardSize(int(1.5 * 2**30), 300)
    for bad in ("big", "0", "10MB,20MB", "1"):
        if bad == "1":
            assert ShardSize.parse(bad).max_samples == 1
            continue
        with pytest.raises(OptionError, match="shard-size"):
            ShardSize.parse(bad)


@pytest.mark.parametrize(
    "name",
    ["a/b/0001.png", "x" * 100, "d" * 120 + "/axial/0001.png", "e" * 150 + "/f" * 60],
)
def test_member_headers_are_what_tarfile_reads(name: str) -> None:
    data = b"0123456789" * 70
    raw = member_header(name, len(data)) + data + b"\0" * (-len(data) % 512) + b"\0" * 1024
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        (m,) = tf.getmembers()
        assert (m.name, m.size, m.mode, m.mtime, m.uid, m.gid) == (name, 700, 0o644, 0, 0, 0)
        assert tf.extractfile(m).read() == data  # type: ignore[union-attr]


def test_short_headers_match_tarfile_ustar_byte_for_byte() -> None:
    info = tarfile.TarInfo("sub-01/anat/sub-01_T1w/axial/0042.png")
    info.size, info.mode, info.mtime, info.uname, info.gname = 1234, 0o644, 0, "", ""
    assert member_header(info.name, 1234) == info.tobuf(tarfile.USTAR_FORMAT)


def test_shards_roll_over_by_samples_and_bytes(tmp_path: Path) -> None:
    def write(size: ShardSize, folder: Path) -> list[Path]:
        with ShardWriter(folder, "train", size) as w:
            for i in range(10):
                w.add([(f"c/axial/{i:04d}.json", b"{}"), (f"c/axial/{i:04d}.png", b"p" * 3000)])
            w.add([("c/sidecar.json", b"{}")], sample=False)
        return w.written

    by_count = write(ShardSize(10**9, 4), tmp_path / "n")
    assert [p.name for p in by_count] == [f"train-00000{i}.tar" for i in range(3)]
    names = []
    for p in by_count:
        with tarfile.open(p) as tf:
            names.append(tf.getnames())
    assert [len(n) for n in names] == [8, 8, 5]  # 4, 4 and 2 samples; the sidecar rides along
    assert names[2][-1] == "c/sidecar.json"
    # a sample takes 4608 bytes: 2 samples and the end-of-archive blocks fit in 11 kB, and
    # the sidecar after the last two does not: it starts a sixth shard
    by_bytes = write(ShardSize(11_000, 10_000), tmp_path / "b")
    assert len(by_bytes) == 6
    assert all(p.stat().st_size % 10240 == 0 for p in by_bytes)
    assert all(p.stat().st_size <= 11_000 for p in by_bytes)
    with tarfile.open(by_bytes[-1]) as tf:
        assert tf.getnames() == ["c/sidecar.json"]
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]
    assert existing_shards(tmp_path / "b", "train") == by_bytes


def test_no_shard_passes_its_byte_limit(tmp_path: Path) -> None:
    """Sidecars (not samples) count against the byte limit too, and so does the padding that
    ends a shard; only a group of members larger than the limit gets a shard of its own above
    it. Every member is there once, in order."""
    limit = 25_000
    added = []
    with ShardWriter(tmp_path, "s", ShardSize(limit, 10_000)) as w:
        for case in range(6):
            for i in range(case + 1):
                w.add([(f"c{case}/axial/{i:04d}.png", b"p" * 3000)])
                added.append(f"c{case}/axial/{i:04d}.png")
            w.add([(f"c{case}/sidecar.json", b"{" * 6000)], sample=False)
            added.append(f"c{case}/sidecar.json")
        w.add([("big/axial/0000.png", b"b" * 40_000)])
        added.append("big/axial/0000.png")
    names = []
    for p in w.written:
        with tarfile.open(p) as tf:
            names += tf.getnames()
        assert p.stat().st_size <= limit or p == w.written[-1]
    assert names == added and len(w.written) > 3


def test_a_failed_shard_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), ShardWriter(tmp_path, "s", ShardSize(10**9, 1)) as w:
        w.add([("a/0.png", b"x")])
        w.add([("a/1.png", b"y")])  # the first shard is complete now
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-000000.tar"]


def test_old_cases_are_the_ones_whose_sidecar_made_it(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, "s", ShardSize(10**9, 2)) as w:
        for case in ("a", "b/c"):
            for i in range(3):
                w.add([(f"{case}/axial/{i:04d}.png", b"x")])
            w.add([(f"{case}/sidecar.json", b"{}")], sample=False)
    shards = existing_shards(tmp_path, "s")
    assert list(old_cases(shards)) == ["a", "b/c"]
    assert [m.name for m in old_cases(shards)["b/c"]][-1] == "b/c/sidecar.json"
    assert list(old_cases(shards[:2])) == ["a"]  # b/c is cut off: it is converted again


@pytest.mark.slow
def test_sample_keys_follow_webdataset() -> None:
    from webdataset.tariterators import base_plus_ext

    for name in ["s.v2/anat/x.y/axial/0042.mask.png", "c/t0003_0042.json", "top.png"]:
        assert sample_key(name) == base_plus_ext(name)[0]


def test_image_record_keys_have_no_dots_and_sort_like_slices() -> None:
    rec3 = ImageRecord("axial", 42, None, "scan.v2_axial_0042.png", (1.0, 1.0), [])
    rec4 = ImageRecord("coronal", 7, 3, "a_b_t0003_coronal_0007.png", (1.0, 1.0), [])
    assert rec3.key == "axial/0042" and rec4.key == "coronal/t0003_0007"


# ---------------------------------------------------------------------------------------------
# spool


@pytest.mark.parametrize("flush_bytes", [SpoolWriter.FLUSH_BYTES, 1000])
def test_spool_keeps_every_file_from_many_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_bytes: int
) -> None:
    """Files of every size, buffered, flushed in pieces or (at least ``FLUSH_BYTES``) written
    directly, come back whole and at their own place."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(SpoolWriter, "FLUSH_BYTES", flush_bytes)
    w = SpoolWriter(tmp_path)
    payload = {f"axial/{i:04d}.png": bytes([i % 256]) * (i * 7 + 1) for i in range(300)}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda kv: w.write(*kv), payload.items()))
    w.close()
    r = SpoolReader(tmp_path)
    assert {k: bytes(r.get(k)) for k in payload} == payload
    assert "axial/9999.png" not in r
    r.close()


def test_shard_json_lines_equal_the_metadata_fields() -> None:
    from niftislice.training.metadata import dumps_line, image_fields
    from niftislice.training.pack import MetaLines

    p2w = [[-1.0, 0.0, 0.0, 90.5], [0.0, -1.0, 0.0, 126.0], [0.0, 0.0, 1.0, -72.0], [0, 0, 0, 1]]
    for volume, split in [(None, None), (3, "train"), (0, None)]:
        rec = ImageRecord("axial", 42, volume, "x_axial_0042.png", (0.5, 1.25), p2w)
        lines = MetaLines('study/sub-"01".nii.gz', split)
        expected = dumps_line(image_fields(rec, 'study/sub-"01".nii.gz', split)).encode()
        assert lines.line(rec) == lines.line(rec) == expected
