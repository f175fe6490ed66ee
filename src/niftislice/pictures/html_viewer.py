"""A self-contained viewer page, ``OUT/<stem>/index.html``, for browsing the exported images.

The page works offline from the output folder (``file://`` or any static server): styles and
script are inline, the data it needs is embedded as JSON, and images are referenced by their
relative paths (``axial/<stem>_axial_0042.png``). Per view it shows a slider (arrow keys move the
selected view), the slice index, the slice's world coordinate along its axis and the world
position of the image centre (both from the sidecar's ``pixel_to_world``), the world position
under the pointer, the orientation letters, and the sidecar's metadata.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..naming import display_name

_TEMPLATE = "viewer.html"
_PLACEHOLDER = re.compile(r"\{\{(TITLE|DATA)\}\}")


def _round(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) + 0.0 for v in values]


def _view_data(name: str, v: dict[str, Any]) -> dict[str, Any]:
    geo = v["geometry"]
    width, height = v["image_size"]
    slices = []
    for s in v["slices"]:
        m = np.asarray(s["pixel_to_world"], dtype=np.float64)
        centre = m @ np.array([(width - 1) / 2.0, (height - 1) / 2.0, 0.0, 1.0])
        files_ = s["files"] if "files" in s else {"0": s["file"]}
        slices.append({"k": s["index"], "files": files_, "centre": _round(centre[:3], 2)})
    first = v["slices"][0]["pixel_to_world"] if v["slices"] else None
    return {
        "name": name,
        "folder": v["folder"],
        "size": [width, height],
        "spacing": v["pixel_spacing_mm"],
        "n_slices": v["n_slices_in_volume"],
        "slice_axis": geo["slice_axis"],
        "letters": geo["orientation_letters"],
        # pixel (column, row, k - first index, 1) -> world mm, for the pointer position
        "p2w_first": first,
        "first_index": v["slices"][0]["index"] if v["slices"] else 0,
        "slices": slices,
    }


def _voxel_size_label(src: dict[str, Any]) -> str:
    """The header's own unit; a header that names none has its sizes taken as mm (and says so)."""
    units = str((src.get("units") or {}).get("space", "unknown"))
    return (
        "voxel size (unknown units, used as mm)" if units == "unknown" else f"voxel size ({units})"
    )


def _metadata(sidecar: dict[str, Any]) -> list[list[str]]:
    src, ori, inten, out = (
        sidecar["source"],
        sidecar["orientation"],
        sidecar["intensity"],
        sidecar["output"],
    )
    rows = [
        ["source", display_name(str(src.get("path", "")))],
        ["shape", " x ".join(str(n) for n in src["shape"])],
        ["data type", str(src["dtype"])],
        [_voxel_size_label(src), " x ".join(f"{float(z):g}" for z in src["voxel_sizes"][:3])],
        [
            "stored orientation",
            f"{ori['source_axcodes']} (shown as RAS+, {ori['display']} display)",
        ],
        ["affine from", str(src.get("affine_source", ""))],
    ]
    if ori.get("oblique"):
        rows.append(["oblique", f"{ori['obliquity_deg']:.2f}° off the closest axes, not resampled"])
    if inten.get("kind") in ("window", "lossless", "label"):
        rows.append(
            [
                "intensity",
                f"{inten['kind']}: {inten['low']:.6g} .. {inten['high']:.6g} → "
                f"0 .. {inten['out_max']} ({inten.get('method', '')})",
            ]
        )
    else:
        rows.append(["intensity", str(inten.get("note", inten.get("kind", "")))])
    rows.append(
        [
            "images",
            f"{out['format']}, {out['bit_depth']}-bit, {out['interpolation']} interpolation, "
            f"spacing {out['spacing']}",
        ]
    )
    pics = sidecar.get("pictures") or {}
    if pics.get("colormap"):
        rows.append(["colour map", f"{pics['colormap']['name']} ({pics['colormap']['kind']})"])
    if pics.get("overlay"):
        o = pics["overlay"]
        rows.append(
            [
                "overlay",
                f"{o['path']} ({o['mode']}, alpha {o['alpha']:g}, labels "
                f"{', '.join(o['labels']) or 'none'})",
            ]
        )
    if src.get("sha256"):
        rows.append(["sha256", str(src["sha256"])])
    return rows


def page_data(sidecar: dict[str, Any], stem: str) -> dict[str, Any]:
    """What the page's script needs, taken from the sidecar."""
    pics = sidecar.get("pictures") or {}
    volumes = sidecar["output"].get("volumes")
    return {
        "stem": stem,
        # the file's name: a backslash is a character of POSIX names, not a separator
        "title": display_name(Path(str(sidecar["source"].get("path", stem))).name or stem),
        "sidecar": f"{stem}.json",
        "views": [_view_data(name, v) for name, v in sidecar["views"].items()],
        "volumes": [str(t) for t in volumes] if volumes else ["0"],
        "metadata": _metadata(sidecar),
        "warnings": [str(w) for w in sidecar.get("warnings", [])],
        "extras": [
            {"view": m["view"], "volume": m["volume"], "file": m["file"], "kind": "contact sheet"}
            for m in pics.get("montages", [])
        ]
        + [
            {
                "view": a["view"],
                "volume": a["volume"],
                "file": a["file"],
                "kind": f"animation ({a['format']})",
            }
            for a in pics.get("animations", [])
        ],
    }


def _script_json(data: object) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def build_page(sidecar: dict[str, Any], stem: str) -> str:
    """The complete HTML page (UTF-8 text) for the export described by ``sidecar``."""
    from importlib.resources import files  # 30-50 ms to import: not at every start

    template = (files("niftislice") / "assets" / _TEMPLATE).read_text(encoding="utf-8")
    data = page_data(sidecar, stem)
    values = {"TITLE": html.escape(data["title"]), "DATA": _script_json(data)}
    # one pass: text substituted for one placeholder is never searched for another
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
