"""MetaImage: niftislice's own parser against SimpleITK (why the parser is used).

    python benchmarks/metaimage_reader.py

Writes the 1 mm template (int16, stored P-I-R) as ``.mha`` with SimpleITK, raw and zlib
compressed, reads it back with both (best of 5), checks the arrays and RAS affines are equal,
and times ``import`` of each reader in a fresh interpreter (median of 5; numpy and nibabel are
loaded first, as they are in niftislice anyway). Needs SimpleITK (the test extra).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel import orientations as ornts

from niftislice import sample_path
from niftislice.read.metaimage import read_metaimage

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def template_pir() -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(sample_path())
    data = np.asanyarray(img.dataobj).astype(np.int16)
    tr = ornts.ornt_transform(ornts.io_orientation(img.affine), ornts.axcodes2ornt("PIR"))
    arr = np.ascontiguousarray(ornts.apply_orientation(data, tr))
    return arr, img.affine @ ornts.inv_ornt_aff(tr, data.shape)


def write(path: Path, arr: np.ndarray, affine: np.ndarray, compress: bool) -> None:
    img = sitk.GetImageFromArray(arr.T.copy())
    world = LPS @ affine
    spacing = np.linalg.norm(world[:3, :3], axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((world[:3, :3] / spacing).ravel().tolist())
    img.SetOrigin(world[:3, 3].tolist())
    sitk.WriteImage(img, str(path), useCompression=compress)


def by_sitk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = sitk.ReadImage(str(path))
    lps = np.eye(4)
    lps[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return sitk.GetArrayFromImage(img).T, LPS @ lps


def best_ms(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def import_ms(module: str, runs: int = 5) -> float:
    code = f"import numpy, nibabel, time; t = time.perf_counter(); import {module}; "
    code += "print(time.perf_counter() - t)"
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(times) * 1e3


def main() -> None:
    arr, affine = template_pir()
    with tempfile.TemporaryDirectory() as tmp:
        for compress in (False, True):
            path = Path(tmp) / f"t{int(compress)}.mha"
            write(path, arr, affine, compress)
            ours = read_metaimage(path)
            ref, ref_affine = by_sitk(path)
            same = np.array_equal(ours.load(), ref) and np.allclose(ours.affine, ref_affine)
            t_ours = best_ms(lambda p=path: read_metaimage(p).load())
            t_sitk = best_ms(lambda p=path: by_sitk(p))
            kind = "zlib" if compress else "raw"
            print(f"{kind}: parser {t_ours:.0f} ms, SimpleITK {t_sitk:.0f} ms, equal: {same}")
    for module in ("niftislice.read.metaimage", "SimpleITK"):
        print(f"import {module}: {import_ms(module):.0f} ms")


if __name__ == "__main__":
    main()
