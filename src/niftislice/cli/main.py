"""The ``niftislice`` command: a parser and one error handler over the Python API.

Exit status: 0 when every input succeeded, 1 when some input failed (one line each on stderr),
2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..errors import NiftisliceError, OptionError
from ..naming import display_name
from ..types import CT_PRESETS

log = logging.getLogger("niftislice")


class UsageError(Exception):
    pass


_NUMBER_START = re.compile(r"^-\.?\d")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def _parse_optional(self, arg_string: str):  # type: ignore[no-untyped-def]
        # A word starting with -digit or -.digit is a value, never an option: no option of
        # niftislice looks like that, and `--window -100:500` (HU), `--slices -3:` or
        # `--fill -1024` must work as typed. argparse only knows plain negative numbers.
        if _NUMBER_START.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


def _add_image_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("geometry")
    g.add_argument(
        "--views",
        default="axial,coronal,sagittal",
        help="comma-separated subset of axial,coronal,sagittal",
    )
    g.add_argument(
        "--neurological",
        action="store_true",
        help="patient left on image left (default: radiological)",
    )
    g.add_argument(
        "--spacing",
        default="finest",
        help="mm per pixel, 'finest' (default: finest in-plane spacing) or 'native'",
    )
    g.add_argument(
        "--interp", default="linear", choices=["linear", "nearest", "cubic", "area", "lanczos"]
    )
    g.add_argument(
        "--slices", default="all", help="all, middle, N or A:B[:STEP] (RAS+ indices, Python-style)"
    )
    g.add_argument("--volumes", default="all", help="4D: all, N or A:B[:STEP]")
    i = p.add_argument_group("intensity")
    i.add_argument(
        "--window",
        default="auto",
        help="auto (0.5-99.5 percentiles without scanner padding; a CT gets the brain or "
        "soft-tissue preset), minmax, LOW:HIGH, pLOW:pHIGH or a CT preset: "
        + ", ".join(CT_PRESETS),
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
    i.add_argument("--bit-depth", type=int, default=8, choices=[8, 16])
    i.add_argument(
        "--lossless",
        action="store_true",
        help="integer data stored exactly as 16-bit (no windowing)",
    )
    o = p.add_argument_group("limits")
    o.add_argument(
        "--max-voxels",
        type=int,
        default=2**31,
        help="refuse volumes with more voxels (default 2^31)",
    )
    o.add_argument(
        "--allow-many-slices",
        action="store_true",
        help="accept more than 4096 slices along an axis",
    )


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
        "--overlay-alpha", type=float, default=0.4, help="overlay opacity 0..1 (default 0.4)"
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
        "--montage-count", type=int, default=16, help="tiles per contact sheet (default 16)"
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
        "--fps", type=float, default=10.0, help="animation frames per second (default 10)"
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
    g.add_argument("--split-seed", type=int, default=0, help="seed of the subject hash (default 0)")
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


def _training_kwargs(a: argparse.Namespace) -> dict[str, object]:
    names = ("masks", "allow_missing_masks", "split", "split_seed", "layout", "shard_size")
    return {name: getattr(a, name) for name in names}


def _picture_kwargs(a: argparse.Namespace) -> dict[str, object]:
    kw: dict[str, object] = dict(
        colormap=a.colormap,
        overlay=a.overlay,
        overlay_alpha=a.overlay_alpha,
        overlay_contour=a.overlay_contour,
    )
    if hasattr(a, "montage"):
        kw.update(
            pair=a.pair,
            montage=a.montage,
            montage_count=a.montage_count,
            gif=a.gif,
            webp_anim=a.webp_anim,
            fps=a.fps,
            html=a.html,
        )
    return kw


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="niftislice", description="NIfTI volumes to anatomically correct image sequences."
    )
    parser.add_argument("--version", action="version", version=f"niftislice {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress bar")
    # -q/-v are accepted after the subcommand too (SUPPRESS keeps the global value otherwise)
    common = _Parser(add_help=False)
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
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    c = sub.add_parser(
        "convert", parents=[common], help="write one image per slice per view, and a JSON sidecar"
    )
    c.add_argument("inputs", nargs="*", help="NIfTI files or folders (searched recursively)")
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.add_argument(
        "--sample", action="store_true", help="convert the built-in sample (MNI152 T1 template)"
    )
    c.add_argument("--format", default="png", help="png, jpg, tif or webp")
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
    i.add_argument("input", nargs="?")
    i.add_argument("--sample", action="store_true", help="describe the built-in sample")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--header", action="store_true", help="include every raw header field")
    _add_image_options(i)

    pv = sub.add_parser(
        "preview", parents=[common], help="the three middle slices side by side, labelled"
    )
    pv.add_argument("input", nargs="?")
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
    st.add_argument(
        "--max-voxels",
        type=int,
        default=2**31,
        help="refuse sidecars declaring a result with more voxels (default 2^31)",
    )
    st.add_argument(
        "--allow-many-slices",
        action="store_true",
        help="accept sidecars declaring more than 4096 slices along an axis",
    )
    return parser


def _options(a: argparse.Namespace, **extra: object):
    from ..options import ConvertOptions

    kw: dict[str, object] = dict(
        views=a.views,
        neurological=a.neurological,
        spacing=a.spacing,
        interp=a.interp,
        slices=a.slices,
        volumes=a.volumes,
        window=a.window,
        level=a.level,
        width=a.width,
        label=a.label,
        bit_depth=a.bit_depth,
        lossless=a.lossless,
        max_voxels=a.max_voxels,
        allow_many_slices=a.allow_many_slices,
    )
    kw.update(extra)
    return ConvertOptions(**kw)  # type: ignore[arg-type]


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("niftislice: %(levelname)s: %(message)s"))
    root = logging.getLogger("niftislice")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _say(kind: str, where: str | os.PathLike[str], message: str) -> None:
    """One line on stderr; names in it (and the whole message) made printable."""
    flat = display_name(" ".join(str(message).split()))
    sys.stderr.write(
        f"niftislice: {kind}: {display_name(where)}: {flat}\n"
        if where
        else f"niftislice: {kind}: {flat}\n"
    )


def _quiet_dask(scheduler: str | None, verbose: int) -> None:
    """Dask logs lost connections itself, tracebacks included; each file already gets one line
    (``-vv`` shows Dask's own log)."""
    if not scheduler or verbose > 1:
        return
    try:
        import distributed  # noqa: F401 (it configures its loggers when imported)
    except ImportError:
        return  # the batch says what to install
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:  # some have a handler of their own
        dask_log = logging.getLogger(name)
        dask_log.handlers[:] = [logging.NullHandler()]
        dask_log.propagate = False


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters and undecodable bytes escaped (tracebacks untouched)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = display_name(record.message)
        return super().formatMessage(record)


class _Progress:
    """Two bars on a terminal: input files done, and images written (a count and a rate)."""

    def __init__(self, n_files: int) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.files = tqdm(
            total=n_files,
            desc="files",
            unit="file",
            file=sys.stderr,
            dynamic_ncols=True,
            position=0,
        )
        self.images = tqdm(
            desc="images", unit="img", file=sys.stderr, dynamic_ncols=True, position=1, leave=False
        )

    def add_images(self, n: int) -> None:
        self.images.update(n)

    def file_done(self, lines: list[tuple[str, str]], where: str = "") -> None:
        if lines:
            with self._tqdm.external_write_mode(file=sys.stderr):
                for kind, message in lines:
                    _say(kind, where, message)
        self.files.update(1)

    def close(self) -> None:
        self.images.close()
        self.files.close()


def _cmd_convert(a: argparse.Namespace) -> int:
    from ..api import sample_path
    from ..batch.discover import check_jobs, discover
    from ..batch.results import write_report
    from ..export import ConvertResult
    from ..training.run import check_convert_outputs, run_convert

    inputs = list(a.inputs)
    if a.sample:
        inputs.append(str(sample_path()))
    if not inputs:
        raise UsageError("niftislice convert: give input files or folders, or --sample")
    opts = _options(
        a,
        format=a.format,
        quality=a.quality,
        skip_empty=a.skip_empty,
        jobs=a.jobs,
        overwrite=a.overwrite,
        skip_existing=a.skip_existing,
        **_training_kwargs(a),
        **_picture_kwargs(a),
    )
    jobs = discover(inputs)
    check_jobs(jobs, inputs)
    check_convert_outputs(jobs, a.output, opts)  # refuse before a progress bar appears
    if a.report and not Path(a.report).absolute().parent.is_dir():
        raise OptionError(f"report: folder {Path(a.report).absolute().parent} does not exist")
    _quiet_dask(a.scheduler, a.verbose)
    quiet = a.quiet
    bars = _Progress(len(jobs)) if not quiet and sys.stderr.isatty() else None

    def on_result(r: ConvertResult) -> None:
        where = display_name(r.source)
        lines = [("error", r.error or "failed")] if r.status == "failed" else []
        if not quiet and r.status != "failed":
            lines += [("warning", w) for w in r.warnings]
        if bars is not None:
            bars.file_done(lines, where)
        else:
            for kind, message in lines:
                _say(kind, where, message)

    try:
        result = run_convert(
            jobs,
            a.output,
            opts,
            on_result=on_result,
            scheduler=a.scheduler,
            on_images=bars.add_images if bars is not None else None,
        )
    finally:
        if bars is not None:
            bars.close()
    if a.report:
        write_report(result, a.report)
    if not quiet:
        sys.stderr.write(f"niftislice: {result.summary()}\n")
    return 0 if result.ok else 1


def _cmd_info(a: argparse.Namespace) -> int:
    from ..api import sample_path
    from ..describe import format_info, info

    src = str(sample_path()) if a.sample else a.input
    if not src:
        raise UsageError("niftislice info: give an input file or --sample")
    facts = info(src, _options(a), header=a.header)
    for w in facts["warnings"]:
        log.debug("%s: %s", a.input, w)
    text = json.dumps(facts, indent=1) if a.json else format_info(facts)
    sys.stdout.write("".join(display_name(line) + "\n" for line in text.splitlines()))
    return 0


def _cmd_preview(a: argparse.Namespace) -> int:
    from ..api import sample_path
    from ..pictures.preview import preview, preview_format

    src = str(sample_path()) if a.sample else a.input
    if not src:
        raise UsageError("niftislice preview: give an input file or --sample")
    preview_format(a.output)  # a bad suffix is a usage error before anything is read
    out = preview(
        src,
        a.output,
        _options(a, slices="middle", **_picture_kwargs(a)),
        overwrite=a.overwrite,
    )
    if not a.quiet:
        sys.stderr.write(f"niftislice: wrote {display_name(out)}\n")
    return 0


def _cmd_stack(a: argparse.Namespace) -> int:
    from ..stacking.stack import StackOptions, stack_folder
    from ..types import Limits

    opts = StackOptions(
        view=a.view,
        values=a.values,
        channel=a.channel,
        fill=a.fill,
        volume=a.volume,
        interp=a.interp,
        overwrite=a.overwrite,
        limits=Limits(max_voxels=a.max_voxels, allow_many_slices=a.allow_many_slices),
    )
    result = stack_folder(a.input, a.output, opts, sidecar=a.sidecar)
    if not a.quiet:
        for w in result.warnings:
            _say("warning", display_name(a.input), w)
        img = result.image
        shape = "x".join(map(str, img.shape))
        sys.stderr.write(
            f"niftislice: wrote {display_name(a.output)} ({result.view.value}, "
            f"{result.images_read} images, {shape} {img.get_data_dtype().name})\n"
        )
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: temporary folders are removed


def main(argv: Sequence[str] | None = None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    where = ""
    try:
        a = parser.parse_args(argv)
        _configure_logging(a.verbose, a.quiet)
        if a.command is None:
            parser.print_help(sys.stderr)
            return 2
        where = display_name(getattr(a, "input", "") or "")
        return {
            "convert": _cmd_convert,
            "info": _cmd_info,
            "preview": _cmd_preview,
            "stack": _cmd_stack,
        }[a.command](a)
    except SystemExit as e:  # --help and --version
        return int(e.code or 0)
    except UsageError as e:
        sys.stderr.write(f"{display_name(str(e))}\n")
        return 2
    except OptionError as e:
        _say("error", "", str(e))
        return 2
    except NiftisliceError as e:
        _say("error", where, str(e))
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("niftislice: interrupted\n")
        return 130
    except Exception as e:  # a bug: one line for the user, the traceback at debug level
        log.debug("unexpected error", exc_info=True)
        _say("error", where, f"internal error: {type(e).__name__}: {e} (run with -vv for details)")
        return 1
