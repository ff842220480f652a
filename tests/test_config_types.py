"""config_types.py: conversion of text values to the field types and the "did you mean" hint."""
import pytest

from rstn_core.config_types import all_keys, did_you_mean, plain


def test_did_you_mean_names_a_close_key_only():
    assert "'train.zoom'" in did_you_mean("train.zom", ["train.zoom", "test.batch_size"])
    assert did_you_mean("colour", ["train.zoom"]) == ""


def test_all_keys_are_dotted_paths_of_the_leaves():
    assert all_keys({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == ["a", "b.c", "b.d.e"]


@pytest.mark.parametrize("value, want", [((1, 2), [1, 2]), ("x", "x"), (3, 3)])
def test_plain_turns_tuples_into_lists(value, want):
    assert plain(value) == want
