"""`DataError`: the one exception the data layer raises for bad input.

Every message is a single line that names the file (or the value) at fault and the likely
fix, so the `rstn` command can print it without a traceback and exit with status 2.
It belongs to the project's family of user errors (`rstn_core.errors.RstnError`).
"""
from __future__ import annotations

from rstn_core.errors import RstnError

__all__ = ["DataError"]


class DataError(RstnError, ValueError):
    """Bad input data: a missing, corrupt, mis-shaped or mislabelled scan, or a bad argument.

    A subclass of `RstnError` and `ValueError`. The message is always one line (newlines are
    folded), e.g.
    ``"scan.nii.gz: truncated or corrupt NIfTI (EOFError); download or extract it again."``
    """
