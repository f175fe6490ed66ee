"""Window specifications as the user gives them (``--window``, ``--level``/``--width``, CT
presets), parsed and checked. No numpy here: options are validated, and usage errors reported,
before any heavy module is imported (see :mod:`.window` for choosing and applying a window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import OptionError
from .types import CT_PRESETS


@dataclass(frozen=True)
class WindowSpec:
    """How to choose the window. ``kind`` is one of auto, minmax, range, percentile, preset."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    name: str = ""

    @property
    def needs_stats(self) -> bool:
        return self.kind in ("auto", "minmax", "percentile")

    @property
    def text(self) -> str:
        """The spec as ``--window`` takes it (:func:`parse_window` of it gives it back)."""
        if self.kind in ("auto", "minmax"):
            return self.kind
        if self.kind in ("source", "preset"):
            return self.name
        p = "p" if self.kind == "percentile" else ""
        return f"{p}{self.a!r}:{p}{self.b!r}"

    def describe(self) -> str:
        if self.kind == "auto":
            return "auto (percentiles 0.5-99.5 of finite voxels)"
        if self.kind == "percentile":
            return f"percentiles {self.a:g}-{self.b:g} of finite voxels"
        if self.kind == "minmax":
            return "minimum-maximum of finite voxels"
        if self.kind == "preset":
            level, width = CT_PRESETS[self.name]
            return f"CT preset {self.name} (level {level:g} HU, width {width:g} HU)"
        if self.name == "dicom" and self.kind == "range":
            centre, width = (self.a + self.b) / 2, self.b - self.a
            return f"DICOM WindowCenter {centre:g}, WindowWidth {width:g} (first in the series)"
        return f"explicit {self.a:g}:{self.b:g}"


def _numbers(t: str) -> tuple[str, float, float] | None:
    """``LEVEL/WIDTH``, ``pLOW:pHIGH`` or ``LOW:HIGH`` as (``/``, ``p:`` or ``:``, a, b)."""
    for sep in ("/", ":"):
        parts = t.split(sep)
        if len(parts) != 2:
            continue
        lo, hi = parts
        kind = sep
        if sep == ":" and lo.startswith("p") and hi.startswith("p"):
            lo, hi, kind = lo[1:], hi[1:], "p:"
        try:
            return kind, float(lo), float(hi)
        except ValueError:
            return None
    return None


def parse_window(text: str | WindowSpec, *, level_width: bool = False) -> WindowSpec:
    """Parse ``auto``, ``minmax``, ``LOW:HIGH``, ``pLOW:pHIGH``, ``LEVEL/WIDTH`` or a CT preset."""
    if isinstance(text, WindowSpec):
        return text
    t = str(text).strip().lower()
    if t == "auto":
        return WindowSpec("auto", 0.5, 99.5)
    if t in ("minmax", "min-max", "full"):
        return WindowSpec("minmax")
    if t == "dicom":  # the source's own window (DICOM WindowCenter/Width): plan.source_window
        return WindowSpec("source", name="dicom")
    if t in CT_PRESETS:
        level, width = CT_PRESETS[t]
        return WindowSpec("preset", level - width / 2, level + width / 2, name=t)
    numbers = _numbers(t)
    if numbers is not None:
        sep, a, b = numbers
        if sep == "/":
            if not (math.isfinite(a) and math.isfinite(b) and b > 0):
                raise OptionError(f"level/width: width must be positive and finite, got {text!r}")
            return WindowSpec("range", a - b / 2, a + b / 2)
        if sep == "p:":
            if not (0 <= a < b <= 100):
                raise OptionError(
                    f"window: percentiles need 0 <= LOW < HIGH <= 100 (low must be below high), "
                    f"got {text!r}"
                )
            return WindowSpec("percentile", a, b)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise OptionError(f"window: LOW and HIGH must be finite, got {text!r}")
        if not a < b:
            raise OptionError(f"window: low must be below high in LOW:HIGH, got {text!r}")
        return WindowSpec("range", a, b)
    what = "level/width" if level_width else "window"
    presets = ", ".join(CT_PRESETS)
    raise OptionError(
        f"{what}: expected auto, minmax, dicom, LOW:HIGH, pLOW:pHIGH or a CT preset ({presets}), "
        f"got {text!r}"
    )
