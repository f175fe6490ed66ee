"""Images back into a NIfTI volume on the source grid (``niftislice stack``).

The sidecar says how every pixel maps to world space (:mod:`.stacking_geometry` inverts that),
which intensity mapping made the pixels, and the source's shape, affine, qform/sform codes, units
and dtype. Images may come from another program (a network's predicted masks, say) as long as they
keep the exported names (any image extension) and sizes.

Conventions:

- ``values="data"`` inverts the intensity mapping (``data = offset + pixel * scale``) and stores
  the source dtype when the values fit it (scl_slope/inter reset: values are in data units);
  ``values="pixel"`` keeps pixel values in the images' dtype.
- Label exports (and ``interp="nearest"``) are sampled by nearest neighbour, others linearly;
  native-spacing exports land on whole pixels and come back bit for bit either way.
- 4D exports give a 4D result holding the exported volumes in order; ``volume=T`` gives the 3D
  volume ``T`` (the source's volume index, as in ``_t0003`` file names).
- Slices without an image are filled with ``fill`` (output units) and reported as a warning,
  except slices left out by ``--skip-empty``, which were blank (pixel 0) and come back as such.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._nib import nib
from ..errors import InputError, OptionError
from ..options import View
from .geometry import check_coverage, plane_map, sample, slice_matrices
from .output import check_output_path, nifti_image, output_values, save_atomically
from .sources import ImageFinder, find_sidecar, load_sidecar, read_image

log = logging.getLogger(__name__)

_CHANNELS = {"r": 0, "g": 1, "b": 2, "a": 3, "red": 0, "green": 1, "blue": 2, "alpha": 3}


@dataclass(frozen=True)
class StackOptions:
    """How to stack; validated on construction (messages name the option and the value)."""

    view: View | str | None = None  # None: the only view, or the one the folder is named after
    values: str = "data"  # "data": invert the intensity mapping; "pixel": keep pixel values
    channel: int | str | None = None  # colour images: which channel (0-3 or r, g, b, a)
    fill: float = 0.0  # value for slices without an image, in output units
    volume: int | None = None  # 4D: one source volume index; None: every exported volume
    interp: str = "auto"  # auto (nearest for labels), nearest or linear
    overwrite: bool = False

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.view is not None:
            try:
                s(self, "view", View(str(getattr(self.view, "value", self.view)).strip().lower()))
            except ValueError:
                raise OptionError(
                    f"view: expected axial, coronal or sagittal, got {self.view!r}"
                ) from None
        if self.values not in ("data", "pixel"):
            raise OptionError(f"values: expected data or pixel, got {self.values!r}")
        if self.interp not in ("auto", "nearest", "linear"):
            raise OptionError(f"interp: expected auto, nearest or linear, got {self.interp!r}")
        if self.channel is not None:
            s(self, "channel", _parse_channel(self.channel))
        try:
            fill = float(self.fill)
        except (TypeError, ValueError):
            fill = math.nan
        if not math.isfinite(fill):
            raise OptionError(f"fill: expected a finite number, got {self.fill!r}")
        s(self, "fill", fill)
        if self.volume is not None and (not isinstance(self.volume, int) or self.volume < 0):
            raise OptionError(f"volume: expected a volume index >= 0, got {self.volume!r}")


def _parse_channel(value: int | str) -> int:
    t = str(value).strip().lower()
    if t in _CHANNELS:
        return _CHANNELS[t]
    if t.isdigit() and int(t) <= 3:
        return int(t)
    raise OptionError(f"channel: expected 0-3 or r, g, b, a, got {value!r}")


@dataclass(frozen=True)
class StackResult:
    image: nib.Nifti1Image
    path: Path | None
    view: View
    volumes: tuple[int, ...] | None  # source volume indices stacked (None: 3D source)
    images_read: int
    filled_slices: int
    warnings: tuple[str, ...]


def stack_folder(
    folder: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    options: StackOptions = StackOptions(),
    *,
    sidecar: str | os.PathLike[str] | None = None,
) -> StackResult:
    """Stack one view's images in ``folder`` into a volume; write it to ``out_path`` if given."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("not a folder" if root.exists() else "folder not found")
    out = check_output_path(out_path, options.overwrite) if out_path is not None else None
    sc_path = find_sidecar(root, Path(sidecar) if sidecar is not None else None)
    sc = load_sidecar(sc_path)
    source, intensity, output = sc["source"], sc["intensity"], sc["output"]
    if options.values == "data" and intensity.get("kind") == "rgb":
        raise InputError(
            f"{sc_path.name}: a colour (RGB) source cannot be stacked as data; use --values pixel"
        )
    finder = ImageFinder(root)
    view = _choose_view(sc, root, options.view, finder)
    ventry = sc["views"][view.value]
    warnings: list[str] = []

    shape = _spatial(source["shape"])
    n_slices = int(ventry["n_slices_in_volume"])
    entries = {int(e["index"]): e for e in ventry["slices"]}
    mats = slice_matrices(
        {k: np.array(e["pixel_to_world"], dtype=np.float64) for k, e in entries.items()}, n_slices
    )
    affine = np.array(source["affine"], dtype=np.float64)
    maps = [plane_map(mats[k], affine, shape, f"{view.value} slice {k}") for k in range(n_slices)]
    axis = check_coverage(maps, shape, view.value)

    exported = output.get("volumes")
    volumes = _choose_volumes(exported, options.volume, warnings, source["shape"])
    nearest = options.interp == "nearest" or (
        options.interp == "auto"
        and (bool(output.get("label")) or output.get("interpolation") == "nearest")
    )
    blank = _blank_slices(ventry, output)
    width, height = (int(v) for v in ventry["image_size"])
    finder.add(root / _folder_of(sc, view.value))

    n_out = len(volumes) if volumes is not None and options.volume is None else 0
    acc = np.zeros(shape + ((n_out,) if n_out else ()), dtype=np.float32)
    holes: list[tuple[int, int]] = []  # (volume position, slice k) without an image
    img_dtype: np.dtype | None = None
    read = 0
    for pos, t in enumerate(volumes if volumes is not None else [None]):
        planes = np.moveaxis(acc[..., pos] if n_out else acc, axis, 0)  # a view: writes land in acc
        for k, pm in enumerate(maps):
            name = _file_of(entries.get(k), t)
            path = finder.find(name) if name is not None else None
            if path is None:
                if name is not None or k not in blank:  # blank: skipped as empty, stays pixel 0
                    holes.append((pos, k))
                continue
            img = read_image(path, root, (width, height), options.channel)
            img_dtype = img.dtype if img_dtype is None else np.promote_types(img_dtype, img.dtype)
            planes[pm.index] = sample(img, pm, nearest)
            read += 1
    if read == 0:
        example = _file_of(next(iter(entries.values()), None), volumes[0] if volumes else None)
        raise InputError(
            f"no {view.value} images in this folder or its {_folder_of(sc, view.value)}/ "
            f"sub-folder (looked for the sidecar's names, e.g. {example})"
        )
    if holes:
        warnings.append(_holes_message(holes, volumes, n_out, view, options.fill, n_slices))
    bits = int(output.get("bit_depth") or 0)
    img_bits = img_dtype.itemsize * 8 if img_dtype is not None and img_dtype.kind == "u" else bits
    if options.values == "data" and img_bits != bits:
        warnings.append(
            f"the images are {img_bits}-bit but the export was {bits}-bit; "
            "--values data reads them on the export's pixel scale (--values pixel keeps them)"
        )

    fill = options.fill if holes else None
    data, slope, inter = output_values(
        acc, options.values, fill, intensity, source, img_dtype or np.dtype(np.uint8), warnings
    )
    for pos, k in holes:
        target = data[..., pos] if n_out else data
        np.moveaxis(target, axis, 0)[maps[k].index] = (options.fill - inter) / slope
    if len(source["shape"]) < 3:
        data = data.reshape(tuple(source["shape"]))
    image = nifti_image(data, source, view, options.values, (slope, inter))
    if out is not None:
        save_atomically(image, out)
    return StackResult(
        image,
        out,
        view,
        tuple(volumes) if volumes is not None else None,
        read,
        len(holes),
        tuple(warnings),
    )


