"""The validated configuration: values converted to the field types, every field checked when a
config is built, loaded or overridden, cross-field rules, renamed keys, and the run-folder
checks (folds.json's k, resolved paths on resume)."""
import json
import os
from dataclasses import fields

import pytest

from rstn_core.config import (AMP_MODES, RULES, SCALES, Config, ModelConfig, RSTNConfig,
                              TestConfig, TrainConfig, get_config, replace_phantom)
from rstn_core.data import load_folds, phantom_preset
from rstn_core.errors import ConfigError, RunFolderError


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_is_valid_and_round_trips(scale, tmp_path):
    cfg = get_config(scale)
    assert Config.from_dict(cfg.to_dict()) == cfg
    for name in ("c.json", "c.yaml"):
        (cfg.to_json if name.endswith("json") else cfg.to_yaml)(tmp_path / name)
        assert Config.load(tmp_path / name) == cfg


def test_text_values_are_converted_to_the_field_types():
    cfg = get_config("smoke").replace(**{
        "train.zoom": "3", "train.coarse_lr": "1e-4", "train.keep_snapshots": "false",
        "test.compile": "yes", "views": "[axial, coronal]", "rstn.init_scale": "1,1.5,2",
        "model.pretrained": "null", "seed": 7.0, "phantom.shape": "[64, 64, 32]"})
    assert cfg.train.zoom == 3 and isinstance(cfg.train.zoom, int)
    assert cfg.train.coarse_lr == 1e-4 and cfg.train.keep_snapshots is False
    assert cfg.test.compile is True and cfg.views == ("axial", "coronal")
    assert cfg.rstn.init_scale == (1.0, 1.5, 2.0) and cfg.model.pretrained is None
    assert cfg.seed == 7 and isinstance(cfg.seed, int)
    assert cfg.phantom.shape == (64, 64, 32)


def test_every_rule_names_a_field():
    sections = {"model": ModelConfig, "train": TrainConfig, "rstn": RSTNConfig,
                "test": TestConfig}
    top = {f.name for f in fields(Config)}
    for key in RULES:
        head, _, leaf = key.partition(".")
        if not leaf:
            assert head in top, key
        elif head == "phantom":
            assert leaf in {f.name for f in fields(type(phantom_preset("smoke")))}, key
        else:
            assert leaf in {f.name for f in fields(sections[head])}, key


def test_amp_modes_agree_with_the_engine():
    from rstn_core.engine.device import AMP_MODES as ENGINE
    assert tuple(AMP_MODES) == tuple(ENGINE)


@pytest.mark.parametrize("key, value, words", [
    ("train.zoom", "abc", ["train.zoom='abc'", "an integer >= 1", "e.g. --set train.zoom="]),
    ("train.zoom", 1.5, ["train.zoom=1.5", "integer"]),
    ("train.keep_snapshots", 2, ["true or false"]),
    ("test.thr", 0, ["test.thr=0", "(0, 1]"]),
    ("views", ("axial", "nope"), ["views holds 'nope'"]),
    ("train.amp", "fp32", ["one of ['auto', 'bf16', 'fp16', 'off']"]),
    ("device", "tpu", ["device='tpu'", "'cuda:N'"]),
    ("target", "", ["target=''", "non-empty"]),
    ("run_root", None, ["run_root=None"]),
])
def test_bad_values_are_one_line_with_key_value_and_what_is_allowed(key, value, words):
    with pytest.raises(ConfigError) as e:
        get_config("smoke").replace(**{key: value})
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_checked_when_built_loaded_and_overridden(tmp_path):
    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        get_config("huge")
    with pytest.raises(ConfigError, match="train.zoom"):
        get_config("smoke", **{"train.zoom": 0})
    d = get_config("smoke").to_dict()
    d["train"]["batch_size"] = 0
    with pytest.raises(ConfigError, match="train.batch_size"):
        Config.from_dict(d)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"c\.json: train\.batch_size"):
        Config.load(path)
    cfg = get_config("smoke")
    cfg.train.zoom = -1                            # assigned directly: validated() refuses it
    with pytest.raises(ConfigError, match="train.zoom"):
        cfg.validated()


