"""The ``niftislice`` command: a parser and one error handler over the Python API.

Exit status: 0 when every input succeeded, 1 when some input failed (one line each on stderr),
2 for bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._startup import defer_url_support
from ..errors import NiftisliceError, OptionError
from ..naming import display_name
from ..sample import sample_path
from ..types import preview_format
from .parser import UsageError, build_parser

log = logging.getLogger("niftislice")


def _options(a: argparse.Namespace, **extra: object):
    """ConvertOptions from every option the command has (the namespace holds each field the
    parser declares) and ``extra``, which the command fixes (preview: the middle slices)."""
    from ..options import PICTURE_FIELDS, ConvertOptions

    names = [f.name for f in dataclasses.fields(ConvertOptions)]
    names += [*PICTURE_FIELDS, "level", "width"]
    kw = {name: getattr(a, name) for name in names if hasattr(a, name)}
    kw.update(extra)
    return ConvertOptions.parse(**kw)


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("niftislice: %(level)s: %(message)s"))
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
    """Log lines as the other lines (``niftislice: warning: ...``), with control characters and
    undecodable bytes escaped, tracebacks (``-vv``) line by line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = display_name(record.message)
        record.level = record.levelname.lower()
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return "\n".join(map(display_name, super().formatException(ei).splitlines()))

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(map(display_name, stack_info.splitlines()))


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
    inputs = list(a.inputs)
    if a.sample:
        inputs.append(str(sample_path()))
    if not inputs:
        raise UsageError("niftislice convert: give input files or folders, or --sample")
    opts = _options(a)  # bad options are usage errors, before the heavy modules load
    from ..batch.discover import check_jobs, discover
    from ..batch.results import write_report
    from ..export import ConvertResult
    from ..training.run import check_convert_outputs, run_convert

    _imports_done()
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
    src = str(sample_path()) if a.sample else a.input
    if not src:
        raise UsageError("niftislice info: give an input file or --sample")
    opts = _options(a)
    from ..describe import format_info, info

    _imports_done()

    facts = info(src, opts, header=a.header)
    for w in facts["warnings"]:
        log.debug("%s: %s", a.input, w)
    text = json.dumps(facts, indent=1) if a.json else format_info(facts)
    sys.stdout.write("".join(display_name(line) + "\n" for line in text.splitlines()))
    return 0


def _cmd_preview(a: argparse.Namespace) -> int:
    src = str(sample_path()) if a.sample else a.input
    if not src:
        raise UsageError("niftislice preview: give an input file or --sample")
    opts = _options(a, slices="middle", overwrite=False)  # --overwrite is the file's, below
    preview_format(a.output)  # a bad suffix is a usage error, before the heavy modules load
    from ..pictures.preview import preview

    _imports_done()

    out = preview(src, a.output, opts, overwrite=a.overwrite)
    if not a.quiet:
        sys.stderr.write(f"niftislice: wrote {display_name(out)}\n")
    return 0


def _cmd_stack(a: argparse.Namespace) -> int:
    from ..stacking.stack import StackOptions, stack_folder
    from ..types import Limits

    _imports_done()

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


def entry() -> int:
    """The ``niftislice`` console script and ``python -m niftislice``: :func:`main` in a process
    of its own, which ends when it returns.

    The garbage collector is held while the command imports its modules, and what they made is
    then frozen (:func:`_imports_done`): imports allocate hundreds of thousands of long-lived
    objects (numpy, nibabel, OpenCV...) and no cycles to collect, and each full collection
    during them walks all of them again. Python's last collection at exit would walk them once
    more (0.05-0.07 s of the 0.45 s a 4 x 5 x 7 conversion took), so the process freezes what
    is left before it ends: nothing needs collecting then (files are closed explicitly, and exit
    handlers still run). Together about 0.02-0.03 s a start (``benchmarks/startup.py``).
    :func:`main` does neither: a caller's process goes on after it.

    numpy's OpenBLAS is kept to one thread (unless the environment says otherwise): at import it
    starts a thread per core, which then spin, 0.10-0.15 s of CPU per run on 2 cores that the
    conversion's own threads compete with, while niftislice's only BLAS work is on 4 x 4
    matrices. It is set before numpy loads, so it holds for the pool workers too.

    nibabel's ``urllib.request`` loads on first use (``_startup.defer_url_support``).
    """
    global _gc_held
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    defer_url_support()
    gc.disable()
    _gc_held = True
    try:
        return main()
    finally:
        _imports_done()
        gc.freeze()


_gc_held = False


def _imports_done() -> None:
    """Called by each command once its modules are imported: under :func:`entry`, freeze what
    the imports made (later collections skip it) and collect as usual from here on."""
    global _gc_held
    if _gc_held:
        _gc_held = False
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status. What the run sets up in the process (the SIGTERM
    handler, the ``niftislice`` logger's stderr lines) is put back as it was when it returns."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    logger = logging.getLogger("niftislice")
    logging_was = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return _main(argv)
    finally:
        logger.handlers[:], logger.propagate = logging_was[0], logging_was[2]
        logger.setLevel(logging_was[1])  # clears the loggers' cached levels too
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