# --------------------------------------------------------------------------------------------
# choosing what to stack


def _choose_view(
    sc: dict[str, Any], root: Path, requested: View | str | None, finder: ImageFinder
) -> View:
    names = list(sc["views"])
    if requested is not None:
        v = View(requested)
        if v.value not in names:
            raise OptionError(
                f"view: {v.value} was not exported (the sidecar has {', '.join(names)})"
            )
        return v
    if len(names) == 1:
        return View(names[0])
    folders = {_folder_of(sc, n): n for n in names}
    if root.name in folders:
        return View(folders[root.name])
    present = [
        n for n in names if finder.has_any(root / _folder_of(sc, n), _names_of(sc["views"][n]))
    ]
    if len(present) == 1:
        return View(present[0])
    raise OptionError(
        f"view: {root} holds several views ({', '.join(present or names)}); choose one with --view"
    )


def _folder_of(sc: dict[str, Any], view: str) -> str:
    return str(sc["views"][view].get("folder", view))


def _names_of(ventry: dict[str, Any]) -> Iterable[str]:
    for e in ventry["slices"]:
        if "file" in e:
            yield e["file"]
        else:
            yield from e.get("files", {}).values()


def _choose_volumes(
    exported: list[int] | None, wanted: int | None, warnings: list[str], shape: list[int]
) -> list[int] | None:
    if exported is None:
        if wanted not in (None, 0):
            raise OptionError(f"volume: the source is 3D, there is no volume {wanted}")
        return None
    if wanted is not None:
        if wanted not in exported:
            raise OptionError(f"volume: {wanted} was not exported (exported: {_ranges(exported)})")
        return [wanted]
    n_source = int(np.prod(shape[3:]))
    if len(exported) != n_source:
        warnings.append(
            f"the export holds volumes {_ranges(exported)} of {n_source}; the result has these only"
        )
    if len(shape) > 4:
        warnings.append(
            f"{len(shape)}D source: dimensions beyond the 4th come back flattened into one"
        )
    return list(exported)


