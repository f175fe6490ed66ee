"""What the command does to the process it owns before anything heavy loads (the library does
none of it: a caller's process keeps its imports as they are)."""

from __future__ import annotations

import sys

#: imported by nibabel (for ``FileBasedImage.from_url``), never used by niftislice
URL_MODULE = "urllib.request"


def defer_url_support() -> None:
    """Make ``urllib.request`` load on first use instead of at nibabel's import.

    nibabel imports it for ``from_url`` only, and with it ``http.client``, ``email``, ``ssl`` and
    OpenSSL's hashes: 0.035-0.045 s of the 0.30-0.32 s a 4 x 5 x 7 conversion took to start on
    the shared 2-core machine (``benchmarks/startup.py``), for a function niftislice never calls.
    The module is registered through the standard library's ``importlib.util.LazyLoader``:
    importing it runs nothing, and the first attribute anyone reads runs it, as a plain import
    would have. :func:`niftislice.cli.entry` calls this before anything imports nibabel. Python
    3.11's lazy loading is not safe against two threads reading a module's first attribute at
    once; none of the command's threads reads this one. A no-op once the module is loaded.
    """
    if URL_MODULE in sys.modules:
        return
    import importlib.util
    import urllib

    spec = importlib.util.find_spec(URL_MODULE)
    if spec is None or not hasattr(spec.loader, "exec_module"):  # frozen apps: import it as usual
        return
    spec.loader = loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[URL_MODULE] = module
    loader.exec_module(module)
    urllib.request = module  # type: ignore[attr-defined]  # what ``from urllib import request`` reads
