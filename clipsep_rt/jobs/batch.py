"""One input of a batch job: `separate_file`, the per-file step that both executors run (the
local one in jobs/run.py, the Ray one in jobs/distributed.py), and `BatchJob`, what every
input is separated into and where it goes.

Nothing is printed: a failure becomes the `FileResult`'s one-line `error` (the file's own
ClipsepError, or the unexpected error's type and text), a silent input one of its
`warnings`; the progress of the input goes to a meter the caller makes (a tqdm bar fits).

Outputs that already exist are kept (unless `overwrite`): an input whose outputs all exist
is skipped without being decoded, and one with some missing writes only those. An output
another process is writing (a second run of the same job, started while this one runs) is
left to it: the input is skipped with a warning, before it is separated. An OS error while
writing (disk full, read-only folder) fails the input with one line naming the output. On
KeyboardInterrupt (Ctrl-C, or SIGTERM as the command line maps it) the file in progress
leaves nothing behind and the interrupt propagates.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from clipsep_rt.api import Queries, Separator
from clipsep_rt.dsp.presence import GateOptions, PresenceTimeline
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES
from clipsep_rt.io.audio_writer import AudioWriter
from clipsep_rt.io.files import OutputClaimed, OutputExists, atomic_output, make_output_folder
from clipsep_rt.io.media import SourceInfo, iter_audio_blocks, probe, write_video_with_audio_atomic
from clipsep_rt.io.resample import OutputRateConverter
from clipsep_rt.jobs.outputs import OutputOptions, OutputTarget, output_path, output_targets, union_rows
from clipsep_rt.jobs.results import FileResult
from clipsep_rt.runtime.exclusion import output_labels

DECODE_BLOCK_SAMPLES = 1 << 16


class FileProgress(Protocol):
    """The progress meter of one input: `update(n)` adds n seconds of its audio done."""

    def update(self, n: float) -> object: ...

    def close(self) -> object: ...


# (input, its duration in seconds when the header states one) -> its progress meter
ProgressFactory = Callable[[Path, float | None], FileProgress]


@dataclass(frozen=True, eq=False)
class BatchJob:
    """What each input of a batch is separated into, and where (picklable: Ray workers get it)."""

    names: tuple[str, ...]  # output names (`Queries.names`): the queries', or the one "all but ..."
    embeddings: np.ndarray  # (Q, D) float32 query vectors (Q = 0: "all but" the exclusions)
    options: OutputOptions
    out_dir: Path  # the output folder (for `output_file`: its folder); the results manifest goes there too
    noise_heads: int = 0  # noise-head rows per query the separator gives: the model's count, or 0
    overwrite: bool = False  # replace existing outputs; separate again what the manifest says is done
    output_file: Path | None = None  # instead of names in out_dir: the one output of a one-input, one-target job
    gate: GateOptions | None = None  # the presence gate (dsp.presence), or None: off
    excluded: tuple[str, ...] = ()  # (E,) exclusion names (runtime.exclusion): left out of every output
    exclusions: np.ndarray | None = None  # (E, D) float32 exclusion vectors

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "excluded", tuple(self.excluded))
        if bool(self.noise_heads) != self.options.noise_heads:  # the rows the separator gives, and the targets read
            raise OptionError("noise_heads", "queries prepared with noise heads go with OutputOptions(noise_heads=True), "
                                             "and only they: prepare the queries as the outputs say")
        if self.output_file is None:
            return
        count = len(self.targets)
        if count != 1:
            raise OptionError("output_file", f"{self.output_file} names one file, but each input gets {count} outputs: "
                                             "give an output directory")
        if self.output_file.suffix.lower() != f".{self.options.audio_format}":
            raise OptionError("output_file", f"{self.output_file}: a {self.options.audio_format} output needs a "
                                             f".{self.options.audio_format} file name")

    @classmethod
    def of(cls, queries: Queries, options: OutputOptions, out_dir: Path, overwrite: bool = False,
           output_file: Path | None = None) -> BatchJob:
        """The job of queries made by `Separator.queries` (their names, vectors and noise heads)."""
        return cls(tuple(queries.names), queries.embeddings, options, out_dir, queries.noise_heads, overwrite, output_file,
                   excluded=tuple(queries.excluded), exclusions=queries.exclusions)

    def prepare(self, separator: Separator) -> Queries:
        """This job's queries (and exclusions) prepared by `separator` (each executor's own)."""
        return separator.prepare_queries(list(self.names[: len(self.embeddings)]), self.embeddings,
                                         noise_heads=self.noise_heads > 0, excluded=self.excluded,
                                         exclusions=self.exclusions)

    @property
    def targets(self) -> list[OutputTarget]:
        """Named after the outputs' labels: song_violin_without_speech.wav with exclusions."""
        return output_targets(output_labels(self.names, len(self.embeddings), self.excluded), self.noise_heads,
                              self.options)

    @property
    def union_rows(self) -> list[int] | None:
        return union_rows(len(self.names), self.noise_heads, self.options)

    def check_inputs(self, count: int) -> None:
        """Refuse an `output_file` job of several inputs (OptionError)."""
        if self.output_file is not None and count != 1:
            raise OptionError("output_file", f"{self.output_file} names one file, but {count} inputs were given: "
                                             "give an output directory")

    def planned(self, source: Path, base: Path, as_video: bool) -> list[tuple[OutputTarget, Path]]:
        """Each target of `source` and its output path (`base`: see `outputs.output_base`)."""
        extension = source.suffix if as_video else f".{self.options.audio_format}"
        return [(target, self.output_file or output_path(self.out_dir, base, target, extension)) for target in self.targets]

    def done_before(self, previous: FileResult, source: Path, base: Path) -> bool:
        """Whether an earlier result of `source` finished every output this job would write, all still there."""
        if not previous.finished():
            return False
        have = {Path(path).resolve() for path in previous.outputs}
        return any({path.resolve() for _, path in self.planned(source, base, as_video)} <= have
                   for as_video in {False, self.options.video})

    def possible_outputs(self, source: Path, base: Path) -> set[Path]:
        """Every output a writer of `source` may write: its audio outputs, and its video ones
        when the job keeps video (whether `source` is a video is not asked: it may be gone)."""
        return {path for as_video in {False, self.options.video} for _, path in self.planned(source, base, as_video)}


