"""data/dicom.py: finding and reading a DICOM series (one file here: pydicom's CT_small)."""
from pydicom.data import get_testdata_file

from rstn_core.data.dicom import find_dicom_files, is_dicom_file


def test_dicom_files_are_told_from_other_files(tmp_path):
    ct = get_testdata_file("CT_small.dcm")
    assert is_dicom_file(ct)
    (tmp_path / "notes.txt").write_text("not a scan")
    assert not is_dicom_file(tmp_path / "notes.txt")
    (tmp_path / "a.dcm").write_bytes(open(ct, "rb").read())
    assert [p.name for p in find_dicom_files(tmp_path)] == ["a.dcm"]
