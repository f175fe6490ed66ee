"""Reading voxel data: pieces handed out during the read add up to the volume."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import NIBABEL_DATA, save

from niftislice.read import nifti as loading
from niftislice.read.nifti import iter_volumes, read_header


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_pieces_add_up_to_each_volume_in_native_order(name, monkeypatch):
    """anatomical.nii is big-endian int16, example4d little-endian, 2 volumes: every piece is
    native-endian and read-only, and the pieces of each volume concatenate to exactly it."""
    monkeypatch.setattr(loading, "READ_BLOCK", 1 << 12)  # many pieces per volume
    nf = read_header(NIBABEL_DATA / name)
    pieces: list[np.ndarray] = []
    expected = np.asanyarray(nib.load(NIBABEL_DATA / name).dataobj)
    for t, volume in iter_volumes(nf, None, None, pieces.append):
        assert volume.dtype.isnative
        assert all(p.dtype.isnative and not p.flags.writeable for p in pieces)
        got = np.concatenate(pieces)
        pieces.clear()
        ref = expected if expected.ndim == 3 else expected[..., t]
        np.testing.assert_array_equal(got, ref.reshape(-1, order="F"))
        np.testing.assert_array_equal(volume, ref)


def test_no_pieces_for_rgb(tmp_path):
    rgb = np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = save(tmp_path / "rgb.nii.gz", rgb, np.eye(4))
    pieces: list[np.ndarray] = []
    ((_, volume),) = iter_volumes(read_header(path), None, None, pieces.append)
    assert volume.shape == (4, 5, 6, 3) and pieces == []
