"""Compile once: a checkpoint run without an engine folder gets one, made on first use and kept.

    clipsep-rt -c model.safetensors -q violin in.wav -o out/     # first run: exports, then separates
    clipsep-rt -c model.safetensors -q violin in.wav -o out/     # later runs: the cached graph, no torch

The first run on a checkpoint exports its FP32 ONNX separator graph (`export_engines`, checked
against torch as `clipsep-rt export` checks it) into

    <user cache>/engines/<first 16 hex of the checkpoint's SHA-256>-<clipsep-rt version>/

(io.user_cache: e.g. ~/.cache/clipsep-rt/engines/), and every later run opens that folder like
any engine folder: on the fastest CPU backend (OpenVINO, ONNX Runtime) without importing
torch. The checkpoint itself serves the torch backend, so the folder holds no copy of the
weights. A TensorRT plan (`--backend tensorrt`) is built into the same folder on first use and
kept there too.

An entry is trusted only when its record (cache_entry.json, written last) names this checkpoint
and this version and every file still has the SHA-256 it was written with; anything else (a
killed export, a truncated or edited file, another checkpoint's folder) is rebuilt. Builds take
a lock per entry and go into a temporary folder renamed into place, so concurrent runs on the
same checkpoint export it once and never see half a folder. A cache that cannot be written
(read-only home) is skipped, with a warning: the run goes on from the checkpoint on torch.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from clipsep_rt import __version__
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import file_sha256
from clipsep_rt.io.user_cache import user_cache_dir
from clipsep_rt.runtime.engines.manifest import read_manifest

ENTRY_RECORD = "cache_entry.json"
RECORD_FORMAT = "clipsep_rt-engine-cache"


def engines_root() -> Path:
    """Where compiled checkpoints live: the user cache's engines/ folder."""
    return user_cache_dir("engines")


def entry_folder(checkpoint_sha256: str, root: Path | None = None) -> Path:
    """The cache folder of a checkpoint (by the SHA-256 of its bytes) for this clipsep-rt version."""
    return (root or engines_root()) / f"{checkpoint_sha256[:16]}-{__version__}"


def cached_engine_dir(checkpoint: str | Path, log: Callable[[str], None], root: Path | None = None) -> Path | None:
    """The engine folder compiled from `checkpoint`: the cached one when it checks out, else
    exported now (`log` hears one line first: what is compiled, where, and how to skip it).
    None, said through `log`, when the cache folder cannot be written: run from the checkpoint.
    ClipsepError when the checkpoint cannot be read or exported (PyTorch missing included)."""
    checkpoint = Path(checkpoint)
    try:
        sha256 = file_sha256(checkpoint)
    except FileNotFoundError:
        raise ClipsepError(f"{checkpoint}: no such file") from None
    except OSError as error:
        raise ClipsepError(f"checkpoint {checkpoint}: cannot read it ({error.strerror or error})") from None
    folder = entry_folder(sha256, root)
    if _problem(folder, sha256) is None:
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = _entry_lock(folder)
    except OSError as error:
        log(f"engine cache {folder.parent} is not writable ({error.strerror or error}): running {checkpoint.name} "
            "from the checkpoint on torch (set CLIPSEP_RT_CACHE_DIR to a writable folder to compile it once)")
        return None
    with lock:
        problem = _problem(folder, sha256)  # another process may have built it while this one waited
        if problem is not None:
            _build(checkpoint, sha256, folder, problem, log)
    return folder


def _problem(folder: Path, sha256: str) -> str | None:
    """Why `folder` cannot be trusted as the compiled `sha256` checkpoint (None: it can)."""
    try:
        record = json.loads((folder / ENTRY_RECORD).read_text())
    except FileNotFoundError:
        return "absent" if not folder.exists() else f"no {ENTRY_RECORD} (an export that did not finish)"
    except (OSError, ValueError) as error:
        return f"unreadable {ENTRY_RECORD} ({error})"
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return f"{ENTRY_RECORD} is not a clipsep-rt cache record"
    if record.get("checkpoint_sha256") != sha256 or record.get("clipsep_rt") != __version__:
        return "made from another checkpoint or clipsep-rt version"
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return f"{ENTRY_RECORD} lists no files"
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if file_sha256(path) != digest:
            return f"{name} changed since it was written"
    try:
        read_manifest(folder)
    except ClipsepError as error:
        return str(error)
    return None


def _entry_lock(folder: Path):
    """An exclusive lock on `folder`'s build, held for the body of `with`: the lock file beside
    it is opened here (OSError when the cache cannot be written), locked on entering."""
    descriptor = os.open(folder.with_name(folder.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)

    @contextmanager
    def held():
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    return held()


def _build(checkpoint: Path, sha256: str, folder: Path, problem: str, log: Callable[[str], None]) -> None:
    """Export `checkpoint` into a temporary folder, record every file's hash, rename it to `folder`."""
    try:
        from clipsep_rt.export.pipeline import ExportOptions, export_engines
    except ImportError as error:
        raise ClipsepError(
            f"checkpoint {checkpoint} is not compiled for this install yet, and compiling it needs PyTorch and onnx, "
            f"which cannot be imported here ({error}): pip install 'clipsep-rt[torch]' once, or pass an engine folder "
            "made by `clipsep-rt export`"
        ) from None
    if problem == "absent":
        log(f"compiling {checkpoint.name} once for fast start-up (engine cache {folder}; --no-engine-cache skips it)")
    else:
        log(f"engine cache {folder}: rebuilding it ({problem})")
    for stale in folder.parent.glob(f".{folder.name}.*.tmp"):  # left by a killed build (builds hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    temporary = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        manifest = export_engines(checkpoint, temporary,
                                  ExportOptions(fp16=False, text_encoder=False, weights=False, overwrite=True),
                                  log=lambda line: None)
        files = {name: file_sha256(temporary / name) for name in manifest.files()}
        record = {"format": RECORD_FORMAT, "checkpoint": checkpoint.name, "checkpoint_sha256": sha256,
                  "clipsep_rt": __version__, "files": files}
        (temporary / ENTRY_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if folder.exists():  # a folder that did not check out: replaced whole
            shutil.rmtree(folder)
        os.rename(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
