"""Writing files atomically and hashing them: shared by checkpoints, caches and outputs.

A file being written lives as `.{stem}.{12 hex digits}.tmp{suffix}` beside its final name,
locked (flock) by the process writing it. A process that dies without cleaning up (kill -9,
power loss) leaves one behind, unlocked: the next atomic write to the same name removes it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clipsep_rt.errors import ClipsepError


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same extension); move it onto `path` on success.

    The temporary file is removed if the body raises (KeyboardInterrupt included), and stale
    temporaries of `path` left by killed writers are removed first. Refuses (ClipsepError) an existing
    `path` unless `overwrite`; the check runs before and again just before the final move,
    so only a file created in between by another process could be replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise ClipsepError(f"{path}: output path is a directory")
    _refuse_existing(path, overwrite)
    remove_stale_temporaries(path)
    temp, lock = _locked_temporary(path)
    try:
        yield temp
        _refuse_existing(path, overwrite)
        os.chmod(temp, 0o666 & ~_umask())  # as a plain open() would: some writers make 0600 files
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(lock)  # releases the lock


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` that no live process holds (left by a killed writer);
    returns the removed ones. A temporary another process is writing stays."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{12}}\.tmp{re.escape(path.suffix)}")
    try:
        candidates = [entry.path for entry in os.scandir(path.parent) if pattern.fullmatch(entry.name)]
    except FileNotFoundError:
        return []
    removed = []
    for candidate in map(Path, candidates):
        try:
            handle = os.open(candidate, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            continue
        else:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        finally:
            os.close(handle)
    return removed


def _locked_temporary(path: Path) -> tuple[Path, int]:
    """A new, empty temporary beside `path` and the open descriptor that holds its lock."""
    while True:
        temp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}")
        try:
            # O_EXCL: never clobber anything; mode 0o666 lets the umask decide, as for a plain open().
            lock = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise ClipsepError(f"{path}: cannot create the output file ({exc.strerror or exc})") from None
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:  # another process's cleanup may have taken it between the create and the lock
            if os.stat(temp).st_ino == os.fstat(lock).st_ino:
                return temp, lock
        except FileNotFoundError:
            pass
        os.close(lock)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if not overwrite and os.path.lexists(path):
        raise ClipsepError(f"{path}: output already exists (allow overwriting to replace it)")


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