def failure_message(source: Path, error: Exception) -> str:
    """The one-line reason an input failed: a ClipsepError's own, or the unexpected error's type and text."""
    if isinstance(error, ClipsepError):
        return str(error)
    reason = " ".join(str(error).split()) or "no message"
    return f"{source}: unexpected {type(error).__name__}: {reason}"


def separate_file(
    separator: Separator,
    queries: Queries,
    job: BatchJob,
    source: Path,
    base: Path,
    protected: Collection[Path] = frozenset(),
    claimed: Mapping[Path, Path] | None = None,
    progress: ProgressFactory | None = None,
) -> FileResult:
    """Separate one input into the job's outputs that are missing (all with `overwrite`),
    writing all of those or none; never raises for a bad file (its result has the `error`).

    `base`: where its outputs go below `job.out_dir` (`outputs.output_base`). `protected`:
    resolved paths never written (the batch's inputs). `claimed`: outputs (resolved) earlier
    inputs named -> those inputs; an input that would write one fails. `queries`: prepared by
    `separator` from the job's names and vectors."""
    result = FileResult(str(source.resolve()))
    start = time.perf_counter()
    try:
        _separate(separator, queries, job, source, base, protected, claimed or {}, progress, result)
    except Exception as error:  # noqa: BLE001 - an unexpected failure must not lose the other files
        result.error = failure_message(source, error)
        result.outputs, result.kept = [], []
    result.seconds = time.perf_counter() - start
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return result


def _separate(separator: Separator, queries: Queries, job: BatchJob, source: Path, base: Path,
              protected: Collection[Path], claimed: Mapping[Path, Path], progress: ProgressFactory | None,
              result: FileResult) -> None:
    info = probe(source)
    as_video = job.options.video and info.is_video
    planned = job.planned(source, base, as_video)
    for _, path in planned:
        if path.resolve() in protected:
            raise ClipsepError(f"{path}: output would overwrite an input file; choose another output directory")
        owner = claimed.get(path.resolve())
        if owner is not None:
            raise ClipsepError(f"{source}: its output {path} has the name of {owner}'s: rename one of them, "
                               "or separate them into different output directories")
    result.claimed = [str(path.resolve()) for _, path in planned]
    kept = [path for _, path in planned if not job.overwrite and os.path.lexists(path)]
    result.kept = [os.path.abspath(path) for path in kept]
    result.outputs = list(result.kept)
    todo = [(target, path) for target, path in planned if path not in kept]
    if not todo:
        return
    presence = PresenceTimeline(separator.spectral)
    try:
        peak, result.audio_seconds = _write_outputs(separator, queries, job, source, info, todo, as_video, progress,
                                                    result.warnings.append, presence)
    except OutputClaimed as claimed_elsewhere:  # a concurrent run of the same job: its work, not this run's
        why = (f"{claimed_elsewhere.path}: another process wrote it meanwhile; kept"  # it was missing when planned
               if isinstance(claimed_elsewhere, OutputExists) else claimed_elsewhere)
        result.warnings.append(f"{source}: {why}")
        result.left_to_another = True
        return
    result.outputs = [os.path.abspath(path) for _, path in planned]
    result.presence = {name: [None if s is None else round(s, 4) for s in scores]
                       for name, scores in presence.scores().items()}
    if peak == 0.0:
        result.warnings.append(f"{source}: input is silent; its outputs are silent too")


