"""The command line's parser: options, their help, and how argparse reads numbers.

Defaults of everything that is a conversion option come from :class:`~..options.ConvertOptions`
itself (``DEFAULTS``), so the command line and the API cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from enum import Enum

from .._version import __version__
from ..options import ConvertOptions, PictureOptions
from ..types import CT_PRESETS


def _cli_value(value: object) -> object:
    """An option's value as the command line writes it (``axial,coronal,sagittal``, ``png``,
    ``all``, ``auto``)."""
    if isinstance(value, tuple) and value and isinstance(value[0], Enum):
        return ",".join(v.value for v in value)
    if isinstance(value, Enum):
        return value.value
    return getattr(value, "text", value)  # IndexRange, WindowSpec


def _defaults(*instances: object) -> dict[str, object]:
    return {
        f.name: _cli_value(getattr(obj, f.name))
        for obj in instances
        for f in dataclasses.fields(obj)  # type: ignore[arg-type]
        if f.name != "pictures"  # nested: its own fields are listed flat
    }


#: The defaults of ConvertOptions and of its PictureOptions, as command-line values
DEFAULTS: dict[str, object] = _defaults(ConvertOptions(), PictureOptions())


class UsageError(Exception):
    pass


_NUMBER_START = re.compile(r"^-\.?\d")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def _parse_optional(self, arg_string: str):  # type: ignore[no-untyped-def]
        # A word starting with -digit or -.digit is a value, never an option: no option of
        # niftislice looks like that, and `--window -100:500` (HU), `--slices -3:` or
        # `--fill -1024` must work as typed. argparse only knows plain negative numbers.
        if _NUMBER_START.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


def _add_limits(p: argparse._ActionsContainer, refuse: str, accept: str) -> None:
    """--max-voxels and --allow-many-slices; ``refuse``/``accept`` start their help."""
    p.add_argument(
        "--max-voxels",
        type=int,
        default=DEFAULTS["max_voxels"],
        help=f"refuse {refuse} with more voxels (default 2^31)",
    )
    p.add_argument(
        "--allow-many-slices",
        action="store_true",
        help=f"accept {accept} than {DEFAULTS['max_slices']} slices along an axis",
    )


def _add_image_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("geometry")
    g.add_argument(
        "--views",
        default=DEFAULTS["views"],
        help="comma-separated subset of axial,coronal,sagittal",
    )
    g.add_argument(
        "--neurological",
        action="store_true",
        help="patient left on image left (default: radiological)",
    )
    g.add_argument(
        "--spacing",
        default=DEFAULTS["spacing"],
        help="mm per pixel, 'finest' (default: finest in-plane spacing) or 'native'",
    )
    g.add_argument(
        "--interp",
        default=DEFAULTS["interp"],
        choices=["linear", "nearest", "cubic", "area", "lanczos"],
    )
    g.add_argument(
        "--slices",
        default=DEFAULTS["slices"],
        help="all, middle, N or A:B[:STEP] (RAS+ indices, Python-style)",
    )
    g.add_argument("--volumes", default=DEFAULTS["volumes"], help="4D: all, N or A:B[:STEP]")
    i = p.add_argument_group("intensity")
    i.add_argument(
        "--window",
        default="auto",
        help="auto (0.5-99.5 percentiles without scanner padding; a CT gets the brain or "
        "soft-tissue preset), minmax, dicom (the series' first WindowCenter/Width), LOW:HIGH, "
        "pLOW:pHIGH or a CT preset: " + ", ".join(CT_PRESETS),
    )
    i.add_argument("--level", type=float, help="window level (with --width), data units")
    i.add_argument("--width", type=float, help="window width (with --level), data units")
    i.add_argument(
        "--label",
        dest="label",
        action="store_true",
        default=None,
        help="label map: nearest neighbour, exact values",
    )
    i.add_argument(
        "--no-label", dest="label", action="store_false", help="never treat as a label map"
    )
    i.add_argument("--bit-depth", type=int, default=DEFAULTS["bit_depth"], choices=[8, 16])
    i.add_argument(
        "--lossless",
        action="store_true",
        help="integer data stored exactly as 16-bit (no windowing)",
    )
    d = p.add_argument_group("DICOM")
    d.add_argument(
        "--keep-phi",
        action="store_true",
        help="write the patient's name, ID, birth date... to the sidecar and info "
        "(by default nothing that identifies the patient is written)",
    )
    _add_limits(p.add_argument_group("limits"), "volumes", "more")


def _add_picture_options(p: argparse.ArgumentParser, convert: bool) -> None:
    g = p.add_argument_group("pictures")
    g.add_argument(
        "--colormap",
        help="colour map for non-anatomical data: gray, viridis, hot, ... or a diverging "
        "map centred on 0 for statistics: bwr, coolwarm, cold-hot",
    )
    g.add_argument(
        "--overlay",
        metavar="MASK",
        help="label map blended onto every image (resampled by its affine if needed)",
    )
    g.add_argument(
        "--overlay-alpha",
        type=float,
        default=DEFAULTS["overlay_alpha"],
        help="overlay opacity 0..1 (default %(default)s)",
    )
    g.add_argument("--overlay-contour", action="store_true", help="draw label outlines only")
    if not convert:
        return
    g.add_argument(
        "--pair",
        metavar="MASK",
        help="also export MASK as label images: OUT/images/<stem>/... and "
        "OUT/masks/<stem>/... with identical names and geometry",
    )
    g.add_argument(
        "--montage",
        action="store_true",
        help="a contact sheet per view: OUT/<stem>/<stem>_<view>_montage.png",
    )
    g.add_argument(
        "--montage-count",
        type=int,
        default=DEFAULTS["montage_count"],
        help="tiles per contact sheet (default %(default)s)",
    )
    g.add_argument(
        "--gif",
        action="store_true",
        help="an animated GIF per view through the slices",
    )
    g.add_argument(
        "--webp-anim",
        action="store_true",
        help="an animated WebP per view",
    )
    g.add_argument(
        "--fps",
        type=float,
        default=DEFAULTS["fps"],
        help="animation frames per second (default %(default)s)",
    )
    g.add_argument(
        "--html", action="store_true", help="a self-contained viewer page: OUT/<stem>/index.html"
    )


def _add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training sets")
    g.add_argument(
        "--masks",
        metavar="FOLDER",
        help="label maps paired with the inputs by name (same stem, or without an nnU-Net "
        "_NNNN channel suffix), exported as exact labels into a masks/ tree or the shards",
    )
    g.add_argument(
        "--allow-missing-masks",
        action="store_true",
        help="convert inputs without a mask (default: such an input fails)",
    )
    g.add_argument(
        "--split",
        metavar="NAME=FRACTION,...",
        help="split by subject (BIDS sub-<label>, else the case), e.g. train=0.8,val=0.1,test=0.1:"
        " output under OUT/<split>/, subjects listed in OUT/splits.json",
    )
    g.add_argument(
        "--split-seed",
        type=int,
        default=DEFAULTS["split_seed"],
        help="seed of the subject hash (default %(default)s)",
    )
    g.add_argument(
        "--layout",
        default="files",
        choices=["files", "webdataset"],
        help="files: one image per file (default); webdataset: POSIX tar shards",
    )
    g.add_argument(
        "--shard-size",
        help="start a new shard before this size or number of samples: 500MB, 2GiB, 2000, or "
        "500MB,2000 (default 1GB,10000)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="niftislice", description="NIfTI volumes to anatomically correct image sequences."
    )
    parser.add_argument("--version", action="version", version=f"niftislice {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress bar")
    # -q/-v are accepted after the subcommand too (SUPPRESS keeps the global value otherwise)
    common = Parser(add_help=False)
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="errors only, no progress bar",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
    )
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    c = sub.add_parser(
        "convert", parents=[common], help="write one image per slice per view, and a JSON sidecar"
    )
    c.add_argument(
        "inputs",
        nargs="*",
        help="volume files (NIfTI, DICOM, NRRD, MetaImage, Analyze, MGH, MINC, PAR/REC) or "
        "folders (searched recursively)",
    )
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.add_argument(
        "--sample", action="store_true", help="convert the built-in sample (MNI152 T1 template)"
    )
    c.add_argument("--format", default=DEFAULTS["format"], help="png, jpg, tif or webp")
    c.add_argument("--quality", type=int, help="jpg/webp quality 1..100")
    c.add_argument(
        "--skip-empty", action="store_true", help="leave out slices that are all background"
    )
    c.add_argument("-j", "--jobs", type=int, help="parallel workers (default: all cores)")
    c.add_argument("--overwrite", action="store_true", help="replace existing output")
    c.add_argument(
        "--skip-existing", action="store_true", help="keep complete existing output (resume)"
    )
    c.add_argument("--report", help="write a JSON report with one record per input")
    c.add_argument(
        "--scheduler", help="run on a Dask cluster at this address (needs niftislice[dask])"
    )
    _add_image_options(c)
    _add_picture_options(c, convert=True)
    _add_training_options(c)

    i = sub.add_parser(
        "info", parents=[common], help="describe a file: geometry, scaling, range, images per view"
    )
    i.add_argument("input", nargs="?", help="a volume file or a folder of one DICOM series")
    i.add_argument("--sample", action="store_true", help="describe the built-in sample")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--header", action="store_true", help="include every raw header field")
    _add_image_options(i)

    pv = sub.add_parser(
        "preview", parents=[common], help="the three middle slices side by side, labelled"
    )
    pv.add_argument("input", nargs="?", help="a volume file or a folder of one DICOM series")
    pv.add_argument(
        "-o",
        "--output",
        required=True,
        help="image file to write: .png, .jpg, .tif or .webp (its folder is created)",
    )
    pv.add_argument("--overwrite", action="store_true", help="replace an existing file")
    pv.add_argument("--sample", action="store_true", help="preview the built-in sample")
    _add_image_options(pv)
    _add_picture_options(pv, convert=False)

    st = sub.add_parser(
        "stack",
        parents=[common],
        help="images of one view back into a NIfTI volume on the source grid",
    )
    st.add_argument(
        "input",
        metavar="FOLDER",
        help="export folder, one view's folder, or edited images with the exported names",
    )
    st.add_argument("-o", "--output", required=True, help="NIfTI file to write (.nii or .nii.gz)")
    st.add_argument(
        "--view", help="axial, coronal or sagittal (required when the folder holds several)"
    )
    st.add_argument(
        "--sidecar", help="the export's JSON sidecar, when it is not in FOLDER or its parent"
    )
    st.add_argument(
        "--values",
        default="data",
        choices=["data", "pixel"],
        help="data: invert the intensity mapping (default); pixel: keep pixel values",
    )
    st.add_argument("--channel", help="colour images: channel to use (0-3 or r, g, b, a)")
    st.add_argument(
        "--fill", default="0", help="value for slices without an image (output units, default 0)"
    )
    st.add_argument(
        "--volume",
        type=int,
        help="4D: stack this source volume only (default: every exported volume)",
    )
    st.add_argument(
        "--interp",
        default="auto",
        choices=["auto", "nearest", "linear"],
        help="auto: nearest for label exports, linear otherwise",
    )
    st.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_limits(st, "sidecars declaring a result", "sidecars declaring more")
    return parser
