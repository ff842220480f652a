"""data/orient.py: RAS+ canonical orientation, axis codes and voxel spacing of an affine."""
import numpy as np

from rstn_core.data.orient import axcodes, canonicalize, spacing_of


def test_an_lps_volume_is_flipped_to_ras_with_the_same_world_points():
    lps = np.diag([-0.8, -0.8, 2.5, 1.0])
    arr = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    out, aff = canonicalize(arr, lps)
    assert axcodes(lps) == "LPS" and axcodes(aff) == "RAS"
    assert out.shape == arr.shape and out.flags.c_contiguous
    i, j, k = 1, 2, 3                                       # a voxel keeps its world position
    world = lps @ [i, j, k, 1]
    ii, jj, kk = np.rint(np.linalg.inv(aff) @ world)[:3].astype(int)
    assert out[ii, jj, kk] == arr[i, j, k]
    assert spacing_of(aff) == (0.8, 0.8, 2.5)
