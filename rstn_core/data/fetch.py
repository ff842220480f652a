"""Download the public pancreas data sets: `rstn fetch msd-pancreas|nih-pancreas --to DIR`.

Sources (looked up, not guessed; data/README.md says the same):

- **MSD Task07_Pancreas**: the mirror MONAI's `DecathlonDataset` downloads from, with the md5
  MONAI checks (`monai/apps/datasets.py`, `DecathlonDataset.resource` and `.md5`):
  https://msd-for-monai.s3-us-west-2.amazonaws.com/Task07_Pancreas.tar,
  md5 4f7080cfca169fa8066d17ce6eb061e4. Licence CC BY-SA 4.0.
- **NIH Pancreas-CT images**: NCI Imaging Data Commons, collection id ``pancreas_ct``, through
  the `idc-index` package (an optional dependency: ``pip install idc-index``), whose
  `IDCClient().download_from_selection(collection_id=..., downloadDir=..., dirTemplate=...)`
  fetches the DICOM series from IDC's public buckets (resumable: files present are skipped).
- **NIH Pancreas-CT labels**: TCIA's archive of the collection,
  https://www.cancerimagingarchive.net/wp-content/uploads/TCIA_pancreas_labels-02-05-2017-1.zip,
  sha256 cf8a553c37c80e3840ce7392987b308f7a98cd5f50019511b2ac0f3a54b0934b (the URL and digest
  torch-em checks, `torch_em/data/datasets/medical/nih_pancreas.py`). TCIA withdrew cases 25
  and 70 as duplicates of case 2, so 80 of the papers' 82 cases remain; the folds are made
  for those 80 (4 contiguous blocks of 20) and pinned in `folds.json`.

Every download is resumable (an HTTP Range request continues a partial file; a server that
ignores Range restarts it), verified against its checksum, and kept under a hidden name
(``.<name>.part``) until it is complete and verified; extraction goes into a hidden temporary
folder that is renamed into place only when complete, and skips macOS ``._*`` junk. So a
partial or corrupt download is never mistaken for data: the data folder exists only whole.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from rstn_core.data.errors import DataError
from rstn_core.data.folds import make_folds, save_folds
from rstn_core.data.loaders import list_cases
from rstn_core.data.summary import inspect_path

__all__ = ["Source", "MSD_TASK07", "NIH_LABELS", "IDC_COLLECTION", "NIH_WITHDRAWN", "download",
           "extract", "fetch_msd", "fetch_nih", "add_arguments", "run"]

CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One archive: where it is, its checksum, and the folder it unpacks to."""
    url: str
    algorithm: str          # "md5" or "sha256"
    digest: str
    folder: str             # top folder inside the archive (the data set's root)


MSD_TASK07 = Source("https://msd-for-monai.s3-us-west-2.amazonaws.com/Task07_Pancreas.tar",
                    "md5", "4f7080cfca169fa8066d17ce6eb061e4", "Task07_Pancreas")
NIH_LABELS = Source("https://www.cancerimagingarchive.net/wp-content/uploads/"
                    "TCIA_pancreas_labels-02-05-2017-1.zip", "sha256",
                    "cf8a553c37c80e3840ce7392987b308f7a98cd5f50019511b2ac0f3a54b0934b",
                    "TCIA_pancreas_labels-02-05-2017")
