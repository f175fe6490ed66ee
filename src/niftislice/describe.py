"""``niftislice info``: what a file holds and what converting it would produce."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .naming import stem_of
from .options import ConvertOptions
from .orientation import reorientation
from .read import iter_volumes, open_source
from .resample import sampling
from .sidecar import header_facts
from .slicing import view_geometry
from .stats import raw_stats


def info(
    path: str | os.PathLike[str],
    options: ConvertOptions = ConvertOptions(),
    *,
    header: bool = False,
) -> dict[str, Any]:
    """Header facts, data range and the images per view under ``options``."""
    nf = open_source(path, options.limits)
    facts = header_facts(nf)
    reo = reorientation(nf.affine, nf.spatial_shape)
    facts["axcodes"] = "".join(reo.source_axcodes)
    facts["path"] = os.path.abspath(path)
    facts["stem"] = stem_of(path)
    facts["obliquity_deg"] = reo.obliquity_deg
    facts["oblique"] = reo.is_oblique
    facts["n_volumes"] = nf.n_volumes
    facts["warnings"] = list(nf.warnings)
    if options.keep_phi and nf.identity:
        facts["patient"] = dict(nf.identity)
    if nf.rgb_channels:
        facts["data_range"] = [0, 255]
    else:
        st = raw_stats(lambda: (a for _, a in iter_volumes(nf)))
        ends = (
            sorted(v * nf.slope + nf.inter for v in (st.vmin, st.vmax))
            if st.count
            else [None, None]
        )
        facts["data_range"] = ends
        facts["nonfinite_voxels"] = st.nonfinite
    n_vol = len(options.volumes.indices(nf.n_volumes))
    views = {}
    for v in options.views:
        g = view_geometry(v, reo.canonical_shape, reo.spacing_mm, options.neurological)
        s = sampling(g, options.spacing)
        n = len(options.slices.indices(g.n_slices))
        views[v.value] = {
            "images": n * n_vol,
            "image_size": [s.width, s.height],
            "pixel_spacing_mm": [s.col_spacing, s.row_spacing],
        }
    facts["views"] = views
    if header:
        facts["header"] = {k: _plain(nf.header[k]) for k in nf.header.keys()}  # noqa: SIM118
    return facts


def _plain(v: np.ndarray) -> Any:
    if v.dtype.kind == "S":
        return bytes(v).decode("latin-1").rstrip("\x00")
    out = v.tolist()
    if isinstance(out, float) and not np.isfinite(out):
        return str(out)
    if isinstance(out, list):
        return [x if not isinstance(x, float) or np.isfinite(x) else str(x) for x in out]
    return out


def format_info(facts: dict[str, Any]) -> str:
    """Human-readable lines for the terminal."""

    def mat(m: list[list[float]] | None) -> str:
        if m is None:
            return "  (not set)"
        return "\n".join("    [" + " ".join(f"{v:9.3f}" for v in row) + "]" for row in m[:3])

    def num(x: float | None) -> str:
        return "nan" if x is None else f"{x:g}"

    n_vol = facts["n_volumes"]
    shape = " x ".join(map(str, facts["shape"]))
    voxel = " x ".join(f"{z:g}" for z in facts["voxel_sizes"])
    lines = [
        f"file        {facts['path']}",
        f"format      {_format_name(facts)}",
        f"shape       {shape}   ({n_vol} volume{'s' if n_vol != 1 else ''})",
        f"dtype       {facts['dtype']} ({facts['byte_order']}-endian)",
        f"voxel size  {voxel} {facts['units']['space']}"
        + (
            f", time step {facts['time_step']:g} {facts['units']['time']}"
            if facts.get("time_step")
            else ""
        ),
        f"axis codes  {'-'.join(facts['axcodes'])}   (stored order; images are shown in RAS+)",
        f"qform_code  {facts['qform_code']}   sform_code {facts['sform_code']}   "
        f"using: {facts['affine_source']}",
        f"scaling     scl_slope {num(facts['scl_slope_on_disk'])}, "
        f"scl_inter {num(facts['scl_inter_on_disk'])} on disk"
        f" -> applied slope {facts['scl_slope_applied']:g}, inter {facts['scl_inter_applied']:g}",
        f"data range  {num(facts['data_range'][0])} .. {num(facts['data_range'][1])}"
        + (
            f"   ({facts['nonfinite_voxels']:,} NaN/Inf voxels)"
            if facts.get("nonfinite_voxels")
            else ""
        ),
        f"obliquity   {facts['obliquity_deg']:.3f} degrees"
        + ("   WARNING: oblique, shown on the closest axes" if facts["oblique"] else ""),
        "affine (used):",
        mat(facts["affine"]),
        "images (with these options):",
    ]
    for name, v in facts["views"].items():
        w, h = v["image_size"]
        sx, sy = v["pixel_spacing_mm"]
        lines.append(
            f"  {name:<9} {v['images']:>5} images of {w} x {h} px at {sx:.3g} x {sy:.3g} mm"
        )
    for k, v in facts.get("patient", {}).items():
        lines.append(f"patient     {k}: {v}")
    for w in facts["warnings"]:
        lines.append(f"warning: {w}")
    if "header" in facts:
        lines.append("header:")
        lines.extend(f"  {k:<16} {v}" for k, v in facts["header"].items())
    return "\n".join(lines)


def _format_name(facts: dict[str, Any]) -> str:
    fmt = facts.get("format", "nifti")
    if fmt == "nifti":
        return f"NIfTI-{facts['nifti_version']}{' (gzip)' if facts['compressed'] else ''}"
    dicom = facts.get("dicom")
    if fmt == "dicom" and dicom:
        number = dicom["series_number"]
        desc = f' "{dicom["series_description"]}"' if dicom["series_description"] else ""
        window = dicom["window"]
        win = f", window {window['center']:g}/{window['width']:g}" if window else ""
        return (
            f"DICOM series {number if number is not None else '?'}{desc}, {dicom['modality']}, "
            f"{len(dicom['files'])} files{win}"
        )
    return str(fmt)