def _write_outputs(separator: Separator, queries: Queries, job: BatchJob, source: Path, info: SourceInfo,
                   todo: list[tuple[OutputTarget, Path]], as_video: bool,
                   progress: ProgressFactory | None, warn: Callable[[str], None],
                   presence: PresenceTimeline) -> tuple[float, float]:
    """Write every (target, path) of `todo`, or none; returns (the input's peak, seconds of audio);
    `presence` collects the queries' per-second presence.
    `OutputClaimed` (before the separation, for audio outputs) when another process writes one.
    `warn` hears of an input that ends before its header says (its outputs stop there too)."""
    paths = [path for _, path in todo]
    for path in paths:
        make_output_folder(path.parent)
    with ExitStack() as stack:
        if as_video:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=job.out_dir, prefix=".clipsep-")))
            audio_paths = [scratch / f"{i}.wav" for i in range(len(paths))]
        else:
            audio_paths = [stack.enter_context(atomic_output(p, job.overwrite)) for p in paths]
        peak, seconds = _write_tracks(separator, queries, job, source, info, [t for t, _ in todo], paths,
                                      audio_paths, stack, progress, warn, presence)
        if as_video:
            for audio_path, path in zip(audio_paths, paths):
                samples, rate = sf.read(audio_path, dtype="float32")
                write_video_with_audio_atomic(source, path, samples, rate, overwrite=job.overwrite)
    return peak, seconds


def _write_tracks(
    separator: Separator, queries: Queries, job: BatchJob, source: Path, info: SourceInfo,
    targets: list[OutputTarget], output_paths: list[Path], audio_paths: list[Path], stack: ExitStack,
    progress: ProgressFactory | None, warn: Callable[[str], None], presence: PresenceTimeline,
) -> tuple[float, float]:
    """Stream the separation of `source` into one file per target (`audio_paths`, written for
    `output_paths`, the names errors give); returns (input peak, seconds of audio)."""
    options = job.options
    model_rate = separator.sample_rate
    out_rate = options.sample_rate or info.rate
    subtype = AUDIO_OUTPUT_SUBTYPES[f".{options.audio_format}"]
    fmt = options.audio_format.upper()
    mono = options.mono or info.channels == 1  # else every channel is kept: (m, C) blocks
    channels = 1 if mono else info.channels
    writers = [stack.enter_context(AudioWriter(path, out_rate, channels, subtype, fmt, shown_as=output))
               for path, output in zip(audio_paths, output_paths)]
    native = None if out_rate == model_rate else iter_audio_blocks(
        source, DECODE_BLOCK_SAMPLES, out_rate, min_samples=0, mono=mono, on_warning=lambda message: None)  # `blocks` warns
    converter = OutputRateConverter(model_rate, out_rate, native)
    blocks = iter_audio_blocks(source, DECODE_BLOCK_SAMPLES, model_rate, min_samples=0, mono=mono, on_warning=warn)
    peak = 0.0

    def write(mixture: np.ndarray, outputs: np.ndarray) -> None:
        for target, writer in zip(targets, writers):
            track = mixture - outputs[target.row] if target.residual else outputs[target.row]
            writer.write(track)

    with _progress(progress, source, info.duration_s, model_rate) as (on_progress, done):
        for mixture, outputs in separator.separate_blocks(blocks, queries, job.union_rows, on_progress,
                                                          channels=None if mono else channels, presence=presence,
                                                          gate=job.gate or False):
            peak = max(peak, float(np.abs(mixture).max(initial=0.0)))
            write(*converter.convert(mixture, outputs))
    tail = converter.finish()
    if tail is not None:
        write(*tail)
    for writer in writers:
        writer.close()
    return peak, done()


@contextmanager
def _progress(progress: ProgressFactory | None, source: Path, duration_s: float | None,
              model_rate: int) -> Iterator[tuple[Callable[[int], None], Callable[[], float]]]:
    """(`Separator.separate_blocks`'s on_progress (samples read), seconds read so far), feeding
    this input's meter if there is one."""
    meter = progress(source, duration_s) if progress is not None else None
    done_s = 0.0

    def on_progress(received: int) -> None:
        nonlocal done_s
        if meter is not None:
            meter.update(received / model_rate - done_s)
        done_s = received / model_rate

    try:
        yield on_progress, lambda: done_s
    finally:
        if meter is not None:
            meter.close()