def _blank_slices(ventry: dict[str, Any], output: dict[str, Any]) -> set[int]:
    """Slices selected but not written because they were empty (pixel 0 everywhere)."""
    sel = ventry.get("selected_slices")
    if not output.get("skip_empty") or not sel:
        return set()
    return set(range(int(sel["start"]), int(sel["stop"]), int(sel["step"])))


def _file_of(entry: dict[str, Any] | None, t: int | None) -> str | None:
    if entry is None:
        return None
    if t is None:
        return entry.get("file")
    return entry.get("files", {}).get(str(t))


def _spatial(shape: list[int]) -> tuple[int, int, int]:
    s = [int(v) for v in shape[:3]] + [1, 1]
    return (s[0], s[1], s[2])


# --------------------------------------------------------------------------------------------
# messages


def _holes_message(
    holes: list[tuple[int, int]],
    volumes: list[int] | None,
    n_out: int,
    view: View,
    fill: float,
    n_slices: int,
) -> str:
    by_pos: dict[int, list[int]] = {}
    for pos, k in holes:
        by_pos.setdefault(pos, []).append(k)
    if not n_out:
        ks = by_pos[next(iter(by_pos))]
        where = f"{len(ks)} of {n_slices} {view.value} slices have no image ({_ranges(ks)})"
    else:
        assert volumes is not None
        parts = [f"volume {volumes[pos]}: {_ranges(ks)}" for pos, ks in sorted(by_pos.items())]
        more = "; ..." if len(parts) > 8 else ""
        where = f"{len(holes)} {view.value} slice images are missing ({'; '.join(parts[:8])}{more})"
    return f"{where}; filled with {fill:g}"


def _ranges(values: Iterable[int], limit: int = 12) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2, 5, 7-8`` (at most ``limit`` runs)."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    return ", ".join(text) + (", ..." if len(runs) > limit else "")
