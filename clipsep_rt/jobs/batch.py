"""Batch file separation: many inputs x many queries, one bad file never stops the rest.

Nothing is printed: failures and warnings go to `log` (default: this module's `logging`)
as one line each, "error: ..." or "warning: ...", and are kept in the `BatchReport`; the
progress of each input goes to a meter the caller makes (a tqdm bar fits).

Outputs that already exist are kept (unless `overwrite`): an input whose outputs all exist
is skipped without being decoded, and one with some missing writes only those. On
KeyboardInterrupt (Ctrl-C, or SIGTERM as the command line maps it) the file in progress
leaves nothing behind, `report.interrupted` names it, and the interrupt propagates.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES
from clipsep_rt.io.media import SourceInfo, atomic_output, iter_audio_blocks, probe, write_video_with_audio_atomic
from clipsep_rt.api import Queries, Separator
from clipsep_rt.io.resample import OutputRateConverter
from clipsep_rt.jobs.outputs import (
    OutputOptions,
    OutputTarget,
    output_base,
    output_path,
    output_targets,
    union_rows,
)

DECODE_BLOCK_SAMPLES = 1 << 16

logger = logging.getLogger(__name__)


class FileProgress(Protocol):
    """The progress meter of one input: `update(n)` adds n seconds of its audio done."""

    def update(self, n: float) -> object: ...

    def close(self) -> object: ...


# (input, its duration in seconds when the header states one) -> its progress meter
ProgressFactory = Callable[[Path, float | None], FileProgress]


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # outputs that existed and were left as they are
    finished: list[str] = field(default_factory=list)  # inputs separated (some outputs written)
    skipped: list[str] = field(default_factory=list)  # inputs whose outputs all existed
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, one-line reason)
    warnings: list[str] = field(default_factory=list)
    interrupted: str | None = None  # the input in progress when a KeyboardInterrupt stopped the batch


def failure_message(source: Path, error: Exception) -> str:
    """The one-line reason an input failed: a ClipsepError's own, or the unexpected error's type and text."""
    if isinstance(error, ClipsepError):
        return str(error)
    reason = " ".join(str(error).split()) or "no message"
    return f"{source}: unexpected {type(error).__name__}: {reason}"


class BatchSeparator:
    def __init__(
        self,
        separator: Separator,
        queries: Queries,
        options: OutputOptions,
        out_dir: Path,
        overwrite: bool = False,
        log: Callable[[str], None] | None = None,
        progress: ProgressFactory | None = None,
        output_file: Path | None = None,
    ):
        """`output_file`: instead of naming outputs in `out_dir`, write the one output of a
        one-input, one-target run to this .wav/.flac file (matching `options.audio_format`)."""
        self.separator = separator
        self.queries = queries
        self.options = options
        self.out_dir = out_dir
        self.overwrite = overwrite
        self.log = log or logger.warning
        self.progress = progress
        self.output_file = output_file
        self.protected: set[Path] = set()
        self.claimed: dict[Path, Path] = {}  # output (resolved) -> the input that writes it
        self.targets = output_targets(queries.names, queries.noise_heads, options)
        self.union_rows = union_rows(len(queries.names), queries.noise_heads, options)
        self.report = BatchReport()
        if output_file is not None:
            if len(self.targets) != 1:
                raise OptionError("output_file", f"{output_file} names one file, but each input gets {len(self.targets)} "
                                                 "outputs: give an output directory")
            if output_file.suffix.lower() != f".{options.audio_format}":
                raise OptionError("output_file", f"{output_file}: a {options.audio_format} output needs a "
                                                 f".{options.audio_format} file name")

    def run(self, inputs: list[Path], roots: list[Path] = ()) -> BatchReport:
        """Separate each input; `roots`: the folders inputs were found in (their subfolders are
        kept below the output folder, see `outputs.output_base`). The report is also `self.report`."""
        if self.output_file is not None and len(inputs) != 1:
            raise OptionError("output_file", f"{self.output_file} names one file, but {len(inputs)} inputs were given: "
                                             "give an output directory")
        report = self.report = BatchReport()
        self.protected = {source.resolve() for source in inputs}  # never written, even with overwrite
        self.claimed = {}
        for source in inputs:
            try:
                self.separate_file(source, output_base(source, list(roots)), report)
            except ClipsepError as error:
                self._fail(report, source, str(error))
            except Exception as error:  # noqa: BLE001 - an unexpected failure must not lose the other files
                self._fail(report, source, failure_message(source, error))
            except KeyboardInterrupt:
                report.interrupted = str(source)
                raise
        return report

    def _fail(self, report: BatchReport, source: Path, message: str) -> None:
        report.failures.append((str(source), message))
        self.log(f"error: {message}")

    def separate_file(self, source: Path, base: Path, report: BatchReport) -> None:
        """Separate one file into its targets whose outputs are missing (all with `overwrite`);
        writes all of those or none. `base`: see `outputs.output_base`."""
        info = probe(source)
        as_video = self.options.video and info.is_video
        extension = source.suffix if as_video else f".{self.options.audio_format}"
        planned = [
            (target, self.output_file or output_path(self.out_dir, base, target, extension)) for target in self.targets
        ]
        for _, path in planned:
            if path.resolve() in self.protected:
                raise ClipsepError(f"{path}: output would overwrite an input file; choose another output directory")
            owner = self.claimed.get(path.resolve())
            if owner is not None:
                raise ClipsepError(f"{source}: its output {path} has the name of {owner}'s: rename one of them, "
                                   "or separate them into different output directories")
        self.claimed.update((path.resolve(), source) for _, path in planned)
        kept = [path for _, path in planned if not self.overwrite and os.path.lexists(path)]
        targets = [target for target, path in planned if path not in kept]
        paths = [path for _, path in planned if path not in kept]
        report.kept += kept
        if not paths:
            report.skipped.append(str(source))
            return
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            if as_video:
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self.out_dir, prefix=".clipsep-")))
                audio_paths = [scratch / f"{i}.wav" for i in range(len(paths))]
            else:
                audio_paths = [stack.enter_context(atomic_output(p, self.overwrite)) for p in paths]
            peak = self._write_tracks(source, info, targets, audio_paths, stack)
            if as_video:
                for audio_path, path in zip(audio_paths, paths):
                    samples, rate = sf.read(audio_path, dtype="float32")
                    write_video_with_audio_atomic(source, path, samples, rate, overwrite=self.overwrite)
        report.written += paths
        report.finished.append(str(source))
        if peak == 0.0:
            report.warnings.append(f"{source}: input is silent; its outputs are silent too")
            self.log(f"warning: {report.warnings[-1]}")

    def _write_tracks(
        self, source: Path, info: SourceInfo, targets: list[OutputTarget], audio_paths: list[Path], stack: ExitStack
    ) -> float:
        """Stream the separation of `source` into one file per target; returns the input peak."""
        model_rate = self.separator.sample_rate
        out_rate = self.options.sample_rate or info.rate
        subtype = AUDIO_OUTPUT_SUBTYPES[f".{self.options.audio_format}"]
        fmt = self.options.audio_format.upper()
        mono = self.options.mono or info.channels == 1  # else every channel is kept: (m, C) blocks
        channels = 1 if mono else info.channels
        writers = [
            stack.enter_context(sf.SoundFile(p, "w", samplerate=out_rate, channels=channels, subtype=subtype, format=fmt))
            for p in audio_paths
        ]
        native = None if out_rate == model_rate else iter_audio_blocks(source, DECODE_BLOCK_SAMPLES, out_rate, min_samples=0, mono=mono)
        converter = OutputRateConverter(model_rate, out_rate, native)
        blocks = iter_audio_blocks(source, DECODE_BLOCK_SAMPLES, model_rate, min_samples=0, mono=mono)
        peak = 0.0

        def write(mixture: np.ndarray, outputs: np.ndarray) -> None:
            for target, writer in zip(targets, writers):
                track = mixture - outputs[target.row] if target.residual else outputs[target.row]
                writer.write(track if subtype == "FLOAT" else np.clip(track, -1.0, 1.0))

        with self._progress(source, info.duration_s, model_rate) as on_progress:
            for mixture, outputs in self.separator.separate_blocks(blocks, self.queries, self.union_rows, on_progress,
                                                                   channels=None if mono else channels):
                peak = max(peak, float(np.abs(mixture).max(initial=0.0)))
                write(*converter.convert(mixture, outputs))
        tail = converter.finish()
        if tail is not None:
            write(*tail)
        for writer in writers:
            writer.close()
        return peak

    @contextmanager
    def _progress(self, source: Path, duration_s: float | None, model_rate: int) -> Iterator[Callable[[int], None] | None]:
        """`Separator.separate_blocks`'s on_progress (samples read) feeding this input's meter, if any."""
        if self.progress is None:
            yield None
            return
        meter = self.progress(source, duration_s)
        done_s = 0.0

        def on_progress(received: int) -> None:
            nonlocal done_s
            meter.update(received / model_rate - done_s)
            done_s = received / model_rate

        try:
            yield on_progress
        finally:
            meter.close()
