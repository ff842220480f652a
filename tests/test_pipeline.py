"""experiments/pipeline.py: variant names, run-folder checks of a resumed run, the validation split."""
import pytest
from rstn_core.config import get_config


def test_variant_names_follow_cvpr_table_1_and_flag_a_changed_learning_rate():
    from rstn_core.config import get_config
    from rstn_core.experiments.pipeline import variant_name
    assert variant_name(get_config("standard")) == "3x3"
    assert variant_name(get_config("paper", **{"rstn.layers": 2})) == "two-layer 3x3"
    assert variant_name(get_config("standard", **{"rstn.kernel_size": 5,
                                                  "rstn.fine_lr_mult": 10.0})) == \
        "5x5, fine lr x10"
    assert variant_name(get_config("standard", **{"rstn.saliency_lr_mult": 1.0})) == \
        "3x3, g lr x1"
    assert variant_name(get_config("standard", **{"rstn.saliency_init": "random"})) == \
        "3x3, g init random"


def test_run_folder_of_an_older_config_is_accepted_and_other_settings_refused(tmp_path):
    # a config.json written before a field existed still matches (the field takes its default);
    # a changed value is refused with the key named
    import json

    from rstn_core.config import get_config
    from rstn_core.experiments.pipeline import _check_config
    cfg = get_config("smoke")
    _check_config(cfg, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["train"]["keep_snapshots"]            # as if written by an older version
    (tmp_path / "config.json").write_text(json.dumps(saved))
    _check_config(cfg.replace(**{"train.keep_snapshots": False}), tmp_path)  # default: False
    with pytest.raises(FileExistsError, match=r"other settings \(train\)"):
        _check_config(cfg.replace(**{"train.zoom": 3}), tmp_path)


def test_execution_only_settings_may_change_on_resume(tmp_path):
    # workers, checkpointing, compile... change how a run executes, not what it computes
    from rstn_core.experiments.pipeline import _check_config
    cfg = get_config("smoke")
    _check_config(cfg, tmp_path)
    _check_config(cfg.replace(**{"train.workers": 2, "train.activation_checkpointing": True,
                                 "test.compile": True, "device": "cuda"}), tmp_path)
    with pytest.raises(FileExistsError, match=r"\(test\)"):
        _check_config(cfg.replace(**{"test.fixed_point_margin": 7}), tmp_path)


def test_validation_split_holds_out_the_last_sorted_cases():
    from rstn_core.experiments.pipeline import validation_split
    fit, val = validation_split(["c3", "c1", "c4", "c2"], 1)
    assert fit == ["c1", "c2", "c3"] and val == ["c4"]
    with pytest.raises(ValueError, match="between 1 and 3"):
        validation_split(["c1", "c2", "c3", "c4"], 4)


def test_a_stepwise_fold_survives_a_change_of_rstn_settings(tmp_path):
    from rstn_core.errors import RunFolderError
    from rstn_core.experiments.pipeline import _check_config
    cfg = get_config("smoke")
    _check_config(cfg, tmp_path, "stepwise")
    changed = cfg.replace(**{"rstn.saliency_lr_mult": 3.0})
    _check_config(changed, tmp_path, "stepwise")          # RSTN starts from it: still valid
    with pytest.raises(RunFolderError, match="rstn"):
        _check_config(changed, tmp_path, "rstn")
    with pytest.raises(RunFolderError, match="train"):
        _check_config(cfg.replace(**{"train.zoom": 3}), tmp_path, "stepwise")
