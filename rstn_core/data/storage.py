"""Deprecated: the atomic writers live in rstn_core.io (kept until the phantom moves over)."""
from rstn_core.io import atomic_save_nifti, atomic_save_npy, atomic_write_json

__all__ = ["atomic_save_nifti", "atomic_save_npy", "atomic_write_json"]
