"""data/labels.py: which label values make up a target name (organ groups and aliases)."""
import pytest

from rstn_core.data.labels import known_targets, target_values

MSD = {0: "background", 1: "pancreas", 2: "cancer"}


def test_a_name_selects_its_own_value_and_zero_never():
    assert target_values(MSD, "cancer") == [2]
    assert target_values(MSD, " Cancer ") == [2]              # case and spaces do not matter
    assert target_values(MSD, "background") == []
    assert target_values(MSD, "liver") == []


def test_known_targets_lists_the_label_names():
    known = known_targets(MSD)
    assert {"pancreas", "cancer"} <= set(known) and "background" not in known
    assert known == sorted(known)
    for name in known:
        assert target_values(MSD, name), name


@pytest.mark.parametrize("name", ["pancreas"])
def test_the_pancreas_target_includes_the_lesion_values(name):
    assert 1 in target_values(MSD, name)
