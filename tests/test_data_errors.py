"""data/errors.py: DataError, the one-line error of a bad input file or folder."""
import pytest

from rstn_core.data.errors import DataError
from rstn_core.errors import RstnError


def test_data_error_is_a_one_line_value_error():
    with pytest.raises(ValueError) as e:
        raise DataError("scan.nii.gz:\nnot a NIfTI file")
    assert isinstance(e.value, RstnError) and "\n" not in str(e.value)
