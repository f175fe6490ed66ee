"""Field checks for the sidecar ``stack`` reads: each error names the sidecar, the field and
the value (``sidecar head.json: source.voxel_sizes[0]: 0 is not a voxel size; ...``).

Numbers are finite; those bound for a NIfTI header (pixdim, srow, quatern, scl_*) fit its float32;
matrices that place voxels or pixels pass ``convert``'s own affine check
(:func:`niftislice.read.validate.affine_problem`); file names are plain names in the folder.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError
from ..read.validate import VOXEL_MM, affine_problem, plausible_voxel_size

#: NIfTI header fields (pixdim, srow, quatern, scl_*) are float32: what they can hold
HEADER_MAX = float(np.finfo(np.float32).max)
HEADER_TINY = float(np.finfo(np.float32).tiny)


class FieldReader:
    """Field checks whose errors name the sidecar, the field and the value."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, where: str, problem: str) -> InputError:
        return InputError(f"sidecar {self.file}: {where}: {problem}")

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"expected an object, got {show(value)}")
        return value

    def items(self, value: object, where: str, least: int, most: int) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(where, f"expected a list, got {show(value)}")
        if not least <= len(value) <= most:
            want = f"{least}" if least == most else f"{least} to {most:,}"
            raise self.error(where, f"expected {want} entries, got {len(value):,}")
        return value

    def number(
        self, value: object, where: str, least: float = -math.inf, *, header: bool = False
    ) -> float:
        """A finite number >= ``least``; with ``header``, one a NIfTI header's float32 holds."""
        x = self._float(value, where)
        if not math.isfinite(x) or x < least:
            bound = "" if least == -math.inf else f" >= {least:g}"
            raise self.error(where, f"expected a finite number{bound}, got {show(value)}")
        if header and abs(x) > HEADER_MAX:
            beyond = f"beyond the float32 range of NIfTI header fields ({HEADER_MAX:.3g})"
            raise self.error(where, f"{x:g} is {beyond}")
        return x

    def whole(self, value: object, where: str, least: int, most: int) -> int:
        ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not ok:
            raise self.error(where, f"expected a whole number, got {show(value)}")
        if not least <= value <= most:  # type: ignore[operator]
            raise self.error(where, f"expected {least} to {most:,}, got {show(value)}")
        return int(value)  # type: ignore[arg-type]

    def matrix(self, value: object, where: str, *, invertible: bool = False) -> np.ndarray:
        rows = self.items(value, where, 4, 4)
        if not all(isinstance(row, list) and len(row) == 4 for row in rows):
            raise self.error(where, "expected a 4 x 4 matrix")
        m = np.array([[self.number(x, where, header=True) for x in row] for row in rows])
        # scale-free (convert's own rule): 10 nm voxels have a determinant of 1e-15 mm^3
        problem = affine_problem(m) if invertible else None
        if problem is not None:
            raise self.error(where, problem)
        return m

    def voxel_size(self, value: object, where: str) -> float:
        """A voxel size within :data:`VOXEL_MM`."""
        x = self._float(value, where)
        if not plausible_voxel_size(x):
            low, high = VOXEL_MM
            raise self.error(
                where,
                f"{x:g} is not a voxel size; expected {low:g} to {high:g} mm "
                "(the sizes convert reads)",
            )
        return x

    def _float(self, value: object, where: str) -> float:
        """A JSON number as a float (an int beyond float64 is inf); anything else is refused."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(where, f"expected a number, got {show(value)}")
        try:
            return float(value)
        except OverflowError:
            return math.inf

    def name(self, value: object, where: str) -> str:
        """A plain file or folder name: nothing that could lead out of the folder."""
        if not isinstance(value, str) or not value or len(value) > 255:
            raise self.error(where, f"expected a file name, got {show(value)}")
        if "/" in value or "\\" in value or "\x00" in value or value in (".", ".."):
            raise self.error(where, f"{show(value)} is not a plain name in the folder; refused")
        return value


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
