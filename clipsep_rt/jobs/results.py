"""The results manifest of a file job: one JSON line per input, beside the outputs.

    {"input": "/data/a.wav", "outputs": ["/out/a_violin.wav"], "seconds": 1.9, "audio_seconds": 30.0,
     "error": null, "attempts": 1, "worker": "10.0.0.5:4711", "peak_rss_mb": 612.0}

Lines are appended as inputs finish, each in one write, so the manifest of an interrupted
job holds every input finished before the interruption (a torn last line is ignored when
read). A later line for the same input replaces an earlier one: that is what a re-run
after a failure leaves.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "clipsep-rt-manifest.jsonl"


@dataclass
class FileResult:
    input: str  # absolute path of the input
    outputs: list[str] = field(default_factory=list)  # absolute paths written (none when it failed)
    seconds: float = 0.0  # wall time of the attempt that finished
    audio_seconds: float = 0.0  # audio separated, in seconds of the input
    error: str | None = None  # the one-line reason it failed, or None
    attempts: int = 1  # 1 + the times its worker died while separating it
    worker: str = ""  # node address:pid of the worker that finished it
    peak_rss_mb: float | None = None  # that worker process's peak resident memory so far
    warnings: list[str] = field(default_factory=list)

    def finished(self) -> bool:
        """Succeeded, and every output it wrote is still there."""
        return self.error is None and all(Path(path).is_file() for path in self.outputs)


class Manifest:
    """`out_dir/clipsep-rt-manifest.jsonl`: what earlier runs finished, and appending results."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / MANIFEST_NAME

    def read(self) -> dict[str, FileResult]:
        """The last result per input of the runs so far (empty when there is no manifest)."""
        if not self.path.is_file():
            return {}
        results: dict[str, FileResult] = {}
        known = set(FileResult.__dataclass_fields__)
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                result = FileResult(**{key: value for key, value in entry.items() if key in known})
            except (ValueError, TypeError):  # a line torn by a crash mid-write
                continue
            results[result.input] = result
        return results

    def append(self, result: FileResult) -> None:
        """Add one line, written and flushed in one call."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(result), ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
