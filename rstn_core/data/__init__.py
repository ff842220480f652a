"""Data: the synthetic CT phantom, real-data loaders (NIH Pancreas-CT, MSD Task07, DICOM,
NIfTI), folds, the per-view cache and `inspect_path`. See data/README.md."""
from rstn_core.data.cache import CaseCache
from rstn_core.data.case import Case, CaseRef
from rstn_core.data.dicom import read_dicom_series
from rstn_core.data.errors import DataError
from rstn_core.data.folds import fold_split, load_folds, make_folds, save_folds
from rstn_core.data.labels import MSD_LABELS, NIH_LABELS, PHANTOM_LABELS, known_targets, target_mask
from rstn_core.data.loaders import detect_source, list_cases, load_case
from rstn_core.data.phantom import PhantomConfig, make_case, phantom_preset, write_dataset
from rstn_core.data.summary import inspect_path

__all__ = ["Case", "CaseRef", "CaseCache", "DataError", "PhantomConfig", "phantom_preset",
           "make_case", "write_dataset", "load_case", "list_cases", "detect_source",
           "read_dicom_series", "target_mask", "known_targets", "make_folds", "fold_split",
           "save_folds", "load_folds", "inspect_path", "PHANTOM_LABELS",
           "NIH_LABELS", "MSD_LABELS"]
