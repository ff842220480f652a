"""data/cache.py: the per-view uint8 cache (memmaps) and its invalidation."""
import os
import time

import numpy as np
from rstn_core.data import CaseCache, list_cases, load_case
from rstn_core.views import window_uint8


def test_cache_views_memmap_and_invalidation(phantom_root, tmp_path):
    ref = list_cases(phantom_root)[1]
    cache = CaseCache(tmp_path / "cache")
    views = cache.get(ref)
    case = load_case(ref)
    img, lab = views["axial"]
    assert isinstance(img, np.memmap) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert img.shape == (48, 96, 96) and views["sagittal"][0].shape == (96, 96, 48)
    assert np.array_equal(img, np.moveaxis(window_uint8(case.image), 2, 0))
    assert np.array_equal(lab, np.moveaxis(case.labels, 2, 0))
    assert np.array_equal(views["coronal"][1], case.labels)
    assert abs(window_uint8(np.float32([-100, 70, 240])) - [0, 128, 255]).max() <= 1
    t0 = os.stat(cache.path(ref) / "meta.json").st_mtime_ns
    cache.get(ref)                                                  # fresh: not rebuilt
    assert os.stat(cache.path(ref) / "meta.json").st_mtime_ns == t0
    time.sleep(0.01)
    os.utime(ref.image, ns=(time.time_ns(), time.time_ns()))        # the source changed
    cache.get(ref)
    assert os.stat(cache.path(ref) / "meta.json").st_mtime_ns != t0
    assert cache.info(ref)["window"] == [-100.0, 240.0]
