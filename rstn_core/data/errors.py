"""`DataError`: the one exception the data layer raises for bad input.

Every message is a single line that names the file (or the value) at fault and the likely
fix, so the `rstn` command can print it without a traceback and exit with status 2.
"""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data: a missing, corrupt, mis-shaped or mislabelled scan, or a bad argument.

    A subclass of `ValueError`. The message is always one line (newlines are folded), e.g.
    ``"scan.nii.gz: truncated or corrupt NIfTI (EOFError); download or extract it again."``
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
