"""convert --masks/--split/--layout on a small BIDS-like study and an nnU-Net-style dataset."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _training_helpers import (
    ORDERS,
    SUBJECTS,
    bids_tree,
    head,
    nnunet_tree,
    series_4d,
    subject_image,
    write,
)

from niftislice.cli import main
from niftislice.encoding import decode

SPLIT = ["--split", "train=0.6,val=0.2,test=0.2", "--split-seed", "2"]
# with seed 2 these fractions put sub-02 in test, sub-05 in val and the rest in train
EXPECTED = {
    "train": ["sub-01", "sub-03", "sub-04", "sub-06"],
    "val": ["sub-05"],
    "test": ["sub-02"],
}


def run(*args: object) -> int:
    return main(["-q", "convert", *map(str, args)])


def shard_members(paths: list[Path]) -> list[tuple[str, bytes]]:
    out = []
    for p in paths:
        with tarfile.open(p) as tf:
            out += [(m.name, tf.extractfile(m).read()) for m in tf]  # type: ignore[union-attr]
    return out


def shards_of(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tar"))


def differences(mine: list[tuple[str, bytes]], theirs: list[tuple[str, bytes]]) -> list[str]:
    """What differs between two member lists, one short line per member (at most 5): names
    missing on either side, or members whose bytes differ (PNGs: and whether the pixels do)."""
    a, b = dict(mine), dict(theirs)
    out = [f"only in the first: {n}" for n in a if n not in b]
    out += [f"only in the second: {n}" for n in b if n not in a]
    if not out and [n for n, _ in mine] != [n for n, _ in theirs]:
        out.append("same members in another order")
    for name in (n for n in a if n in b and a[n] != b[n]):
        what = f"{name}: {len(a[name])} vs {len(b[name])} bytes"
        if name.endswith(".png"):
            same = np.array_equal(decode(a[name]), decode(b[name]))
            what += ", same pixels" if same else ", pixels differ"
        out.append(what)
    return out[:5]


def assert_same_shards(mine: list[Path], theirs: list[Path]) -> None:
    """Byte-identical shards; on failure, which members differ and how (not a full dump)."""
    names = [p.name for p in mine], [p.name for p in theirs]
    assert names[0] == names[1]
    if [p.read_bytes() for p in mine] != [p.read_bytes() for p in theirs]:
        pytest.fail(
            "shards differ: " + "; ".join(differences(shard_members(mine), shard_members(theirs)))
        )


def assert_same_stack(unpacked: Path, exported: Path, tmp: Path, *args: str) -> None:
    """`stack` of an unpacked shard's case folder gives the volume `stack` gives from the files
    layout's folder of the same case: same voxels, same affine."""
    a, b = tmp / "from_shard.nii.gz", tmp / "from_files.nii.gz"
    assert main(["-q", "stack", str(unpacked), "-o", str(a), "--overwrite", *args]) == 0
    assert main(["-q", "stack", str(exported), "-o", str(b), "--overwrite", *args]) == 0
    mine, theirs = nib.load(a), nib.load(b)
    assert np.array_equal(mine.affine, theirs.affine)
    assert np.array_equal(np.asarray(mine.dataobj), np.asarray(theirs.dataobj))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return bids_tree(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def files_out(study: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("files") / "out"
    assert run(study[0], "-o", out, "--masks", study[1], *SPLIT, "-j", "2") == 0
    return out


@pytest.fixture(scope="module")
def shards_out(study: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "out"
    args = ["--masks", study[1], *SPLIT, "--layout", "webdataset", "-j", "1"]
    assert run(study[0], "-o", out, *args) == 0
    return out


# ---------------------------------------------------------------------------------------------
# files layout


@pytest.mark.slow
def test_files_layout_splits_by_subject(files_out: Path) -> None:
    doc = json.loads((files_out / "splits.json").read_text())
    assert doc["subjects"] == EXPECTED
    for split, subjects in EXPECTED.items():
        assert sorted(p.name for p in (files_out / split / "images").iterdir()) == subjects
        assert sorted(p.name for p in (files_out / split / "masks").iterdir()) == subjects


@pytest.mark.slow
def test_metadata_jsonl_lists_every_image_once_with_its_mask(files_out: Path) -> None:
    for split in EXPECTED:
        folder = files_out / split
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        pngs = sorted(p.relative_to(folder).as_posix() for p in folder.glob("images/**/*.png"))
        assert [r["file_name"] for r in rows] == pngs
        for r in rows[:: max(1, len(rows) // 20)]:
            assert (folder / r["mask_file_name"]).is_file()
            assert r["split"] == split and r["volume"] == 0
            assert r["source"].endswith(".nii.gz") and f"_{r['view']}_" in r["file_name"]
            assert f"_{r['index']:04d}.png" in r["file_name"]
            assert np.asarray(r["pixel_to_world"]).shape == (4, 4)


@pytest.mark.slow
def test_masks_are_aligned_exact_labels(
    study: tuple[Path, Path], files_out: Path, tmp_path: Path
) -> None:
    """The mask images equal the label map's own export: same grid in world space although
    scans and masks are stored in different voxel orders (sub-04 is P-I-R, its mask R-A-S)."""
    sub = "sub-04"
    assert ORDERS[3] == "PIR"
    mask_nii = study[1] / sub / "anat" / f"{sub}_T1w.nii.gz"
    assert run(mask_nii, "-o", tmp_path, "--label") == 0
    own = tmp_path / f"{sub}_T1w"
    exported = files_out / "train" / "masks" / sub / "anat" / f"{sub}_T1w"
    images = files_out / "train" / "images" / sub / "anat" / f"{sub}_T1w"
    for view in ("axial", "coronal", "sagittal"):
        names = sorted(p.name for p in (own / view).iterdir())
        assert names == sorted(p.name for p in (exported / view).iterdir())
        for name in names:
            assert (exported / view / name).read_bytes() == (own / view / name).read_bytes()
            assert (
                decode((images / view / name).read_bytes()).shape
                == decode((exported / view / name).read_bytes()).shape
            )
    values = np.unique(decode((exported / view / names[len(names) // 2]).read_bytes()))
    assert set(values.tolist()) == {0, 1, 2}


@pytest.mark.slow
def test_white_matter_label_sits_on_bright_anatomy(files_out: Path) -> None:
    base = files_out / "train"
    img = decode(next((base / "images").glob("sub-06/**/coronal/*_0020.png")).read_bytes())
    lab = decode(next((base / "masks").glob("sub-06/**/coronal/*_0020.png")).read_bytes())
    assert img[lab == 2].mean() > img[lab == 1].mean() > img[lab == 0].mean()


# ---------------------------------------------------------------------------------------------
# webdataset layout


@pytest.mark.slow
def test_shards_hold_the_files_layout_bytes(files_out: Path, shards_out: Path) -> None:
    assert json.loads((shards_out / "splits.json").read_text())["subjects"] == EXPECTED
    for split in EXPECTED:
        shards = shards_of(shards_out / split)
        assert [p.name for p in shards] == [f"{split}-000000.tar"]
        members = shard_members(shards)
        names = [n for n, _ in members]
        images = files_out / split / "images"
        pngs = sorted(images.glob("**/*.png"))
        assert sum(n.endswith(".mask.png") for n in names) == len(pngs)
        pairs: list[tuple[str, bytes]] = []  # (member, the files layout's bytes)
        for name, data in members:
            if name.endswith("/sidecar.json"):
                case = name[: -len("/sidecar.json")]
                stem = case.rsplit("/", 1)[-1]
                pairs.append((name, (images / case / f"{stem}.json").read_bytes()))
                continue
            head, _, last = name.rpartition("/")
            index, ext = last.split(".", 1)
            case, view = head.rsplit("/", 1)
            stem = case.rsplit("/", 1)[-1]
            file = f"{case}/{view}/{stem}_{view}_{index}.png"
            if ext == "png":
                pairs.append((name, (images / file).read_bytes()))
            elif ext == "mask.png":
                pairs.append((name, (files_out / split / "masks" / file).read_bytes()))
            else:
                meta = json.loads(data)
                assert ext == "json" and meta["split"] == split and meta["view"] == view
                assert meta["index"] == int(index) and "volume" not in meta
                assert set(meta) == {"source", "view", "index", "split", "spacing_mm",
                                     "pixel_to_world"}  # fmt: skip
                pairs.append((name, data))
        assert not differences(members, pairs)


@pytest.mark.slow
def test_shard_members_are_sorted_posix_tar_with_fixed_metadata(shards_out: Path) -> None:
    (shard,) = shards_of(shards_out / "train")
    with tarfile.open(shard) as tf:
        members = tf.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "", "", 0o644)
    }
    names = [m.name for m in members]
    cases = [n[: -len("/sidecar.json")] for n in names if n.endswith("/sidecar.json")]
    assert cases == sorted(cases) and len(cases) == 4
    first = [n for n in names if n.startswith(cases[0] + "/")]
    assert first[:3] == [f"{cases[0]}/axial/0000.{e}" for e in ("json", "mask.png", "png")]
    assert first[-1] == f"{cases[0]}/sidecar.json"
    keys = [n.split(".")[0] for n in first[:-1]]
    assert keys == sorted(keys)


@pytest.mark.slow
def test_stack_works_after_unpacking_a_shard(
    files_out: Path, shards_out: Path, tmp_path: Path
) -> None:
    (shard,) = shards_of(shards_out / "train")
    with tarfile.open(shard) as tf:
        tf.extractall(tmp_path / "unpacked", filter="data")
    case = "sub-04/anat/sub-04_T1w"  # stored P-I-R: stacking must put every voxel back
    unpacked, exported = tmp_path / "unpacked" / case, files_out / "train" / "images" / case
    assert (unpacked / "sidecar.json").is_file()
    assert_same_stack(unpacked, exported, tmp_path, "--view", "coronal")
    assert_same_stack(unpacked / "axial", exported / "axial", tmp_path)  # one view's folder


@pytest.mark.slow
def test_shards_are_identical_whatever_jobs(
    study: tuple[Path, Path], shards_out: Path, tmp_path: Path
) -> None:
    out = tmp_path / "again"
    args = ["--masks", study[1], *SPLIT, "--layout", "webdataset", "-j", "2"]
    assert run(study[0], "-o", out, *args) == 0
    mine = [p.relative_to(out) for p in shards_of(out)]
    assert mine == [p.relative_to(shards_out) for p in shards_of(shards_out)]
    assert_same_shards([out / rel for rel in mine], [shards_out / rel for rel in mine])
    assert not [p for p in out.rglob(".*")]  # no spools or temporary shards left


@pytest.mark.slow  # importing webdataset (and torch with it) takes seconds
def test_webdataset_library_reads_the_shards(files_out: Path, shards_out: Path) -> None:
    wds = pytest.importorskip("webdataset")
    urls = [str(p) for p in shards_of(shards_out / "train")]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    images = [s for s in samples if "png" in s]
    sidecars = [s for s in samples if "png" not in s]  # one per case, only "json"
    assert len(images) == len(list((files_out / "train" / "images").rglob("*.png")))
    assert [s["__key__"].rsplit("/", 1)[-1] for s in sidecars] == ["sidecar"] * 4
    s = images[5]
    image, mask = decode(s["png"]), decode(s["mask.png"])
    assert image.shape == mask.shape and image.dtype == np.uint8
    meta = json.loads(s["json"])
    assert s["__key__"].endswith(f"/{meta['view']}/{meta['index']:04d}")


@pytest.mark.slow
def test_shard_size_rolls_over_and_keeps_the_sample_order(
    study: tuple[Path, Path], shards_out: Path, tmp_path: Path
) -> None:
    out = tmp_path / "small"
    args = ["--masks", study[1], *SPLIT, "--layout", "webdataset", "--shard-size", "100"]
    assert run(study[0], "-o", out, *args) == 0
    shards = shards_of(out / "train")
    assert len(shards) > 3 and shards[1].name == "train-000001.tar"
    for p in shards:
        with tarfile.open(p) as tf:
            assert sum(n.endswith(".png") and ".mask." not in n for n in tf.getnames()) <= 100
    theirs = shards_of(shards_out / "train")
    assert not differences(shard_members(shards), shard_members(theirs))
    by_bytes = tmp_path / "bytes"
    args = ["--masks", study[1], *SPLIT, "--layout", "webdataset", "--shard-size", "200KB"]
    assert run(study[0], "-o", by_bytes, *args) == 0
    shards = shards_of(by_bytes / "train")
    assert len(shards) > 3 and all(p.stat().st_size <= 200_000 for p in shards)
    assert not differences(shard_members(shards), shard_members(theirs))


@pytest.mark.slow  # five conversions of the study
def test_skip_existing_resumes_at_the_case_level(study: tuple[Path, Path], tmp_path: Path) -> None:
    """Convert 4 subjects, add 2 and resume: the first 4 are kept from the shards and the
    shards equal a fresh run's. A resume after losing the last shard converts what it held."""
    bids = tmp_path / "bids"
    for sub in SUBJECTS[:4]:
        shutil.copytree(study[0] / sub, bids / sub)
    out = tmp_path / "out"
    args = ["--masks", study[1], *SPLIT, "--layout", "webdataset", "--shard-size", "150"]
    assert run(bids, "-o", out, *args) == 0
    for sub in SUBJECTS[4:]:
        shutil.copytree(study[0] / sub, bids / sub)
    assert run(bids, "-o", out, *args) == 1  # shards exist: refused, nothing touched
    report = tmp_path / "report.json"
    assert run(bids, "-o", out, *args, "--skip-existing", "--report", report) == 0
    statuses = [r["status"] for r in json.loads(report.read_text())["inputs"]]
    assert statuses == ["skipped"] * 4 + ["converted"] * 2
    fresh = tmp_path / "fresh"
    assert run(bids, "-o", fresh, *args) == 0

    def same() -> None:
        shards = shards_of(fresh)
        assert [p.relative_to(fresh) for p in shards] == [
            p.relative_to(out) for p in shards_of(out)
        ]
        assert_same_shards([out / p.relative_to(fresh) for p in shards], shards)

    same()
    last = shards_of(out / "train")[-1]
    assert last.name == "train-000002.tar"
    with tarfile.open(last) as tf:
        lost = sum(n.endswith("/sidecar.json") for n in tf.getnames())
    last.unlink()
    assert run(bids, "-o", out, *args, "--skip-existing", "--report", report) == 0
    statuses = [r["status"] for r in json.loads(report.read_text())["inputs"]]
    assert statuses.count("converted") == lost > 0  # the cases whose sidecar was lost
    same()


# ---------------------------------------------------------------------------------------------
# pairing in a run, nnU-Net, 4D


@pytest.mark.slow
def test_missing_mask_fails_that_input_only(
    study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    masks = tmp_path / "masks"
    for sub in SUBJECTS[1:]:
        shutil.copytree(study[1] / sub, masks / sub)
    out = tmp_path / "out"
    assert run(study[0], "-o", out, "--masks", masks, "--layout", "webdataset") == 1
    err = capsys.readouterr().err
    assert err.count("error") == 1 and "sub-01_T1w.nii.gz: no mask sub-01_T1w.nii[.gz]" in err
    with tarfile.open(out / "shard-000000.tar") as tf:
        cases = [n for n in tf.getnames() if n.endswith("sidecar.json")]
    assert len(cases) == 5 and not any(c.startswith("sub-01/") for c in cases)
    out2 = tmp_path / "out2"
    assert run(study[0], "-o", out2, "--masks", masks, "--allow-missing-masks") == 0
    assert (out2 / "images" / "sub-01").is_dir() and not (out2 / "masks" / "sub-01").exists()
    rows = (out2 / "metadata.jsonl").read_text().splitlines()
    assert sum('"mask_file_name"' not in r for r in rows) == sum(
        1 for _ in (out2 / "images" / "sub-01").glob("**/*.png")
    )


@pytest.mark.slow
def test_nnunet_channels_share_their_label_and_split(tmp_path: Path) -> None:
    images, labels = nnunet_tree(tmp_path / "raw", cases=3)
    out = tmp_path / "out"
    args = ["--masks", labels, "--split", "a=0.5,b=0.5", "--split-seed", "1"]
    assert run(images, "-o", out, *args, "--layout", "webdataset", "--views", "axial") == 0
    doc = json.loads((out / "splits.json").read_text())
    subjects = sorted(s for v in doc["subjects"].values() for s in v)
    assert subjects == ["case_000", "case_001", "case_002"]
    for split, cases in doc["subjects"].items():
        names = [n for n, _ in shard_members(shards_of(out / split))]
        for case in cases:
            for ch in ("0000", "0001"):
                key = f"{case}_{ch}/axial/0010"
                assert f"{key}.png" in names and f"{key}.mask.png" in names
        masks = {d for n, d in shard_members(shards_of(out / split)) if n.endswith("0010.mask.png")}
        assert len(masks) == 1  # every channel of every case: the same label image


def test_subjects_come_from_below_the_input_folder(tmp_path: Path) -> None:
    """A folder above the input folder that looks like a BIDS subject (``sub-sampled``) says
    where the data is stored, not who was scanned: the cases are the subjects."""
    images, labels = nnunet_tree(tmp_path / "sub-sampled", cases=3)
    out = tmp_path / "out"
    args = ["--masks", labels, "--split", "a=0.5,b=0.5", "--views", "axial"]
    assert run(images, "-o", out, *args, "--layout", "webdataset") == 0
    doc = json.loads((out / "splits.json").read_text())
    assert sorted(s for v in doc["subjects"].values() for s in v) == [
        "case_000",
        "case_001",
        "case_002",
    ]


def test_sessions_of_a_subject_share_its_split(tmp_path: Path) -> None:
    """Two sessions per subject (BIDS ``sub-XX/ses-Y/anat``): a subject's sessions all land in
    the split of its ``sub-<label>``, and no subject is in two splits."""
    _, aff = head()
    bids = tmp_path / "bids"
    for i, sub in enumerate(SUBJECTS):
        for ses in ("1", "2"):
            name = f"{sub}_ses-{ses}_T1w.nii.gz"
            write(bids / sub / f"ses-{ses}" / "anat" / name, subject_image(i), aff, ORDERS[i])
    out = tmp_path / "out"
    assert run(bids, "-o", out, *SPLIT, "--views", "axial", "--layout", "webdataset") == 0
    assert json.loads((out / "splits.json").read_text())["subjects"] == EXPECTED
    for split, subjects in EXPECTED.items():
        members = shard_members(shards_of(out / split))
        sessions = {n.split("/anat/")[0] for n, _ in members}
        assert sessions == {f"{s}/ses-{x}" for s in subjects for x in "12"}
        splits = {json.loads(d)["split"] for n, d in members if n.endswith("0005.json")}
        assert splits == {split}


def test_4d_series_in_shards(tmp_path: Path) -> None:
    src = series_4d(tmp_path / "in" / "bold.nii.gz", frames=3)
    files, shards = tmp_path / "files", tmp_path / "shards"
    assert run(src, "-o", files, "--views", "sagittal") == 0
    assert run(src, "-o", shards, "--views", "sagittal", "--layout", "webdataset") == 0
    members = dict(shard_members([shards / "shard-000000.tar"]))
    meta = json.loads(members["bold/sagittal/t0002_0005.json"])
    assert meta["volume"] == 2 and meta["index"] == 5 and "split" not in meta
    assert (
        members["bold/sagittal/t0002_0005.png"]
        == (files / "bold" / "sagittal" / "bold_t0002_sagittal_0005.png").read_bytes()
    )
    pngs = [n for n in members if n.endswith(".png")]
    assert len(pngs) == len(list((files / "bold" / "sagittal").iterdir()))
    # unpacked, the shard is a folder that `stack` reads as it reads the files layout
    with tarfile.open(shards / "shard-000000.tar") as tf:
        tf.extractall(tmp_path / "unpacked", filter="data")
    assert_same_stack(tmp_path / "unpacked" / "bold", files / "bold", tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "train=0.7,val=0.2"], "split: fractions must sum to 1"),
        (["--layout", "webdataset", "--montage"], "layout: --montage"),
        (["--allow-missing-masks"], "allow-missing-masks: needs --masks"),
        (["--layout", "webdataset", "--shard-size", "lots"], "shard-size: expected"),
        (["--masks", "/nonexistent/masks"], "masks: no such folder"),
    ],
)
def test_bad_training_options_are_one_line(
    args: list[str], message: str, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sample, "-o", tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
