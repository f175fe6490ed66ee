"""The JSON sidecar: how every pixel relates to the source voxels and to world space."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .naming import display_name
from .plan import Plan
from .read.digest import COMBINED_NOTE
from .read.nifti import NiftiFile
from .types import View

SCHEMA_VERSION = 1
NIFTI_UNITS = {
    0: "unknown",
    1: "m",
    2: "mm",
    3: "um",
    8: "s",
    16: "ms",
    24: "us",
    32: "Hz",
    40: "ppm",
    48: "rad/s",
}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _matrix(m: np.ndarray) -> list[list[float]]:
    """A 4 x 4 matrix (or a stack of them) as JSON lists, rounded to :func:`_decimals`."""
    a = np.asarray(m, dtype=np.float64)
    return np.round(a, _decimals(a)).tolist()  # type: ignore[no-any-return]


def _decimals(a: np.ndarray) -> int:
    """9 decimals (1e-9 mm), or 7 significant digits (a float32 header's precision) of the
    shortest voxel axis when that is under 10 um: 9 decimals leave 10 nm voxels 2 digits, too
    few for ``stack`` to find an oblique grid's planes again. Capped at 15 (1e-6 mm voxels
    need 13; a matrix that cannot place voxels gets no more)."""
    with np.errstate(all="ignore"):
        norms = np.linalg.norm(a[..., :3, :3], axis=-2)
    usable = norms[np.isfinite(norms) & (norms > 0)]
    if usable.size == 0:
        return 9
    return min(15, max(9, 7 - math.floor(math.log10(float(usable.min())))))


def dumps(sidecar: dict[str, Any]) -> str:
    """JSON that stays readable (one line per field, view and slice) and is fast to write.

    ``json.dumps(indent=...)`` falls back to the pure-Python encoder, which costs more than
    encoding a small volume's images; here every leaf goes through the C encoder.
    """

    def block(obj: Any, depth: int) -> str:
        pad = " " * depth
        if isinstance(obj, dict) and depth < 3:
            items = [f"{pad} {json.dumps(k)}: {block(v, depth + 1)}" for k, v in obj.items()]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}" if items else "{}"
        if isinstance(obj, list) and obj and isinstance(obj[0], dict):
            return "[\n" + ",\n".join(f"{pad} {json.dumps(v)}" for v in obj) + f"\n{pad}]"
        return json.dumps(obj)

    return block(sidecar, 0) + "\n"


def header_facts(nf: NiftiFile) -> dict[str, Any]:
    """Facts from the header that the sidecar and ``info`` share."""
    h = nf.header
    space_units, time_units = int(h["xyzt_units"]) & 0x07, int(h["xyzt_units"]) & 0x38
    pixdim = [float(v) for v in h["pixdim"]]
    # other formats say what they are (NIfTI sidecars keep their long-standing fields only)
    other = {"format": nf.format, **nf.facts} if nf.format != "nifti" else {}
    return {
        **other,
        "nifti_version": nf.nifti_version,
        "compressed": nf.compressed,
        "shape": list(nf.data_shape),
        "dtype": str(nf.dtype.newbyteorder("="))
        if not nf.rgb_channels
        else ("rgb" if nf.rgb_channels == 3 else "rgba"),
        "byte_order": "big" if nf.dtype.byteorder == ">" else "little",
        "voxel_sizes": list(nf.zooms),
        "time_step": _num(pixdim[4]) if len(nf.data_shape) > 3 else None,
        "units": {
            "space": NIFTI_UNITS.get(space_units, str(space_units)),
            "time": NIFTI_UNITS.get(time_units, str(time_units)),
        },
        "affine": _matrix(nf.affine),
        "affine_source": nf.affine_source,
        "axcodes": None,
        "qform_code": int(h["qform_code"]),
        "sform_code": int(h["sform_code"]),
        "qform": _matrix(h.get_qform()) if int(h["qform_code"]) > 0 and _safe_qform(nf) else None,
        "sform": _matrix(h.get_sform()) if int(h["sform_code"]) > 0 else None,
        **_unused_qform(h),
        "scl_slope_on_disk": _num(float(h["scl_slope"])),
        "scl_inter_on_disk": _num(float(h["scl_inter"])),
        "scl_slope_applied": nf.slope,
        "scl_inter_applied": nf.inter,
        "intent": int(h["intent_code"]),
        "description": bytes(h["descrip"]).split(b"\x00")[0].decode("latin-1"),
    }


def _unused_qform(h: Any) -> dict[str, Any]:
    """With qform_code 0 the quaternion fields are unused but often filled (nibabel writes them):
    record them as stored (float32 values, exact in JSON) so ``stack`` can give them back. Left
    out when they hold what a new header holds (zeros, qfac 1)."""
    if int(h["qform_code"]) != 0:
        return {}
    fields = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")
    values = {name: _num(float(h[name])) for name in fields}
    values["qfac"] = _num(float(h["pixdim"][0]))
    if all(v == 0 for k, v in values.items() if k != "qfac") and values["qfac"] == 1:
        return {}
    return {"qform_unused": {k: v for k, v in values.items() if v is not None}}


def _safe_qform(nf: NiftiFile) -> bool:
    try:
        q = nf.header.get_qform()
    except Exception:
        return False
    return bool(np.all(np.isfinite(q)))


def _range_json(r: range) -> dict[str, int]:
    return {"start": r.start, "stop": r.stop, "step": r.step}


def build_sidecar(
    plan: Plan,
    source_path: Path,
    sha256: str | None,
    files: dict[View, dict[int, dict[int, str]]],
    sha256_files: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """``files[view][k][t]`` is the file name of slice ``k`` of volume ``t``; ``sha256_files``,
    for a source of several files, each one's path and sha256 (``sha256`` combines them, see
    :mod:`niftislice.read.digest`)."""
    nf, reo, opts = plan.nf, plan.reo, plan.options
    source = header_facts(nf)
    source["axcodes"] = "".join(reo.source_axcodes)
    source["path"] = display_name(os.path.abspath(source_path))  # valid, printable JSON text
    source["sha256"] = sha256
    if sha256_files:
        source["sha256_files"] = sha256_files
        source["sha256_combined"] = COMBINED_NOTE
    if opts.keep_phi and nf.identity:  # DICOM patient attributes: only when asked
        source["patient"] = dict(nf.identity)
    views = {view.value: _view_entry(plan, view, files.get(view, {})) for view in plan.geometries}
    return {
        "niftislice": {"version": __version__, "sidecar_schema": SCHEMA_VERSION},
        "source": source,
        "orientation": {
            **reo.to_json(),
            "oblique": reo.is_oblique,
            "display": "neurological" if opts.neurological else "radiological",
            "pixel_to_world_note": (
                "pixel (column, row, 0, 1) -> world mm; column 0 is the left edge, row 0 the top"
            ),
        },
        "intensity": _intensity(plan),
        "output": _output(plan),
        "views": views,
        "warnings": list(plan.warnings),
        # only when a rule beyond the --window spec chose (CT preset, padding left out)
        **({"window": plan.window_reason} if plan.window_reason else {}),
    }


def _view_entry(plan: Plan, view: View, files: dict[int, dict[int, str]]) -> dict[str, Any]:
    """A view's image size and spacing, geometry, and each written slice's file(s) and
    pixel-to-world matrix (``files[k][t]``: the file of slice ``k`` of volume ``t``)."""
    g, smp = plan.geometries[view], plan.samplings[view]
    ks = sorted(files)
    slices = []
    for k, matrix in zip(ks, _matrix(plan.pixel_to_world_many(view, ks)), strict=True):
        entry: dict[str, Any] = {"index": k, "pixel_to_world": matrix}
        if plan.is_4d:
            entry["files"] = {str(t): name for t, name in sorted(files[k].items())}
        else:
            entry["file"] = next(iter(files[k].values()))
        slices.append(entry)
    return {
        "folder": view.value,
        "image_size": [smp.width, smp.height],
        "pixel_spacing_mm": [smp.col_spacing, smp.row_spacing],
        "n_slices_in_volume": g.n_slices,
        # which slices were asked for; with skip_empty, selected slices without a file were blank
        "selected_slices": _range_json(plan.slice_indices(view)),
        "geometry": g.to_json(),
        "slices": slices,
    }


def _intensity(plan: Plan) -> dict[str, Any]:
    if plan.window is None:
        return {"kind": "rgb", "note": "colour volume stored as is"}
    kind = "label" if plan.label else ("lossless" if plan.options.lossless else "window")
    return {"kind": kind, **plan.window.to_json()}


def _output(plan: Plan) -> dict[str, Any]:
    opts, nf = plan.options, plan.nf
    return {
        "format": opts.format.value,
        "bit_depth": 8 if plan.window is None or plan.window.out_max == 255 else 16,
        "interpolation": plan.interp.value,
        "spacing": opts.spacing,
        "label": plan.label,
        "skip_empty": bool(opts.skip_empty),
        "volumes": list(plan.volumes) if plan.is_4d else None,
        "volume_subindex": {str(t): list(nf.volume_subindex(t)) for t in plan.volumes}
        if len(nf.data_shape) > 4
        else None,
    }
