"""Whole files over HTTP: the upload folder, one job's files, and their clean-up.

Everything the server writes goes into one temporary folder made at start-up and removed at
shutdown: each upload gets a sub-folder named by a random id, holding the uploaded file
while it is separated and then one WAV per query (float32, at the input's rate and with its
channels, as batch separation writes them). A job's folder is removed when the client
deletes it, when it is older than `result_ttl_s`, or when more than `max_jobs` are kept
(the oldest first). Multipart bodies are parsed as they arrive (python-multipart), the file
part written straight into the job's folder, with the body's size bounded.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsep_rt.api import Separator
from clipsep_rt.io.media import load_audio, probe, write_audio_atomic
from clipsep_rt.io.resample import resample
from clipsep_rt.optional import import_optional
from clipsep_rt.serve.protocol import Limits, ProtocolError

JOB_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Job:
    id: str
    folder: Path
    created: float
    files: dict[str, Path] = field(default_factory=dict)  # file name -> path


@dataclass(frozen=True)
class Upload:
    path: Path  # the uploaded file, in its job's folder
    filename: str  # as the client named it
    queries: list[str]
    exclude: list[str]


class UploadStore:
    """The upload folder and the jobs in it (thread-safe: jobs run on worker threads)."""

    def __init__(self, limits: Limits, parent: Path | None = None):
        self.limits = limits
        self.root = Path(tempfile.mkdtemp(prefix="clipsep-rt-serve-", dir=parent))
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def new_job(self) -> Job:
        self.expire()
        job_id = secrets.token_hex(16)
        folder = self.root / job_id
        folder.mkdir()
        job = Job(job_id, folder, time.monotonic())
        with self._lock:
            self._jobs[job_id] = job
            oldest = sorted(self._jobs.values(), key=lambda kept: kept.created)[: max(0, len(self._jobs) - self.limits.max_jobs)]
        for old in oldest:
            self.remove(old.id)
        return job

    def result(self, job_id: str, name: str) -> Path | None:
        """A finished job's file, or None (unknown, expired or not a file of the job)."""
        self.expire()
        with self._lock:
            job = self._jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
            return job.files.get(name) if job is not None else None

    def remove(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            shutil.rmtree(job.folder, ignore_errors=True)
        return job is not None

    def expire(self) -> None:
        """Remove the jobs older than the results' time to live."""
        cutoff = time.monotonic() - self.limits.result_ttl_s
        with self._lock:
            old = [job.id for job in self._jobs.values() if job.created < cutoff]
        for job_id in old:
            self.remove(job_id)

    def close(self) -> None:
        with self._lock:
            self._jobs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    async def receive(self, job: Job, content_type: str, body: AsyncIterator[bytes]) -> Upload:
        """A multipart/form-data body (a "file" part; "query" and "exclude" fields, repeatable) ->
        the Upload, its file written into the job's folder; ProtocolError past max_upload_bytes."""
        multipart = import_optional("python_multipart", "serve")
        fields: dict[str, list[str]] = {"query": [], "exclude": []}
        files = []
        if not content_type.startswith("multipart/form-data"):
            raise ProtocolError("POST a multipart/form-data body: a 'file' part and 'query' fields")

        def on_field(part) -> None:
            name = (part.field_name or b"").decode(errors="replace")
            if name in fields:
                fields[name].append((part.value or b"").decode(errors="replace"))

        def on_file(part) -> None:
            files.append(part)

        config = {"UPLOAD_DIR": str(job.folder), "UPLOAD_DELETE_TMP": False, "UPLOAD_KEEP_EXTENSIONS": True,
                  "MAX_MEMORY_FILE_SIZE": 0, "MAX_BODY_SIZE": self.limits.max_upload_bytes}
        try:
            parser = multipart.FormParser(content_type.split(";")[0].strip(), on_field, on_file,
                                          boundary=_boundary(content_type), config=config)
            received = 0
            async for chunk in body:
                received += len(chunk)
                if received > self.limits.max_upload_bytes:
                    raise ProtocolError(f"upload larger than {self.limits.max_upload_bytes} bytes")
                parser.write(chunk)
            parser.finalize()
        except ProtocolError:
            raise
        except Exception as error:  # python-multipart's parse errors
            raise ProtocolError(f"malformed multipart body: {error}") from None
        finally:
            for part in files:
                part.close()
        uploads = [part for part in files if part.field_name == b"file"]
        if len(uploads) != 1:
            raise ProtocolError(f"expected one 'file' part, got {len(uploads)}")
        path = Path(uploads[0].actual_file_name.decode())
        if path.parent != job.folder:
            raise ProtocolError("upload not written to its folder")
        filename = (uploads[0].file_name or b"upload").decode(errors="replace")
        return Upload(path, filename, [q.strip() for q in fields["query"] if q.strip()],
                      [q.strip() for q in fields["exclude"] if q.strip()])

    def separate(self, separator: Separator, job: Job, upload: Upload) -> dict:
        """Decode, separate and write one WAV per output into the job's folder (a worker
        thread's work); the uploaded file is deleted. Returns the file names and the rate."""
        try:
            info = probe(upload.path)
            if info.duration_s is not None and info.duration_s > self.limits.max_file_s:
                raise ProtocolError(f"{info.duration_s:.0f} s of audio: at most {self.limits.max_file_s:.0f} s per file")
            audio = load_audio(upload.path, info.rate, mono=False).samples  # (n, C) at the file's rate
            if len(audio) > self.limits.max_file_s * info.rate:
                raise ProtocolError(f"{len(audio) / info.rate:.0f} s of audio: at most {self.limits.max_file_s:.0f} s per file")
            result = separator.separate(audio, info.rate, upload.queries, exclude=upload.exclude)
        finally:
            upload.path.unlink(missing_ok=True)
        names = []
        for index, (label, source) in enumerate(result.sources.items()):  # (n16, C) at 16 kHz
            name = f"{index + 1}-{_safe(label)}.wav"
            write_audio_atomic(job.folder / name, resample(np.ascontiguousarray(source), result.sample_rate, info.rate),
                               info.rate)
            with self._lock:
                job.files[name] = job.folder / name
            names.append((label, name))
        return {"sample_rate": info.rate, "channels": info.channels, "duration_s": len(audio) / info.rate,
                "outputs": names}


def _boundary(content_type: str) -> bytes:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ProtocolError("multipart/form-data without a boundary")
    return match.group(1).encode()


def _safe(label: str) -> str:
    """A query as a file name's part: letters, digits, '-' and '_', at most 40 characters."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")[:40] or "output"
