"""The catalogue of bad inputs, as a user meets them through `rstn`: every kind ends with a
non-zero exit and exactly one line `rstn: error: ...` that names the key or the file and the
fix, and no traceback. Settings are refused before anything is written or computed.

Each row: (kind, build(tmp, data) -> argv, words the line must hold). `data` is a writable
copy of a 4-case smoke phantom (MSD layout).
"""
import json
import os
import pickle
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from rstn_core.config import get_config
from rstn_core.data import make_folds, save_folds
from rstn_core.experiments.pipeline import _check_config

SMOKE = ["--scale", "smoke", "--device", "cpu", "--quiet"]


def cfg_set(*pairs):
    """`rstn config` with --set overrides."""
    return lambda tmp, data: ["config", "--scale", "smoke", *[a for p in pairs
                                                               for a in ("--set", p)]]


def train(tmp, data, *extra, fold=0, method="stepwise"):
    return ["train", "--method", method, "--fold", str(fold), *SMOKE, "--data", data,
            "--runs", tmp / "runs", "--view", "axial", "--set", "folds=2", *extra]


def argv_of_test(tmp, data, *extra):
    return ["test", "--method", "stepwise", "--fold", "0", *SMOKE, "--data", data,
            "--runs", tmp / "runs", "--set", "folds=2", *extra]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def nifti(path, arr, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4) if affine is None else affine), str(path))
    return path


def msd(tmp, image, label, labels=None):
    """An MSD-like folder with one case; returns its image path (for `rstn inspect`)."""
    root = tmp / "msd"
    write(root / "dataset.json", json.dumps({"labels": labels or {"0": "background",
                                                                  "1": "pancreas"}}))
    nifti(root / "labelsTr" / "c.nii.gz", label)
    return nifti(root / "imagesTr" / "c.nii.gz", image)


VOL = np.zeros((40, 40, 20), np.int16)
LAB = np.zeros((40, 40, 20), np.uint8)
LAB[10:20, 10:20, 5:10] = 1


def dicom_series(tmp, n=3, name="dcm"):
    """n slices of pydicom's CT_small.dcm at z = 0..n-1 (one series)."""
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(n):
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        ds.save_as(folder / f"s{i}.dcm")
    return folder


def dicom_cut(tmp, keep):
    folder = dicom_series(tmp)
    data = (folder / "s1.dcm").read_bytes()
    (folder / "s1.dcm").write_bytes(data[:keep] if keep > 0 else data[:keep])
    return folder


def dicom_two_series(tmp):
    folder = dicom_series(tmp)
    ds = pydicom.dcmread(folder / "s2.dcm")
    ds.SeriesInstanceUID = "1.2.3.4.5.6.7.8"
    ds.save_as(folder / "s2.dcm")
    return folder


def dicom_same_position(tmp):
    folder = dicom_series(tmp)
    ds = pydicom.dcmread(folder / "s2.dcm")
    ds.ImagePositionPatient = [0.0, 0.0, 1.0]
    ds.save_as(folder / "s2.dcm")
    return folder


def made_with(tmp, data, **over):
    """A run folder whose config.json was written with other settings."""
    cfg = get_config("smoke", **{"folds": 2, "data_root": str(data), **over})
    folder = tmp / "runs" / "smoke" / "stepwise" / "fold0"
    folder.mkdir(parents=True)
    _check_config(cfg, folder)
    return folder


def trained_with_bad_checkpoints(tmp, data, payload: bytes):
    folder = tmp / "runs" / "smoke" / "stepwise" / "fold0"
    for v in ("coronal", "sagittal", "axial"):
        for k in ("coarse", "fine"):
            write(folder / f"{v}_{k}" / "checkpoint_final.pt", "").write_bytes(payload)
    return argv_of_test(tmp, data)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def results(tmp, text, where="runs/smoke/stepwise/fold0/test/results.json"):
    write(tmp / where, text)
    return tmp / "runs"


def folds_file(data, k):
    ids = sorted(p.name[:-7] for p in (data / "imagesTr").glob("*.nii.gz"))
    save_folds(make_folds(ids, k), data / "folds.json")
    return data


def no_labels(data):
    shutil.rmtree(data / "labelsTr")
    d = json.loads((data / "dataset.json").read_text())
    for e in d.get("training", []):
        e.pop("label", None)
    (data / "dataset.json").write_text(json.dumps(d))
    return data


def readonly(path):
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


