"""Writing files atomically and hashing them: shared by checkpoints, caches and outputs."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clipsep_rt.errors import ClipsepError


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same extension); move it onto `path` on success.

    The temporary file is removed if the body raises. Refuses (ClipsepError) an existing
    `path` unless `overwrite`; the check runs before and again just before the final move,
    so only a file created in between by another process could be replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise ClipsepError(f"{path}: output path is a directory")
    _refuse_existing(path, overwrite)
    temp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}")
    try:
        # O_EXCL: never clobber anything; mode 0o666 lets the umask decide, as for a plain open().
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise ClipsepError(f"{path}: cannot create the output file ({exc.strerror or exc})") from None
    try:
        yield temp
        _refuse_existing(path, overwrite)
        os.chmod(temp, 0o666 & ~_umask())  # as a plain open() would: some writers make 0600 files
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


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