def test_renamed_keys_are_read_from_old_files_and_refused_on_the_command_line():
    d = get_config("smoke").to_dict()
    d["test"]["T"] = d["test"].pop("max_rounds")
    d["test"]["margin"] = d["test"].pop("fixed_point_margin")
    cfg = Config.from_dict(d)
    assert cfg.test.max_rounds == 3 and cfg.test.fixed_point_margin == 30
    with pytest.raises(ConfigError, match="renamed test.max_rounds"):
        get_config("smoke").replace(**{"test.T": 2})


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="margin_low=61 > train.margin_high=60"):
        get_config("smoke", **{"train.margin_low": 61})
    with pytest.raises(ConfigError, match="VGG16's shape"):
        get_config("smoke", **{"model.pretrained": "imagenet"})
    assert get_config("paper").model.pretrained == "imagenet"      # the VGG16 shape: fine
    with pytest.raises(ConfigError, match="n_cases=3 phantom cases cannot make folds=4"):
        get_config("smoke", n_cases=3)
    assert get_config("smoke", n_cases=3, data_root="/data").n_cases == 3   # real data: fine


def test_phantom_overrides_are_checked():
    p = replace_phantom(phantom_preset("smoke"), lookalike="0", cysts="false")
    assert p.lookalike == 0.0 and p.cysts is False
    with pytest.raises(ConfigError, match="unknown knob 'lookalik'.*did you mean 'lookalike'"):
        replace_phantom(phantom_preset("smoke"), lookalik=0)
    with pytest.raises(ConfigError, match=r"lookalike must be a number in \[0.0, 1.0\]"):
        replace_phantom(phantom_preset("smoke"), lookalike=3)


# -- run folders ---------------------------------------------------------------------------------
def test_folds_json_records_k_and_seed_and_another_k_is_refused(tmp_path, smoke_dataset):
    import shutil

    from rstn_core.experiments.pipeline import fold_cases
    data = tmp_path / "data"
    shutil.copytree(smoke_dataset, data)
    cfg = get_config("smoke", data_root=str(data), run_root=str(tmp_path / "runs"), folds=2,
                     seed=3)
    train, test = fold_cases(cfg, 1, progress=False)
    saved = json.loads((data / "folds.json").read_text())
    assert saved["k"] == 2 and saved["seed"] == 3 and len(load_folds(data / "folds.json")) == 2
    assert len(train) == 2 and len(test) == 2
    with pytest.raises(RunFolderError, match="2 folds, but this run has folds=4"):
        fold_cases(cfg.replace(folds=4), 0, progress=False)


def test_resume_compares_resolved_paths(tmp_path, monkeypatch):
    from rstn_core.experiments.pipeline import _check_config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    cfg = get_config("smoke", run_root="runs", data_root="d")
    _check_config(cfg, tmp_path)
    _check_config(cfg.replace(run_root="./runs", data_root="./d/"), tmp_path)   # same folders
    _check_config(cfg.replace(run_root=str(tmp_path / "moved"),
                              data_root=str(tmp_path / "d")), tmp_path)
    with pytest.raises(FileExistsError, match=r"other settings \(data_root\)"):
        _check_config(cfg.replace(data_root="other"), tmp_path)


def test_a_config_that_fails_validation_never_reaches_config_json(tmp_path):
    from rstn_core.experiments.pipeline import train_fold
    cfg = get_config("smoke", run_root=str(tmp_path / "runs"))
    cfg.train.coarse_iterations = -5               # a notebook assigning a bad value
    with pytest.raises(ConfigError, match="train.coarse_iterations"):
        train_fold(cfg, "stepwise", 0, progress=False)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="fold 4 is out of range"):
        train_fold(get_config("smoke", run_root=str(tmp_path / "runs")), "stepwise", 4)
    assert not (tmp_path / "runs").exists()


def test_help_texts_read_the_config(capsys):
    from rstn_core.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    for name, p in sub.choices.items():
        assert p.description, f"`rstn {name}` has no description"
    text = sub.choices["train"].format_help()
    assert "0..3" in text and "default: standard" in text
    scales = {a.default for name, p in sub.choices.items() if name != "bench"   # its own
              for a in p._actions if a.dest == "scale"}
    assert scales <= {"standard", None}, scales


def test_created_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = get_config("smoke").to_json(tmp_path / "c.json") and tmp_path / "c.json"
        assert (os.stat(path).st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
