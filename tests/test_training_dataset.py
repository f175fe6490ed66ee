"""SliceDataset gives the exported images; DataLoader workers and Hugging Face load them."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _training_helpers import bids_tree, head, labels, nnunet_tree, series_4d, write

import niftislice
import niftislice.export
import niftislice.plan
import niftislice.training.dataset
import niftislice.volume
from niftislice.cli import main
from niftislice.encoding import decode
from niftislice.errors import InputError, OptionError
from niftislice.training import SliceDataset


def run(*args: object) -> int:
    return main(["-q", "convert", *map(str, args)])


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return bids_tree(tmp_path_factory.mktemp("study"), n=3)


def exported(out: Path, meta: dict, tree: str = "images") -> Path:
    case, view = meta["case"], meta["view"]
    stem = case.rsplit("/", 1)[-1]
    return out / tree / case / view / f"{stem}_{view}_{meta['index']:04d}.png"


@pytest.mark.slow
def test_items_are_the_exported_images_and_masks(study: tuple[Path, Path], tmp_path: Path) -> None:
    bids, masks = study
    assert run(bids, "-o", tmp_path, "--masks", masks) == 0
    ds = SliceDataset(bids, masks=masks)
    n_files = len(list((tmp_path / "images").rglob("*.png")))
    assert len(ds) == n_files
    for i in range(0, len(ds), 7):
        item = ds[i]
        meta = item["meta"]
        assert np.array_equal(item["image"], decode(exported(tmp_path, meta).read_bytes()))
        assert np.array_equal(item["mask"], decode(exported(tmp_path, meta, "masks").read_bytes()))
        assert meta["pixel_to_world"].shape == (4, 4) and meta["spacing_mm"].shape == (2,)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_4d_items_share_the_series_window(tmp_path: Path) -> None:
    src = series_4d(tmp_path / "in" / "bold.nii.gz", frames=3)
    assert run(src, "-o", tmp_path / "out", "--views", "axial") == 0
    ds = SliceDataset(src, views="axial", cache_size=1)  # every new volume is read again
    assert len(ds) == len(list((tmp_path / "out" / "bold" / "axial").iterdir())) == 3 * 32
    for i in (0, len(ds) // 2, len(ds) - 1, 1, len(ds) - 2, len(ds) // 2):  # back and forth
        meta = ds[i]["meta"]
        name = f"bold_t{meta['volume']:04d}_axial_{meta['index']:04d}.png"
        png = decode((tmp_path / "out" / "bold" / "axial" / name).read_bytes())
        assert np.array_equal(ds[i]["image"], png)


def _series_with_mask(root: Path, frames: int = 4) -> tuple[Path, Path, Path]:
    """A 4D series, its label map (3D, stored LPS) and its export with masks: (src, masks, out)."""
    src = series_4d(root / "in" / "bold.nii.gz", frames=frames)
    _, aff = head()
    masks = write(root / "masks" / "bold.nii.gz", labels(), aff, "LPS").parent
    assert run(src, "-o", root / "out", "--masks", masks) == 0
    return src, masks, root / "out"


def _exported_4d(out: Path, meta: dict, tree: str) -> np.ndarray:
    view, name = meta["view"], f"bold_t{meta['volume']:04d}_{meta['view']}_{meta['index']:04d}"
    return decode((out / tree / "bold" / view / f"{name}.png").read_bytes())


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], list[object]]:
    """Every pass over a file's voxels from now on (the dataset's and the plan's), and every
    time a header is read (the dataset's and its volumes')."""
    passes: list[object] = []
    headers: list[object] = []
    real_iter, real_open = niftislice.plan.iter_volumes, niftislice.volume.open_source

    def counting(*args: object, **kwargs: object) -> object:
        passes.append(args[1] if len(args) > 1 else None)
        return real_iter(*args, **kwargs)

    def opening(*args: object, **kwargs: object) -> object:
        headers.append(args[0])
        return real_open(*args, **kwargs)

    for module in (niftislice.plan, niftislice.training.dataset):
        monkeypatch.setattr(module, "iter_volumes", counting)
    for module in (niftislice.volume, niftislice.training.dataset):
        monkeypatch.setattr(module, "open_source", opening)
    return passes, headers


def test_4d_series_within_and_beyond_the_hold_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series whose volumes fit ``HOLD_BYTES`` is decompressed once for its window and every
    slice, asked for in shuffled order; with the budget one volume short of it, it is streamed
    as before (window pass, then front to back). Both give the same items (image, mask and
    meta), and every item is the exported image and mask."""
    src, masks, out = _series_with_mask(tmp_path)
    volume_bytes = int(np.prod(head()[0].shape)) * 2  # int16
    assert 4 * volume_bytes <= niftislice.export.HOLD_BYTES
    held = SliceDataset(src, masks=masks)
    passes, headers = _count_reads(monkeypatch)
    order = np.random.default_rng(7).permutation(len(held))
    items = [held[int(i)] for i in order]
    assert len(passes) == 1 and held._held is not None
    assert len(headers) == 1  # the series' header, kept by its plan for every volume
    for item in items:
        assert np.array_equal(item["image"], _exported_4d(out, item["meta"], "images"))
        assert np.array_equal(item["mask"], _exported_4d(out, item["meta"], "masks"))
    monkeypatch.setattr(niftislice.export, "HOLD_BYTES", 4 * volume_bytes - 1)
    streamed = SliceDataset(src, masks=masks, cache_size=64)
    passes.clear()
    headers.clear()
    for i in range(len(streamed)):  # in order: the window's pass, then one front to back
        streamed[i]
    assert len(passes) == 2 and len(headers) == 1 and streamed._held is None
    streamed = SliceDataset(src, masks=masks, cache_size=1)  # shuffled: reads start again
    for i, item in zip(order[:60], items, strict=False):
        other = streamed[int(i)]
        assert np.array_equal(item["image"], other["image"])
        assert np.array_equal(item["mask"], other["mask"])
        assert item["meta"].keys() == other["meta"].keys()
        for key, value in item["meta"].items():
            assert np.array_equal(value, other["meta"][key]), key
    assert {it["meta"]["volume"] for it in items[:60]} == {0, 1, 2, 3}


