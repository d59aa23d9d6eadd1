"""Batch file separation: many inputs x many queries, one bad file never stops the rest.

Nothing is printed: failures and warnings go to `log` (default: this module's `logging`)
as one line each, "error: ..." or "warning: ...", and are kept in the `BatchReport`; the
progress of each input goes to a meter the caller makes (a tqdm bar fits).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES
from clipsep_rt.io.media import SourceInfo, atomic_output, iter_audio_blocks, probe, write_video_with_audio_atomic
from clipsep_rt.runtime.engines.protocol import PreparedQueries
from clipsep_rt.runtime.offline import OfflineSeparator
from clipsep_rt.io.resample import OutputRateConverter
from clipsep_rt.runtime.jobs.outputs import OutputOptions, output_bases, output_path, output_targets, union_rows

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
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, one-line reason)
    warnings: list[str] = field(default_factory=list)


@dataclass
class QuerySet:
    names: list[str]  # one per query, used in output names
    prepared: PreparedQueries  # from the engine: Q * (1 + H) output rows


class BatchSeparator:
    def __init__(
        self,
        separator: OfflineSeparator,
        queries: QuerySet,
        noise_heads: int,
        options: OutputOptions,
        out_dir: Path,
        overwrite: bool = False,
        log: Callable[[str], None] | None = None,
        progress: ProgressFactory | None = None,
    ):
        self.separator = separator
        self.queries = queries
        self.options = options
        self.out_dir = out_dir
        self.overwrite = overwrite
        self.log = log or logger.warning
        self.progress = progress
        self.protected: set[Path] = set()
        self.targets = output_targets(queries.names, noise_heads, options)
        self.union_rows = union_rows(len(queries.names), noise_heads, options)

    def run(self, inputs: list[Path]) -> BatchReport:
        report = BatchReport()
        self.protected = {source.resolve() for source in inputs}  # never written, even with overwrite
        bases = output_bases(inputs)
        for source in inputs:
            try:
                report.written += self.separate_file(source, bases[source], report)
            except ClipsepError as error:
                self._fail(report, source, str(error))
            except Exception as error:  # noqa: BLE001 - an unexpected failure must not lose the other files
                reason = " ".join(str(error).split()) or "no message"
                self._fail(report, source, f"{source}: unexpected {type(error).__name__}: {reason}")
        return report

    def _fail(self, report: BatchReport, source: Path, message: str) -> None:
        report.failures.append((str(source), message))
        self.log(f"error: {message}")

    def separate_file(self, source: Path, base: str, report: BatchReport) -> list[Path]:
        """Separate one file into all its targets; writes all of them or none."""
        info = probe(source)
        as_video = self.options.video and info.is_video
        extension = source.suffix if as_video else f".{self.options.audio_format}"
        paths = [output_path(self.out_dir, base, target, extension) for target in self.targets]
        for path in paths:
            if path.resolve() in self.protected:
                raise ClipsepError(f"{path}: output would overwrite an input file; choose another output directory")
            if path.exists() and not self.overwrite:
                raise ClipsepError(f"{path}: output already exists (allow overwriting to replace it)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            if as_video:
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self.out_dir, prefix=".clipsep-")))
                audio_paths = [scratch / f"{i}.wav" for i in range(len(paths))]
            else:
                audio_paths = [stack.enter_context(atomic_output(p, self.overwrite)) for p in paths]
            peak = self._write_tracks(source, info, audio_paths, stack)
            if as_video:
                for audio_path, path in zip(audio_paths, paths):
                    samples, rate = sf.read(audio_path, dtype="float32")
                    write_video_with_audio_atomic(source, path, samples, rate, overwrite=self.overwrite)
        if peak == 0.0:
            report.warnings.append(f"{source}: input is silent; its outputs are silent too")
            self.log(f"warning: {report.warnings[-1]}")
        return paths

    def _write_tracks(self, source: Path, info: SourceInfo, audio_paths: list[Path], stack: ExitStack) -> float:
        """Stream the separation of `source` into one file per target; returns the input peak."""
        model_rate = self.separator.spectral.sample_rate
        out_rate = self.options.sample_rate or info.rate
        subtype = AUDIO_OUTPUT_SUBTYPES[f".{self.options.audio_format}"]
        fmt = self.options.audio_format.upper()
        writers = [
            stack.enter_context(sf.SoundFile(p, "w", samplerate=out_rate, channels=1, subtype=subtype, format=fmt))
            for p in audio_paths
        ]
        native = None if out_rate == model_rate else iter_audio_blocks(source, DECODE_BLOCK_SAMPLES, out_rate, min_samples=1)
        converter = OutputRateConverter(model_rate, out_rate, native)
        blocks = iter_audio_blocks(source, DECODE_BLOCK_SAMPLES, model_rate, min_samples=self.separator.spectral.n_fft)
        peak = 0.0

        def write(mixture: np.ndarray, outputs: np.ndarray) -> None:
            for target, writer in zip(self.targets, writers):
                track = mixture - outputs[target.row] if target.residual else outputs[target.row]
                writer.write(track if subtype == "FLOAT" else np.clip(track, -1.0, 1.0))

        with self._progress(source, info.duration_s, model_rate) as on_progress:
            for mixture, outputs in self.separator.stream(blocks, self.queries.prepared, self.union_rows, on_progress):
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
        """`OfflineSeparator.stream`'s on_progress (samples read) feeding this input's meter, if any."""
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