IDC_COLLECTION = "pancreas_ct"
NIH_WITHDRAWN = ("PANCREAS_0025", "PANCREAS_0070")    # duplicates of PANCREAS_0002
NIH_FOLDER = "Pancreas-CT"


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------
def _digest(path: Path, algorithm: str, progress: bool) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     unit_divisor=1024, desc=f"{algorithm} {path.name}",
                                     disable=not progress, leave=False) as bar:
        while block := f.read(CHUNK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def _total(resp, start: int) -> int | None:
    rng = resp.headers.get("Content-Range")                # "bytes 100-999/1000"
    if rng and "/" in rng and not rng.endswith("/*"):
        return int(rng.rsplit("/", 1)[1])
    n = resp.headers.get("Content-Length")
    return start + int(n) if n is not None else None


def download(url: str, dest, algorithm: str, digest: str, *, progress: bool = True,
             retries: int = 5, backoff: float = 2.0, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resumably, and verify its checksum before it appears.

    The bytes go to ``.<dest name>.part`` beside `dest`; a rerun (or a retry after a dropped
    connection) asks for the rest with ``Range: bytes=<size>-``. Once complete, the file's
    `algorithm` digest must equal `digest`, then it is renamed to `dest`.

    Args:
        url: http(s) URL; dest: the file to write; algorithm: "md5" or "sha256";
        digest: expected hex digest; retries: reconnections after a dropped connection;
        backoff: seconds before the first retry (doubled each time); timeout: per read.
    Returns:
        `dest` (already there and verified: not downloaded again).
    Raises:
        DataError: an HTTP error, a connection lost more than `retries` times (rerun to
            resume), or a checksum mismatch (the corrupt file is deleted).
    """
    dest = Path(dest)
    if algorithm not in ("md5", "sha256"):
        raise ValueError(f"download: algorithm {algorithm!r}; expected 'md5' or 'sha256'.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    if dest.is_file():
        part = dest                      # verify what is there; never trust a name alone
    else:
        for attempt in range(retries + 1):
            have = part.stat().st_size if part.is_file() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                            timeout=timeout) as resp:
                    if have and resp.status != 206:      # the server ignored Range: restart
                        have = 0
                    total = _total(resp, have)
                    with open(part, "ab" if have else "wb") as f, \
                            tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                 unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
                        while block := resp.read(CHUNK):
                            f.write(block)
                            bar.update(len(block))
                size = part.stat().st_size
                if total is not None and size < total:
                    raise http.client.IncompleteRead(b"", total - size)
                break
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:               # nothing left to send: complete
                    break
                raise DataError(f"{url}: HTTP {e.code} {e.reason}; check the address or try "
                                "again later.") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                if attempt == retries:
                    size = part.stat().st_size if part.is_file() else 0
                    raise DataError(f"{url}: connection lost ({type(e).__name__}) after "
                                    f"{retries} retries with {size} bytes saved in {part}; run "
                                    "the same command again to resume.") from None
                time.sleep(backoff * 2 ** attempt)
    got = _digest(part, algorithm, progress)
    if got != digest.lower():
        part.unlink()
        raise DataError(f"{dest.name}: {algorithm} {got} does not match the expected {digest}; "
                        "the download was corrupt (deleted) — run the command again.")
    if part != dest:
        os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------
def _junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p.startswith("._") or p in ("__MACOSX", ".DS_Store") for p in parts)


def _safe(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def extract(archive, to, folder: str, *, progress: bool = True) -> Path:
    """Unpack `archive` (.tar, .tar.gz or .zip) so that `to/folder` appears whole or not at all.

    Members go into a hidden temporary folder in `to`; macOS ``._*`` files, ``__MACOSX/`` and
    ``.DS_Store`` are skipped, and members with absolute paths or ``..`` refused. Then
    `<tmp>/folder` (or the whole temporary folder, for an archive without that top folder)
    is renamed to `to/folder`.

    Returns:
        `to/folder`.
    Raises:
        DataError: not a tar or zip archive, an unsafe member path, or `to/folder` exists.
    """
    archive, to = Path(archive), Path(to)
    final = to / folder
    if final.exists():
        raise DataError(f"{final} already exists; delete it to unpack {archive.name} again.")
    to.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".extracting", dir=to))
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf, tqdm(desc=f"extract {archive.name}", unit=" files",
                                                   disable=not progress) as bar:
                for m in tf:
                    if _junk(m.name):
                        continue
                    if not _safe(m.name):
                        raise DataError(f"{archive}: unsafe member path {m.name!r}; refusing to "
                                        "unpack it.")
                    tf.extract(m, tmp, filter="data")
                    bar.update(1)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in tqdm(zf.infolist(), desc=f"extract {archive.name}", unit=" files",
                                 disable=not progress):
                    if _junk(info.filename):
                        continue
                    if not _safe(info.filename):
                        raise DataError(f"{archive}: unsafe member path {info.filename!r}; "
                                        "refusing to unpack it.")
                    zf.extract(info, tmp)
        else:
            raise DataError(f"{archive}: neither a tar nor a zip archive; delete it and run the "
                            "command again.")
        src = tmp / folder if (tmp / folder).is_dir() else tmp
        os.replace(src, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------
# The two data sets
# --------------------------------------------------------------------------------------------
def fetch_msd(to, *, source: Source = MSD_TASK07, progress: bool = True,
              keep_archive: bool = False, **download_kw) -> Path:
    """MSD Task07_Pancreas into `to/Task07_Pancreas` (download, md5, atomic extraction).

    Args:
        to: the folder to put it in; source: where from (tests point it at a local server);
        keep_archive: keep the .tar after unpacking (default: delete it).
    Returns:
        the data set's root, ready for `list_cases`.
    """
    to = Path(to)
    final = to / source.folder
    if final.is_dir():
        return final
    name = PurePosixPath(urllib.parse.urlparse(source.url).path).name
    tar = download(source.url, to / name, source.algorithm, source.digest, progress=progress,
                   **download_kw)
    extract(tar, to, source.folder, progress=progress)
    if not keep_archive:
        tar.unlink()
    return final


def _idc_client():
    try:
        from idc_index import IDCClient          # optional dependency, imported on use only
    except ImportError:
        raise DataError("nih-pancreas: the images come through the optional package idc-index; "
                        "install it with `pip install idc-index` and run the command "
                        "again.") from None
    return IDCClient


def _idc_images(folder: Path, progress: bool) -> None:
    """NIH Pancreas-CT's DICOM series from NCI IDC into `folder/PANCREAS_XXXX/...`."""
    _idc_client()().download_from_selection(
        downloadDir=str(folder), collection_id=IDC_COLLECTION, show_progress_bar=progress,
        use_s5cmd_sync=True, dirTemplate="%PatientID/%StudyInstanceUID/%SeriesInstanceUID")


def fetch_nih(to, *, labels: Source = NIH_LABELS, images=None, progress: bool = True,
              **download_kw) -> Path:
    """NIH Pancreas-CT into `to/Pancreas-CT`: the DICOM series (IDC) and the labels (TCIA).

    Everything is gathered in the hidden `to/.Pancreas-CT.partial/` (a rerun resumes it);
    the folder is renamed to `to/Pancreas-CT` once the images, the verified labels and
    `folds.json` (4 contiguous blocks of the 80 labelled cases) are all there.

    Args:
        images: images(folder, progress) writes the series (default: idc-index);
        labels: the label archive's source.
    Returns:
        the data set's root, ready for `list_cases`.
    """
    to = Path(to)
    final = to / NIH_FOLDER
    if final.is_dir():
        return final
    if images is None:
        _idc_client()                            # one line before anything is written
    work = to / f".{NIH_FOLDER}.partial"
    work.mkdir(parents=True, exist_ok=True)
    (images or _idc_images)(work, progress)
    if not (work / labels.folder).is_dir():
        name = PurePosixPath(urllib.parse.urlparse(labels.url).path).name
        zpath = download(labels.url, to / name, labels.algorithm, labels.digest,
                         progress=progress, **download_kw)
        extract(zpath, work, labels.folder, progress=progress)
        zpath.unlink()
    refs = [r for r in list_cases(work) if r.id not in NIH_WITHDRAWN]
    missing = [r.id for r in refs if r.label is None]
    if missing:
        raise DataError(f"{work}: no label for {', '.join(missing[:5])}; the label archive does "
                        "not match the images — delete the folder and run the command again.")
    save_folds(make_folds([r.id for r in refs], 4), work / "folds.json")
    for wid in NIH_WITHDRAWN:                   # never train on the withdrawn duplicates
        if (work / wid).exists():
            shutil.rmtree(work / wid)
    os.replace(work, final)
    return final


FETCHERS = {"msd-pancreas": fetch_msd, "nih-pancreas": fetch_nih}


def add_arguments(p) -> None:
    """The flags of `rstn fetch` on an argparse (sub)parser."""
    p.add_argument("dataset", choices=sorted(FETCHERS),
                   help="msd-pancreas: MSD Task07 (one large tar from MONAI's mirror); nih-pancreas: "
                        "NIH Pancreas-CT (DICOM via idc-index, labels from TCIA)")
    p.add_argument("--to", required=True, help="folder to put the data set in")
    p.add_argument("--keep-archive", action="store_true",
                   help="msd-pancreas: keep the .tar after unpacking")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> Path:
    """`rstn fetch`: download, verify and unpack one data set; print `rstn inspect` of it."""
    kw = {"keep_archive": args.keep_archive} if args.dataset == "msd-pancreas" else {}
    root = FETCHERS[args.dataset](args.to, progress=not args.quiet, **kw)
    print(inspect_path(root))
    print(f"data set ready: {root}  (use it with --data {root})")
    return root