KINDS = [
    # -- settings: type, range, allowed values, unknown keys (rstn config --set) ------------
    ("zoom not a number", cfg_set("train.zoom=abc"), ["train.zoom", "'abc'", "integer >= 1"]),
    ("zoom zero", cfg_set("train.zoom=0"), ["train.zoom", "integer >= 1", "e.g. --set"]),
    ("lr not a number", cfg_set("train.coarse_lr=fast"), ["train.coarse_lr", "number > 0"]),
    ("unknown view", cfg_set('views=["transverse"]'), ["views", "transverse", "axial"]),
    ("no views", cfg_set("views=[]"), ["views", "empty", "e.g. --set views="]),
    ("view twice", cfg_set("views=[axial,axial]"), ["views", "twice"]),
    ("checkpoint_every zero", cfg_set("train.checkpoint_every=0"),
     ["train.checkpoint_every", ">= 1"]),
    ("renamed test.T", cfg_set("test.T=0"), ["test.T", "renamed test.max_rounds"]),
    ("renamed test.margin", cfg_set("test.margin=5"), ["test.margin", "fixed_point_margin"]),
    ("T zero", cfg_set("test.max_rounds=0"), ["test.max_rounds", ">= 1"]),
    ("negative iterations", cfg_set("train.coarse_iterations=-5"),
     ["train.coarse_iterations", ">= 1"]),
    ("fine iterations zero", cfg_set("train.fine_iterations=0"), ["train.fine_iterations"]),
    ("batch_size zero", cfg_set("train.batch_size=0"), ["train.batch_size", ">= 1"]),
    ("test batch_size zero", cfg_set("test.batch_size=0"), ["test.batch_size", ">= 1"]),
    ("thr above 1", cfg_set("test.thr=1.5"), ["test.thr", "(0, 1]"]),
    ("R zero", cfg_set("test.R=0"), ["test.R", "(0, 1]"]),
    ("R not finite", cfg_set("test.R=nan"), ["test.R", "(0, 1]"]),
    ("margins out of order", cfg_set("train.margin_low=70"),
     ["train.margin_low=70", "train.margin_high=60", "<="]),
    ("negative margin", cfg_set("test.fixed_point_margin=-1"), ["test.fixed_point_margin"]),
    ("amp unknown", cfg_set("train.amp=fp32"), ["train.amp", "bf16", "off"]),
    ("test amp unknown", cfg_set("test.amp=int8"), ["test.amp", "auto"]),
    ("scale unknown via --set", cfg_set("scale=huge"), ["scale", "huge", "colab"]),
    ("one fold", cfg_set("folds=1"), ["folds", ">= 2"]),
    ("optimizer unknown", cfg_set("train.optimizer=rmsprop"), ["train.optimizer", "adam"]),
    ("loss unknown", cfg_set("train.coarse_loss=ce"), ["train.coarse_loss", "dice_bce"]),
    ("even fc kernel", cfg_set("model.fc_kernel=4"), ["model.fc_kernel", "odd"]),
    ("dropout one", cfg_set("model.dropout=1"), ["model.dropout", "[0, 1)"]),
    ("width zero", cfg_set("model.width=0"), ["model.width", "> 0"]),
    ("even RSTN kernel", cfg_set("rstn.kernel_size=2"), ["rstn.kernel_size", "odd"]),
    ("RSTN layers", cfg_set("rstn.layers=3"), ["rstn.layers", "[1, 2]"]),
    ("RSTN T zero", cfg_set("rstn.T=0"), ["rstn.T", ">= 1"]),
    ("init_scale length", cfg_set("rstn.init_scale=[1,2]"), ["rstn.init_scale", "3 numbers"]),
    ("RSTN no phases", cfg_set("rstn.gt_iterations=0", "rstn.pred_iterations=0",
                               "rstn.noisy_iterations=0"), ["rstn.gt_iterations", "at least"]),
    ("bool not a bool", cfg_set("train.keep_snapshots=maybe"),
     ["train.keep_snapshots", "true or false"]),
    ("negative seed", cfg_set("seed=-1"), ["seed", ">= 0"]),
    ("momentum one", cfg_set("train.momentum=1"), ["train.momentum", "[0, 1)"]),
    ("positive_fraction", cfg_set("train.positive_fraction=2"), ["train.positive_fraction"]),
    ("prefetch zero", cfg_set("train.prefetch=0"), ["train.prefetch", ">= 1"]),
    ("unknown key", cfg_set("train.zooom=2"), ["train.zooom", "did you mean 'train.zoom'"]),
    ("unknown section", cfg_set("nosuch.x=1"), ["nosuch", "sections"]),
    ("a section set", cfg_set("train=5"), ["train", "section"]),
    ("--set without =", cfg_set("zoom"), ["--set 'zoom'", "KEY=VALUE"]),
    ("ImageNet weights on a small net", cfg_set("model.pretrained=imagenet"),
     ["model.pretrained", "model.width=1", "model.pretrained=null"]),
    ("fewer cases than folds", cfg_set("n_cases=2"), ["n_cases=2", "folds=4"]),
    ("phantom shape too small", cfg_set("phantom.shape=[8,8,8]"), ["phantom", "shape", ">= 16"]),
    ("phantom knob not a number", cfg_set("phantom.noise_hu=loud"), ["phantom.noise_hu"]),
    ("device unknown", lambda t, d: ["config", "--device", "gpu"], ["device", "'gpu'", "cpu"]),
    ("cuda without CUDA", lambda t, d: ["config", "--device", "cuda"],
     ["cuda", "--device cpu"]),
    # -- config files ---------------------------------------------------------------------
    ("config file missing", lambda t, d: ["config", "--config", t / "no.json"],
     ["no.json", "not found", "rstn config"]),
    ("config JSON malformed", lambda t, d: ["config", "--config", write(t / "c.json", "{ 'a': ")],
     ["c.json", "not valid JSON", "line 1"]),
    ("config YAML malformed", lambda t, d: ["config", "--config", write(t / "c.yaml", "a: [1\n")],
     ["c.yaml", "not valid YAML"]),
    ("config file not a mapping", lambda t, d: ["config", "--config", write(t / "c.json", "[1]")],
     ["c.json", "mapping"]),
    ("config file unknown key", lambda t, d: ["config", "--config",
                                              write(t / "c.json", '{"train": {"zom": 1}}')],
     ["c.json", "train.zom", "did you mean"]),
    ("config file bad value", lambda t, d: ["config", "--config",
                                            write(t / "c.yaml", "train:\n  zoom: -1\n")],
     ["c.yaml", "train.zoom", ">= 1"]),
    # -- the command line -----------------------------------------------------------------
    ("scale unknown", lambda t, d: ["train", "--method", "stepwise", "--fold", "0", "--scale",
                                    "huge"], ["--scale", "huge", "rstn train --help"]),
    ("method unknown", lambda t, d: ["train", "--method", "unet", "--fold", "0"],
     ["--method", "unet", "stepwise"]),
    ("fold negative", lambda t, d: ["train", "--method", "stepwise", "--fold", "-1"],
     ["--fold", ">= 0"]),
    ("fold out of range", lambda t, d: ["train", "--method", "stepwise", "--fold", "4",
                                        *SMOKE, "--runs", t / "runs"],
     ["--fold 4", "folds=4", "0..3"]),
    ("fold out of range for folds=2", lambda t, d: ["test", "--method", "stepwise", "--fold", "2",
                                                    *SMOKE, "--set", "folds=2"],
     ["--fold 2", "folds=2", "0..1"]),
    ("run folds out of range", lambda t, d: ["run", "--folds", "7", *SMOKE,
                                             "--runs", t / "runs"], ["--fold 7", "0..3"]),
    ("unknown verb", lambda t, d: ["frobnicate"], ["frobnicate", "choose from"]),
    ("compare stop rule", lambda t, d: ["compare", t, t, "--a-stop", "0.5"],
     ["--a-stop", "0.5", "0.95", "best"]),
    ("phantom unknown knob", lambda t, d: ["phantom", "--set", "nonsense=1", "--out", t / "p"],
     ["nonsense", "known", "lookalike"]),
    ("phantom knob out of range", lambda t, d: ["phantom", "--set", "lookalike=2",
                                                "--out", t / "p"], ["lookalike", "[0.0, 1.0]"]),
    ("phantom --out is a file", lambda t, d: ["phantom", "--scale", "smoke", "--cases", "1",
                                              "--out", write(t / "f.txt", "x")],
     ["f.txt", "is a file", "folder"]),
    ("phantom zero cases", lambda t, d: ["phantom", "--cases", "0"], ["--cases", ">= 1"]),
    ("folds jobs zero", lambda t, d: ["folds", "--notebook", "x.ipynb", "--jobs", "0"],
     ["--jobs", ">= 1"]),
    ("folds notebook missing", lambda t, d: ["folds", "--notebook", t / "no.ipynb", "--folds", "0",
                                             "--out", t / "nb"], ["no.ipynb", "not found"]),
    # -- run folders and results ----------------------------------------------------------
    ("report: root missing", lambda t, d: ["report", "--runs", t / "nowhere"],
     ["nowhere", "not found", "--runs"]),
    ("report: no results", lambda t, d: ["report", "--runs", readonly(t / "empty"),
                                         "--book", ""], ["empty", "no results", "rstn test"]),
    ("report: results.json malformed", lambda t, d: ["report", "--runs", results(t, "{oops"),
                                                     "--book", ""],
     ["results.json", "not valid JSON", "rerun `rstn test`"]),
    ("compare: folder missing", lambda t, d: ["compare", t / "a", t / "b"],
     ["run folder", "not found"]),
    ("report: equal-work folder missing", lambda t, d: ["report", "--runs", results(t, "{}"),
                                                        "--equal-work", t / "nolong"],
     ["--equal-work", "nolong", "not found"]),
    ("compare: breakdown data missing", lambda t, d: ["compare", t, t, "--breakdown",
                                                      t / "nodata"],
     ["--breakdown", "nodata", "no such data set folder"]),
    ("compare: results.json malformed", lambda t, d: [
        "compare", results(t, "[1,").parent / "runs/smoke/stepwise", t],
     ["results.json", "not valid JSON"]),
    ("figures: no runs", lambda t, d: ["figures", "--runs", t / "r", "--out", t / "fig"],
     ["no fold under", "rstn test"]),
    ("test before train", lambda t, d: argv_of_test(t, d), ["no trained run", "rstn train"]),
    ("run folder made with other settings", lambda t, d: (made_with(t, d, **{"train.zoom": 3}),
                                                          train(t, d))[1],
     ["fold0", "other settings (train)", "another --runs"]),
    ("run config.json malformed", lambda t, d: (write(
        t / "runs/smoke/stepwise/fold0/config.json", "{"), train(t, d))[1],
     ["config.json", "not valid JSON"]),
    ("folds.json of another k", lambda t, d: (folds_file(d, 4), train(t, d))[1],
     ["folds.json", "4 folds", "folds=2", "--set folds=4"]),
    ("folds.json malformed", lambda t, d: (write(d / "folds.json", '{"k": 2}'), train(t, d))[1],
     ["folds.json", "not a folds file"]),
    ("--runs is a file", lambda t, d: ["train", "--method", "stepwise", "--fold", "0", *SMOKE,
                                       "--data", d, "--runs", write(t / "runs.txt", "x"),
                                       "--set", "folds=2"],
     ["runs.txt", "is a file", "--runs"]),
    ("corrupt checkpoint", lambda t, d: trained_with_bad_checkpoints(t, d, b"\x80garbage"),
     ["checkpoint_final.pt", "could not be read", "retrain"]),
    ("malicious checkpoint", lambda t, d: trained_with_bad_checkpoints(t, d, pickle.dumps(Evil())),
     ["checkpoint_final.pt", "could not be read"]),
    # -- data sets --------------------------------------------------------------------------
    ("data root missing", lambda t, d: train(t, t / "nodata"), ["nodata", "not found", "--data"]),
    ("data root empty", lambda t, d: train(t, readonly(t / "emptydata")),
     ["emptydata", "empty folder"]),
    ("data set without labels", lambda t, d: train(t, no_labels(d)),
     ["no case has a label", "labelled"]),
    ("fewer labelled cases than folds", lambda t, d: train(t, d, "--set", "folds=5"),
     ["4 labelled cases", "folds=5", "--set folds=4"]),
    ("unknown target", lambda t, d: train(t, d, "--target", "appendix"),
     ["appendix", "known"]),
    ("dataset.json malformed", lambda t, d: (write(d / "dataset.json", "{"), train(t, d))[1],
     ["dataset.json", "not valid JSON"]),
    ("dataset.json lists a missing file", lambda t, d: (
        (d / "imagesTr" / "phantom_000.nii.gz").unlink(), train(t, d))[1],
     ["phantom_000.nii.gz", "does not exist"]),
    ("volume too small for the net", lambda t, d: train(t, msd_two(t, (20, 20, 20))),
     ["small/imagesTr/c", "32 x 32", "resample"]),
    ("2D NIfTI where 3D is needed", lambda t, d: train(t, msd_two(t, (40, 40))),
     ["small/imagesTr/c", "2D", "3D volume"]),
    ("inspect: path missing", lambda t, d: ["inspect", t / "nothing"],
     ["nothing", "does not exist"]),
    ("inspect: empty folder", lambda t, d: ["inspect", readonly(t / "e")], ["empty folder"]),
    ("truncated NIfTI", lambda t, d: ["inspect", truncated(t)], ["scan.nii.gz", "again"]),
    ("4D NIfTI", lambda t, d: ["inspect", nifti(t / "v4.nii.gz", np.zeros((4, 4, 4, 2),
                                                                           np.int16))],
     ["v4.nii.gz", "4D", "3D"]),
    ("NaN in the image", lambda t, d: ["inspect", nifti(t / "nan.nii.gz", nan_volume())],
     ["nan.nii.gz", "NaN/inf"]),
    ("not a DICOM file", lambda t, d: ["inspect", write(t / "notes.dcm", "hello\n" * 40)],
     ["notes.dcm", "DICOM header", "again"]),
    ("label shape differs", lambda t, d: ["inspect", msd(t, VOL, LAB[:-1])],
     ["labelsTr", "shape"]),
    ("label affine differs", lambda t, d: ["inspect", msd_affine(t)], ["labelsTr", "affine"]),
    ("label values not integers", lambda t, d: ["inspect", msd(t, VOL, LAB * 0.5)],
     ["labelsTr", "non-integer"]),
    ("label values unknown", lambda t, d: ["inspect", msd(t, VOL, LAB * 7)],
     ["labelsTr", "unknown label values"]),
    ("DICOM header truncated", lambda t, d: ["inspect", dicom_cut(t, 400)],
     ["s1.dcm", "SeriesInstanceUID", "copy it again"]),
    ("DICOM pixel data truncated", lambda t, d: ["inspect", dicom_cut(t, -5000)],
     ["s1.dcm", "pixel data is truncated", "copy the file again"]),
    ("DICOM two series", lambda t, d: ["inspect", dicom_two_series(t)],
     ["2 DICOM series", "one series"]),
    ("DICOM slice twice", lambda t, d: ["inspect", dicom_same_position(t)],
     ["same slice position", "keep one copy"]),
]