def test_a_held_series_is_not_pickled_and_is_dropped_for_the_next(tmp_path: Path) -> None:
    """What a DataLoader worker gets holds no volume; the clone reads the series itself. Reading
    another series drops the one held (at most one per process)."""
    src, _, _ = _series_with_mask(tmp_path)
    other = series_4d(tmp_path / "in" / "rest.nii.gz", frames=2)
    ds = SliceDataset([src, other], views="axial", cache_size=1)
    first = ds[5]["image"]
    assert ds._held is not None and ds._held.file == 0
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # no volume inside
    clone = pickle.loads(blob)
    assert clone._held is None and np.array_equal(clone[5]["image"], first)
    ds[len(ds) - 1]  # a slice of the second series
    assert ds._held is not None and ds._held.file == 1
    assert set(ds._held.volumes) == {0, 1}


def test_nnunet_masks_by_name_and_missing_masks(tmp_path: Path) -> None:
    images, labels = nnunet_tree(tmp_path, cases=2)
    ds = SliceDataset(images, masks=labels, views="axial")
    assert len({ds[i]["meta"]["case"] for i in range(len(ds))}) == 4
    assert all("mask" in ds[i] for i in (0, len(ds) - 1))
    (labels / "case_001.nii.gz").unlink()
    with pytest.raises(InputError, match=r"case_001_0000\.nii\.gz: no mask"):
        SliceDataset(images, masks=labels)
    ds = SliceDataset(images, masks=labels, views="axial", allow_missing_masks=True)
    assert "mask" not in ds[len(ds) - 1] and "mask" in ds[0]


def test_options_and_cache(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="skip-empty"):
        SliceDataset(sample, options=niftislice.ConvertOptions(skip_empty=True))
    (tmp_path / "notes.txt").write_text("no volume here\n")
    empty = tmp_path
    with pytest.raises(OptionError, match=rf"no input volumes found in {empty} \(searched for"):
        SliceDataset(empty)
    ds = SliceDataset(sample, views="coronal", cache_size=1)
    assert repr(ds) == "SliceDataset(1 volumes, 233 slices, views coronal)"
    a = ds[100]["image"]
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker gets
    assert clone._cache == {} and np.array_equal(clone[100]["image"], a)
    assert len(pickle.dumps(ds)) < 20_000  # no volume inside


