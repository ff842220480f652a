"""Tests of rstn_core.data.fetch against a local HTTP server (127.0.0.1, Range support) that
serves small archives with the real layouts: a full download, an interrupted one resumed, a
wrong checksum refused, junk and unsafe members, and the NIH assembly (images + labels)."""
import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nibabel as nib
import numpy as np
import pytest

from rstn_core.data import Case, DataError, list_cases, load_folds
from rstn_core.data.fetch import NIH_WITHDRAWN, Source, download, extract, fetch_msd, fetch_nih
from tests.helpers import dicom_index_affine, write_dicom_series


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):                                    # noqa: N802 (http.server's name)
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop_after is not None:                    # cut the connection midway, once
            self.wfile.write(body[:srv.drop_after])
            self.wfile.flush()
            srv.drop_after = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.log, srv.ranges, srv.drop_after = {}, [], True, None
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _nifti_bytes(arr, affine=np.diag([1.5, 1.5, 3.0, 1.0])):
    return nib.Nifti1Image(arr, affine).to_bytes()


def _msd_tar() -> bytes:
    """A Task07_Pancreas.tar with the real layout (and the real archive's ._* junk)."""
    img = np.full((16, 16, 8), -1000, np.int16)
    img[4:12, 4:12, 2:6] = 40
    img[6:10, 6:10, 3:5] = 100
    lab = np.zeros((16, 16, 8), np.uint8)
    lab[6:10, 6:10, 3:5] = 1
    ds = {"name": "Pancreas", "labels": {"0": "background", "1": "pancreas", "2": "cancer"},
          "numTraining": 1, "training": [{"image": "./imagesTr/pancreas_001.nii.gz",
                                          "label": "./labelsTr/pancreas_001.nii.gz"}],
          "test": ["./imagesTs/pancreas_002.nii.gz"]}
    members = {"Task07_Pancreas/dataset.json": json.dumps(ds).encode(),
               "Task07_Pancreas/imagesTr/pancreas_001.nii.gz": _nifti_bytes(img),
               "Task07_Pancreas/labelsTr/pancreas_001.nii.gz": _nifti_bytes(lab),
               "Task07_Pancreas/imagesTs/pancreas_002.nii.gz": _nifti_bytes(img),
               "Task07_Pancreas/imagesTr/._pancreas_001.nii.gz": b"\x00\x05\x16\x07junk",
               "._Task07_Pancreas": b"\x00\x05\x16\x07junk"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def msd(server):
    data = _msd_tar()
    server.files["/Task07_Pancreas.tar"] = data
    return Source(server.url + "/Task07_Pancreas.tar", "md5", hashlib.md5(data).hexdigest(),
                  "Task07_Pancreas"), data


def _no_leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_full_download_gives_a_loadable_data_set(server, msd, tmp_path):
    source, _ = msd
    root = fetch_msd(tmp_path, source=source, progress=False)
    refs = list_cases(root)
    assert [(r.id, r.label is not None) for r in refs] == [("pancreas_001", True),
                                                          ("pancreas_002", False)]
    assert not list(root.rglob("._*"))                    # junk skipped
    assert _no_leftovers(tmp_path) == []                  # no .part, no temp folder
    assert not (tmp_path / "Task07_Pancreas.tar").exists()
    assert fetch_msd(tmp_path, source=source, progress=False) == root    # second run: kept
    assert len(server.log) == 1


def test_interrupted_download_resumes_with_range(server, msd, tmp_path):
    source, data = msd
    server.drop_after = len(data) // 3
    out = download(source.url, tmp_path / "t.tar", "md5", source.digest, progress=False,
                   retries=2, backoff=0)
    assert out.read_bytes() == data
    assert server.log[0][1] is None and server.log[1][1] == f"bytes={len(data) // 3}-"


def test_partial_file_of_a_killed_run_is_resumed(server, msd, tmp_path):
    source, data = msd
    (tmp_path / ".t.tar.part").write_bytes(data[:1000])
    download(source.url, tmp_path / "t.tar", "md5", source.digest, progress=False)
    assert (tmp_path / "t.tar").read_bytes() == data
    assert server.log == [("/Task07_Pancreas.tar", "bytes=1000-")]


def test_server_without_range_restarts(server, msd, tmp_path):
    source, data = msd
    server.ranges = False
    (tmp_path / ".t.tar.part").write_bytes(b"x" * 500)       # would corrupt if appended to
    download(source.url, tmp_path / "t.tar", "md5", source.digest, progress=False)
    assert (tmp_path / "t.tar").read_bytes() == data


def test_wrong_checksum_is_refused(server, msd, tmp_path):
    source, _ = msd
    bad = Source(source.url, "md5", "0" * 32, source.folder)
    with pytest.raises(DataError, match="does not match"):
        fetch_msd(tmp_path, source=bad, progress=False)
    assert list(tmp_path.iterdir()) == []                # nothing mistaken for data


def test_http_error_and_lost_connection_are_one_line(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        download(server.url + "/missing.tar", tmp_path / "m.tar", "md5", "0" * 32,
                 progress=False)
    with pytest.raises(DataError, match="run the same command again"):
        download("http://127.0.0.1:9/none.tar", tmp_path / "n.tar", "md5", "0" * 32,
                 progress=False, retries=1, backoff=0, timeout=2)


def test_extract_refuses_unsafe_members(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("data/ok.txt", "ok")
        zf.writestr("../evil.txt", "no")
    with pytest.raises(DataError, match="unsafe"):
        extract(z, tmp_path / "out", "data", progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "data").exists()
    assert _no_leftovers(tmp_path / "out") == []


def _tiny_case(num):
    img = np.full((12, 12, 4), -1000, np.float32)
    img[3:9, 3:9, :] = 40
    img[5:8, 5:8, 1:3] = 100
    lab = np.zeros(img.shape, np.uint8)
    lab[5:8, 5:8, 1:3] = 1
    aff = np.diag([1.5, 1.5, 3.0, 1.0])
    return Case(f"PANCREAS_{num:04d}", img, lab, (1.5, 1.5, 3.0), aff)


def test_nih_assembly(server, tmp_path):
    nums = [1, 2, 3, 4, 25]
    cases = {n: _tiny_case(n) for n in nums}

    def images(folder, progress):                        # stands in for idc-index
        for n, c in cases.items():
            write_dicom_series(folder / c.id / "1.2" / "3.4", c, shuffle=False)

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, c in cases.items():
            idx = c.labels[::-1, :, ::-1]                 # NIH labels: DICOM index order
            zf.writestr(f"TCIA_pancreas_labels-02-05-2017/label{n:04d}.nii.gz",
                        _nifti_bytes(idx, dicom_index_affine(c)))
        zf.writestr("__MACOSX/TCIA_pancreas_labels-02-05-2017/._label0001.nii.gz", b"junk")
    data = buf.getvalue()
    server.files["/labels.zip"] = data
    labels = Source(server.url + "/labels.zip", "sha256", hashlib.sha256(data).hexdigest(),
                    "TCIA_pancreas_labels-02-05-2017")
    root = fetch_nih(tmp_path, labels=labels, images=images, progress=False)
    refs = list_cases(root)
    assert [r.id for r in refs] == [f"PANCREAS_{n:04d}" for n in nums if n != 25]
    assert all(r.label for r in refs) and NIH_WITHDRAWN[0] not in {r.id for r in refs}
    assert load_folds(root / "folds.json") == [[r.id] for r in refs]
    assert _no_leftovers(tmp_path) == []
