"""data/case.py: CaseRef (where a case lives) and Case (one volume in RAS+)."""
from rstn_core.data import make_case, phantom_preset
from rstn_core.data.case import Case, CaseRef


def test_case_ref_fields_and_a_phantom_case():
    ref = CaseRef("phantom_000", "img.nii.gz", None, "phantom")
    assert ref.label is None and ref._replace(label="lab.nii.gz").label == "lab.nii.gz"
    case = make_case(phantom_preset("smoke"), 0, 0)
    assert isinstance(case, Case)
    assert case.image.shape == case.labels.shape and case.image.dtype.name == "float32"
