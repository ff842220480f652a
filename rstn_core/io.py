"""Atomic file writes: a run interrupted at any moment never leaves a half-written file.

Every file the library writes goes through :func:`atomic_path`: the bytes go to a hidden
temporary file beside the target (``.<name>.<pid>.<random>.tmp``), which is flushed, fsynced,
given the permissions a plain ``open()`` would give (0644 under umask 022; an existing file keeps
its mode), renamed over the target, and the folder is fsynced so the rename survives a power
cut. An exception or Ctrl-C removes the temporary file; one left by a killed process (kill -9)
is removed by the next write to the same target, once its process is gone.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from rstn_core.errors import FileFormatError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_torch_save", "atomic_savez", "atomic_save_npy", "atomic_save_nifti",
           "atomic_savefig", "clean_stale_temps", "read_json", "load_checkpoint"]


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by the set-and-restore
    dance."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so that a rename inside it is durable (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp(\.[^.]+)?$")


def glob_escape(text: str) -> str:
    """`text` with the glob metacharacters * ? [ escaped (a file name as a glob pattern)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def clean_stale_temps(folder, name: str | None = None) -> list[Path]:
    """Remove temporary files of :func:`atomic_path` left in `folder` by killed processes.

    A temporary file ``.<name>.<pid>.<random>.tmp[.ext]`` is stale when process `pid` is gone (on a
    shared folder written from several machines a live pid elsewhere keeps its file).

    Args:
        folder: the folder to clean; name: only the temporaries of this target file name.
    Returns:
        the removed paths.
    """
    folder = Path(folder)
    removed = []
    try:
        candidates = list(folder.glob(f".{glob_escape(name)}.*.tmp*" if name else ".*.tmp*"))
    except OSError:
        return removed
    for tmp in candidates:
        m = _TEMP.match(tmp.name)
        if m is None or (name is not None and m["name"] != name):
            continue                                   # not ours (or an older, pid-less one)
        pid = int(m["pid"])
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _writable_folder(path: Path) -> None:
    """Create `path`'s folder, with one-line errors when a file stands in the way or the
    place is read-only."""
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a "
                                         "folder; choose another output path or move it away.")
            break
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise PermissionError(f"cannot create the folder {path.parent} for {path.name}: "
                              "permission denied; write somewhere else.") from None


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """A temporary path beside `path` to write to; on success it replaces `path` atomically.

    Usage: ``with atomic_path(out) as tmp: tool.write(tmp)``. On success the temporary file is
    fsynced, given umask permissions (or the old file's mode), renamed over `path` and the
    folder fsynced; on any exception (Ctrl-C included) it is removed and the exception goes on.

    Args:
        path: the target file; its folder is created when missing.
        suffix: appended to the temporary name, for tools that want an extension (".ipynb").
    Yields:
        the temporary Path (in the same folder, so the rename is atomic).
    """
    path = Path(path)
    _writable_folder(path)
    clean_stale_temps(path.parent, path.name)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp" + suffix)
    except PermissionError:
        raise PermissionError(f"cannot write {path}: the folder {path.parent} is not writable; "
                              "fix its permissions or write somewhere else.") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_umask()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` atomically (:func:`atomic_path`: temporary file, fsync, umask
    permissions, rename, folder fsync).

    Args:
        path: the target file; data: its bytes.
    Returns:
        `path` as a Path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    """Write `obj` as indented, key-sorted JSON to `path` atomically (numpy scalars and arrays,
    Paths converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_torch_save(obj, path) -> Path:
    """`torch.save(obj)` to `path` atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path, **arrays) -> Path:
    """`np.savez_compressed(**arrays)` to `path` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_save_npy(array: np.ndarray, path) -> Path:
    """Save a C-contiguous .npy file atomically (readable with np.load(mmap_mode='r'))."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array))
    return atomic_write_bytes(path, buf.getvalue())


def atomic_save_nifti(array: np.ndarray, affine: np.ndarray, path) -> Path:
    """Save `array` with `affine` as NIfTI-1 (gzip when the name ends in .gz), atomically;
    qform and sform both set (code 1), units mm."""
    path = Path(path)
    aff = np.asarray(affine, float)
    img = nib.Nifti1Image(np.asarray(array), aff)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    data = img.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(path, data)


def atomic_savefig(fig, path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure to `path` atomically (the format from the suffix, as
    `fig.savefig`).

    Args:
        fig: a matplotlib Figure; path: the target file; savefig_kwargs: e.g. dpi, bbox_inches.
    """
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path, what: str = "JSON file", fix: str = "restore or delete it"):
    """Read a JSON file, with one-line errors that name the file.

    Args:
        path: the file; what: what it is, for the message (e.g. "results file");
        fix: what the user should do when it is malformed.
    Returns:
        the parsed object.
    Raises:
        FileNotFoundError (missing), FileFormatError (malformed: line and column named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{what} {path}: not valid JSON (line {e.lineno}, column "
                              f"{e.colno}: {e.msg}); {fix}.") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{what} {path}: not a text file; {fix}.") from None


def load_checkpoint(path, map_location="cpu"):
    """`torch.load(..., weights_only=True)` with a one-line error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train first (`rstn train ...`) "
                                "or point at the right run folder.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise FileFormatError(f"checkpoint {path} could not be read ({type(e).__name__}); "
                              "delete it and resume from the previous one, or retrain.") from None
