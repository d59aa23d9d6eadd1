"""What a file job did with each input, and the results manifest it keeps beside the outputs.

`clipsep-rt-manifest.jsonl` in the output folder: one JSON line per input, local and Ray runs alike.

    {"input": "/data/a.wav", "outputs": ["/out/a_violin.wav"], "kept": [], "seconds": 1.9,
     "audio_seconds": 30.0, "error": null, "attempts": 1, "worker": "10.0.0.5:4711",
     "peak_rss_mb": 612.0, "warnings": [], "presence": {"violin": [0.41, 0.38, 0.02]}}

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

from clipsep_rt.io.files import make_output_folder, output_error

MANIFEST_NAME = "clipsep-rt-manifest.jsonl"
UNRECORDED = ("claimed", "left_to_another")  # FileResult fields the manifest does not keep


@dataclass
class FileResult:
    input: str  # absolute path of the input
    outputs: list[str] = field(default_factory=list)  # absolute paths it has now, written or kept (none when it failed)
    kept: list[str] = field(default_factory=list)  # those of `outputs` that existed and were left as they were
    seconds: float = 0.0  # wall time of the attempt that finished
    audio_seconds: float = 0.0  # audio separated, in seconds of the input
    error: str | None = None  # the one-line reason it failed, or None
    attempts: int = 1  # 1 + the times its Ray worker died while separating it
    worker: str = ""  # node address:pid of the process that finished it
    peak_rss_mb: float | None = None  # that process's peak resident memory so far
    warnings: list[str] = field(default_factory=list)
    presence: dict[str, list[float | None]] | None = None  # query -> presence score per second (dsp.presence)
    claimed: list[str] = field(default_factory=list)  # outputs (resolved) it named, even if it failed later
    left_to_another: bool = False  # another process was writing an output of it (a concurrent run): left to it

    @property
    def written(self) -> list[str]:
        """The outputs this attempt wrote."""
        kept = set(self.kept)
        return [path for path in self.outputs if path not in kept]

    def finished(self) -> bool:
        """Succeeded, and every output it has is still there."""
        return self.error is None and all(Path(path).is_file() for path in self.outputs)

    def record(self) -> dict:
        """Its manifest line, as a dict."""
        return {key: value for key, value in asdict(self).items() if key not in UNRECORDED}


class ResultsManifest:
    """`out_dir/clipsep-rt-manifest.jsonl`: what earlier runs finished, and appending results."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / MANIFEST_NAME

    def read(self) -> dict[str, FileResult]:
        """The last result per input (absolute path) of the runs so far (empty without a manifest)."""
        if not self.path.is_file():
            return {}
        results: dict[str, FileResult] = {}
        known = set(FileResult.__dataclass_fields__) - set(UNRECORDED)
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                result = FileResult(**{key: value for key, value in entry.items() if key in known})
            except (ValueError, TypeError, AttributeError):  # a line torn by a crash mid-write
                continue
            results[result.input] = result
        return results

    def append(self, result: FileResult) -> None:
        """Add one line, written and flushed in one call; ClipsepError naming the manifest if the
        OS refuses (disk full, read-only folder)."""
        make_output_folder(self.path.parent)
        line = json.dumps(result.record(), ensure_ascii=False) + "\n"
        try:
            with open(self.path, "a+b") as handle:  # writes go to the end; reads see the last byte
                if handle.seek(0, os.SEEK_END):
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        line = "\n" + line  # a line torn by a crash: end it, so this one reads whole
                handle.write(line.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise output_error(self.path, exc) from None