def msd_two(tmp, shape):
    """An MSD folder of two cases of `shape` (2D or 3D) with a pancreas label."""
    root = tmp / "small"
    write(root / "dataset.json", json.dumps({"labels": {"0": "background", "1": "pancreas"}}))
    for i in range(2):
        lab = np.zeros(shape, np.uint8)
        lab[tuple(slice(n // 4, n // 2) for n in shape)] = 1
        nifti(root / "labelsTr" / f"c{i}.nii.gz", lab)
        nifti(root / "imagesTr" / f"c{i}.nii.gz", np.zeros(shape, np.int16))
    return root


def msd_affine(tmp):
    img = msd(tmp, VOL, LAB)
    aff = np.eye(4)
    aff[0, 3] = 10.0
    nifti(img.parent.parent / "labelsTr" / "c.nii.gz", LAB, aff)
    return img


def truncated(tmp):
    p = nifti(tmp / "scan.nii.gz", np.arange(40 * 40 * 20, dtype=np.int16).reshape(40, 40, 20))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    return p


def nan_volume():
    v = np.zeros((20, 20, 20), np.float32)
    v[5, 5, 5] = np.nan
    return v


def test_the_catalogue_has_at_least_60_kinds():
    assert len(KINDS) >= 60, len(KINDS)
    assert len({k[0] for k in KINDS}) == len(KINDS), "kind names must be unique"


@pytest.mark.parametrize("kind, build, words", KINDS, ids=[k[0] for k in KINDS])
def test_bad_input_is_one_line_and_a_nonzero_exit(kind, build, words, tmp_path, smoke_dataset,
                                                  run_rstn):
    if kind == "cuda without CUDA" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = tmp_path / "data"
    shutil.copytree(smoke_dataset, data, ignore=shutil.ignore_patterns("folds.json"))  # other tests may have split it
    argv = build(tmp_path, data)
    code, err, _ = run_rstn(*argv)
    assert code == 2, (kind, code, err)
    assert len(err) == 1, (kind, err)                     # one line, no traceback
    line = err[0]
    assert line.startswith("rstn: error: ") and "Traceback" not in line, line
    for w in words:
        assert w in line, (kind, w, line)


def test_debug_shows_the_traceback_of_a_user_error(run_rstn):
    code, err, _ = run_rstn("--debug", "config", "--set", "train.zoom=abc")
    assert code == 2 and err[0].startswith("Traceback") and err[-1].startswith("rstn: error:")


def test_a_bad_setting_writes_nothing(tmp_path, smoke_dataset, run_rstn):
    # the first case: `--set train.zoom=abc` used to fail after config.json was
    # written and a coarse net trained; now nothing is written at all
    code, err, _ = run_rstn("train", "--method", "stepwise", "--fold", "0", *SMOKE, "--data",
                            smoke_dataset, "--runs", tmp_path / "runs", "--set", "train.zoom=abc")
    assert code == 2 and "train.zoom" in err[0]
    assert not (tmp_path / "runs").exists()
