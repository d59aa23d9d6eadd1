"""Writing files atomically and hashing them: shared by checkpoints, caches and outputs.

A file being written lives as `.{stem}.{12 hex digits}.tmp{suffix}` beside its final name,
locked (flock) by the process writing it. A process that dies without cleaning up (kill -9,
power loss) leaves one behind, unlocked: the next atomic write to the same name removes it.

An OS error while writing (disk full, read-only file system, permission denied, ...) is a
`ClipsepError` of one line naming the path and saying what happened in words
(`output_error`), and the temporary is removed.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clipsep_rt.errors import ClipsepError

# What an OS error while writing means, in words, and what to do about it.
_WRITE_FAILURES = {
    errno.ENOSPC: ("disk full", "free some space or choose another output folder"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another output folder"),
    errno.EFBIG: ("file too large for its file system", "choose an output folder on another file system"),
    errno.EROFS: ("read-only file system", "choose another output folder"),
    errno.EACCES: ("permission denied", "choose another output folder"),
    errno.EPERM: ("permission denied", "choose another output folder"),
    errno.EIO: ("input/output error (a failing or removed disk?)", "check the disk"),
}
_FOLDER_FAILURES = (errno.EROFS, errno.EACCES, errno.EPERM)  # a property of the folder, not of the file
_WRITE_ONLY_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)  # only writing raises these


class OutputClaimed(ClipsepError):
    """Another process is writing the output (or finished it meanwhile): without overwrite, a path
    has one writer, and a second one is refused before it does its work."""


class OutputExists(OutputClaimed):
    """The output exists and overwriting is off. A caller that saw it missing (a batch plans
    before it writes) learns that another process wrote it meanwhile: an `OutputClaimed`."""

    def __init__(self, path: Path):
        super().__init__(f"{path}: output already exists (allow overwriting to replace it)")
        self.path = path


def output_error(path: str | os.PathLike, error: OSError, folder: bool = False) -> ClipsepError:
    """The one-line error of `error`, raised while writing `path` (a file, or with `folder` a
    folder being made): what happened in words, naming the folder when the folder is at fault."""
    path = Path(path)
    what, advice = _WRITE_FAILURES.get(error.errno, (error.strerror or str(error), ""))
    advice = f"; {advice}" if advice else ""
    if folder:
        return ClipsepError(f"{path}: cannot write there: {what}{advice}")
    if error.errno in _FOLDER_FAILURES:
        return ClipsepError(f"{path.parent}: cannot write {path.name} there: {what}{advice}")
    return ClipsepError(f"{path}: cannot write it: {what}{advice}")


def make_output_folder(folder: str | os.PathLike, check_writable: bool = False) -> None:
    """Make `folder` and its parents if needed; with `check_writable`, also check that a file can
    be created in it (and leave none). A ClipsepError naming the folder says why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ClipsepError(f"{folder}: exists and is not a folder; choose another output folder") from None
    except OSError as exc:
        raise output_error(folder, exc, folder=True) from None
    if check_writable:
        try:
            with tempfile.TemporaryFile(dir=folder):  # O_TMPFILE where it can: nothing to clean up
                pass
        except OSError as exc:
            raise output_error(folder, exc, folder=True) from None


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same extension); move it onto `path` on success.

    The temporary file is removed if the body raises (KeyboardInterrupt included), and stale
    temporaries of `path` left by killed writers are removed first. Refuses (`OutputExists`) an
    existing `path` unless `overwrite`; the check runs with the claim and again just before the final move.
    Without `overwrite` a path has one writer at a time: `OutputClaimed` if another process is
    writing it (`OutputExists`, one of those, when it exists). An OS error of the body that only writing
    raises (disk full...), or one about the temporary, becomes `output_error`.
    """
    path = Path(path)
    if path.is_dir():
        raise ClipsepError(f"{path}: output path is a directory")
    temp, lock = _claim(path, overwrite)
    try:
        yield temp
        _refuse_existing(path, overwrite)
        os.chmod(temp, 0o666 & ~_umask())  # as a plain open() would: some writers make 0600 files
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno in _WRITE_ONLY_ERRNOS or exc.filename in (str(temp), str(path)):
            raise output_error(path, exc) from None
        raise
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(lock)  # releases the lock


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` that no live process holds (left by a killed writer);
    returns the removed ones. A temporary another process is writing stays."""
    return _sweep_temporaries(Path(path))[0]


def _claim(path: Path, overwrite: bool) -> tuple[Path, int]:
    """Remove stale temporaries of `path` and make a new, locked one: (its path, the descriptor
    holding its lock). Claims in one folder take turns (a lock on the folder), so two processes
    cannot both miss each other's temporary; without `overwrite`, an existing `path` is refused
    (`OutputExists`), and so is another live temporary (`OutputClaimed`)."""
    with _folder_lock(path.parent):
        _refuse_existing(path, overwrite)
        _, live = _sweep_temporaries(path)
        if live and not overwrite:
            raise OutputClaimed(f"{path}: another process is writing it; left to that process")
        return _locked_temporary(path)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on `folder` while the body runs; none where the file system has no
    flock on folders (the claims then do not take turns)."""
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a missing folder: creating the temporary reports it
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # e.g. a network file system without flock on folders
            pass
        yield
    finally:
        os.close(handle)


def _sweep_temporaries(path: Path) -> tuple[list[Path], list[Path]]:
    """(the temporaries of `path` no live process holds, now removed; those a live process holds)."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{12}}\.tmp{re.escape(path.suffix)}")
    try:
        candidates = [entry.path for entry in os.scandir(path.parent) if pattern.fullmatch(entry.name)]
    except FileNotFoundError:
        return [], []
    removed, live = [], []
    for candidate in map(Path, candidates):
        try:
            handle = os.open(candidate, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            live.append(candidate)
        else:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        finally:
            os.close(handle)
    return removed, live


def _locked_temporary(path: Path) -> tuple[Path, int]:
    """A new, empty temporary beside `path` and the open descriptor that holds its lock."""
    while True:
        temp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}")
        try:
            # O_EXCL: never clobber anything; mode 0o666 lets the umask decide, as for a plain open().
            lock = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(path, exc) from None
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:  # another process's cleanup may have taken it between the create and the lock
            if os.stat(temp).st_ino == os.fstat(lock).st_ino:
                return temp, lock
        except FileNotFoundError:
            pass
        os.close(lock)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if not overwrite and os.path.lexists(path):
        raise OutputExists(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, remembered while its size and mtime stay the same."""
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