@pytest.mark.slow  # torch's import and two worker processes
def test_torch_dataloader_with_two_workers(study: tuple[Path, Path]) -> None:
    torch = pytest.importorskip("torch")
    bids, masks = study
    ds = SliceDataset(bids, masks=masks, views="axial")
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    seen = 0
    for batch in loader:
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (39, 32)
        assert batch["mask"].shape == batch["image"].shape
        assert batch["meta"]["pixel_to_world"].shape[1:] == (4, 4)
        if seen == 0:
            assert np.array_equal(batch["image"][3].numpy(), ds[3]["image"])
        seen += len(batch["image"])
    assert seen == len(ds)


@pytest.mark.slow  # torch's import and two spawned worker processes
def test_shuffled_dataloader_over_a_4d_series(tmp_path: Path) -> None:
    """A shuffled sampler and spawned workers (the dataset pickled, after the parent has held the
    series): every slice comes once, each the exported image and mask."""
    torch = pytest.importorskip("torch")
    src, masks, out = _series_with_mask(tmp_path, frames=3)
    ds = SliceDataset(src, masks=masks, views="coronal")
    ds[0]
    assert ds._held is not None
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=None,
        shuffle=True,
        num_workers=2,
        multiprocessing_context="spawn",
        generator=torch.Generator().manual_seed(3),
    )
    seen = []
    for item in loader:
        meta = item["meta"]
        meta = {"view": meta["view"], "volume": int(meta["volume"]), "index": int(meta["index"])}
        assert np.array_equal(item["image"].numpy(), _exported_4d(out, meta, "images"))
        assert np.array_equal(item["mask"].numpy(), _exported_4d(out, meta, "masks"))
        seen.append((meta["volume"], meta["index"]))
    assert len(seen) == len(set(seen)) == len(ds) and seen != sorted(seen)


@pytest.mark.slow  # importing datasets takes seconds
def test_hugging_face_imagefolder_loads_splits_and_metadata(
    study: tuple[Path, Path], tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    bids, masks = study
    out = tmp_path / "out"
    args = ["--masks", masks, "--split", "train=0.5,test=0.5", "--split-seed", "3"]
    assert run(bids, "-o", out, *args, "--views", "axial") == 0
    ds = datasets.load_dataset("imagefolder", data_dir=str(out))
    assert sorted(ds) == ["test", "train"]
    for split in ds:
        rows = (out / split / "metadata.jsonl").read_text().splitlines()
        assert ds[split].num_rows == len(rows)
    row = ds["train"][5]
    assert set(row) >= {"image", "mask", "source", "view", "index", "split", "pixel_to_world"}
    assert row["split"] == "train" and row["view"] == "axial"
    image, mask = np.asarray(row["image"]), np.asarray(row["mask"])
    assert image.shape == mask.shape and set(np.unique(mask).tolist()) <= {0, 1, 2}


_LAZY_PROBE = """
import json, sys
from niftislice.training import SliceDataset
ds = SliceDataset(sys.argv[1], masks=sys.argv[2])
out = {"n": len(ds), "first": ds[0]["image"].shape}
try:
    ds[len(ds) - 1]
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_made_from_headers_and_never_imports_torch(tmp_path: Path) -> None:
    """Making the dataset reads headers only: a scan whose data is cut short is counted, and
    fails, naming its file, only when one of its slices is asked for; the other scan's slices
    are there. In a fresh interpreter, none of it imports torch."""
    bids, masks = bids_tree(tmp_path, n=2)
    broken = bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the header is whole, the voxels are not
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(niftislice.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [sys.executable, "-c", _LAZY_PROBE, str(bids), str(masks)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["n"] == 2 * (32 + 39 + 32) and out["first"] == [39, 32]
    assert out["error"].startswith(f"InputError: {broken}: ") and "truncated" in out["error"]
    assert out["torch"] is False
