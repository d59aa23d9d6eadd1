"""A batch job over its inputs, run by an executor: one driver for local and Ray runs.

    job = BatchJob.of(separator.queries(["violin"]), OutputOptions(), Path("out"))
    found = collect_inputs(["clips/", "paths.txt"])                  # clipsep_rt.io.inputs
    report = Batch(job, found.files, found.roots).run(LocalExecutor(separator))
    report = Batch(job, found.files, found.roots).run(RayExecutor(separator.spec, RayCluster("auto")))

The driver reads the results manifest in the output folder (`jobs.results`): an input it
lists as finished, with every output this job would write still there, is skipped (unless
`overwrite`). The others go to the executor, which runs `batch.separate_file` on each (same
output names, same samples either way); each result is logged, appended to the manifest
and counted as it arrives. Nothing is printed: warnings and errors go to `log` as one line
each ("warning: ..." / "error: ..."), the job's progress to `progress`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from clipsep_rt.api import Separator
from clipsep_rt.io.files import make_output_folder
from clipsep_rt.jobs.batch import BatchJob, ProgressFactory, separate_file
from clipsep_rt.jobs.outputs import output_base
from clipsep_rt.jobs.results import FileResult, ResultsManifest

logger = logging.getLogger(__name__)

Log = Callable[[str], None]


@dataclass(frozen=True)
class FileTask:
    source: Path  # the input as given
    base: Path  # its outputs' name below the output folder (`outputs.output_base`)


@dataclass(frozen=True)
class BatchPlan:
    """What an executor runs: the job, the inputs still to separate (in order), and what they may not write."""

    job: BatchJob
    tasks: list[FileTask]
    protected: frozenset[Path]  # every input of the batch (resolved): never written, even with overwrite
    taken: dict[Path, dict[Path, Path]]  # base -> outputs (resolved) of inputs done by earlier runs -> those inputs


@dataclass
class JobProgress:
    done: int  # inputs finished (separated, failed or skipped)
    total: int
    failed: int
    audio_seconds: float  # audio separated so far by this run
    elapsed_s: float

    @property
    def audio_hours_per_second(self) -> float:
        return self.audio_seconds / 3600 / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class BatchReport:
    total: int = 0  # inputs of the batch
    results: list[FileResult] = field(default_factory=list)  # this run's, in the order they finished
    already_done: list[FileResult] = field(default_factory=list)  # finished by an earlier run (the manifest): skipped
    workers: list[str] = field(default_factory=list)  # the Ray workers started ("node:pid"); none locally
    elapsed_s: float = 0.0
    interrupted: str | None = None  # the input(s) in progress when a KeyboardInterrupt stopped the run

    @property
    def failures(self) -> list[FileResult]:
        return [result for result in self.results if result.error is not None]

    @property
    def separated(self) -> list[FileResult]:
        """Inputs this run wrote outputs of."""
        return [result for result in self.results if result.error is None and result.written]

    @property
    def skipped(self) -> list[FileResult]:
        """Inputs whose outputs all existed (kept, nothing decoded)."""
        return [result for result in self.results
                if result.error is None and not result.written and not result.left_to_another]

    @property
    def left_to_others(self) -> list[FileResult]:
        """Inputs another process (a concurrent run of the job) was writing: left to it."""
        return [result for result in self.results if result.left_to_another]

    @property
    def written(self) -> list[str]:
        return [path for result in self.results for path in result.written]

    @property
    def kept(self) -> list[str]:
        return [path for result in self.results for path in result.kept]

    @property
    def audio_seconds(self) -> float:
        return sum(result.audio_seconds for result in self.results)


class Executor(Protocol):
    """Runs `batch.separate_file` on each task of a plan, handing each result to `on_result` as it finishes."""

    def run(self, plan: BatchPlan, on_result: Callable[[FileResult], None], report: BatchReport, log: Log) -> None: ...


class Batch:
    """One batch job over its inputs. `roots`: the folders inputs were found in (their
    subfolders are kept below the output folder). `report` is filled as results arrive, so
    it holds what finished when an interrupt propagates out of `run`."""

    def __init__(self, job: BatchJob, inputs: Sequence[Path], roots: Sequence[Path] = (), log: Log | None = None,
                 progress: Callable[[JobProgress], None] | None = None):
        job.check_inputs(len(inputs))
        self.job = job
        self.inputs = list(inputs)
        self.roots = list(roots)
        self.log = log or logger.warning
        self.progress = progress
        self.manifest = ResultsManifest(job.out_dir)
        self.report = BatchReport(total=len(self.inputs))
        self._start = time.perf_counter()

    def plan(self) -> BatchPlan:
        """The inputs the manifest does not list as done (all of them with `overwrite`), as tasks."""
        earlier = {} if self.job.overwrite else self.manifest.read()
        tasks: list[FileTask] = []
        taken: dict[Path, dict[Path, Path]] = {}
        for source in self.inputs:
            task = FileTask(source, output_base(source, self.roots))
            previous = earlier.get(str(source.resolve()))
            if previous is not None and self.job.done_before(previous, source, task.base):
                self.report.already_done.append(previous)
                taken.setdefault(task.base, {}).update((Path(path).resolve(), source) for path in previous.outputs)
            else:
                tasks.append(task)
        return BatchPlan(self.job, tasks, frozenset(source.resolve() for source in self.inputs), taken)

    def run(self, executor: Executor) -> BatchReport:
        """Separate every input not done before with `executor`; returns `report`."""
        self._start = time.perf_counter()
        plan = self.plan()
        self._progress()
        if plan.tasks:  # a read-only or unwritable output folder is one error, before any work
            make_output_folder(self.job.out_dir, check_writable=True)
        try:
            if plan.tasks:
                executor.run(plan, self._on_result, self.report, self.log)
        finally:
            self.report.elapsed_s = time.perf_counter() - self._start
        return self.report

    def _on_result(self, result: FileResult) -> None:
        for warning in result.warnings:
            self.log(f"warning: {warning}")
        if result.error is not None:
            self.log(f"error: {result.error}")
        self.report.results.append(result)
        if not result.left_to_another:  # the run writing it records it
            self.manifest.append(result)
        self._progress()

    def _progress(self) -> None:
        if self.progress is not None:
            report = self.report
            done = len(report.results) + len(report.already_done)
            self.progress(JobProgress(done, report.total, len(report.failures), report.audio_seconds,
                                      time.perf_counter() - self._start))


class LocalExecutor:
    """The batch in this process, one input after another, with `separator` (queries prepared from the job)."""

    def __init__(self, separator: Separator, progress: ProgressFactory | None = None):
        self.separator = separator
        self.progress = progress  # a meter per input (seconds of its audio)

    def run(self, plan: BatchPlan, on_result: Callable[[FileResult], None], report: BatchReport, log: Log) -> None:
        job = plan.job
        queries = job.prepare(self.separator)
        claimed = {path: owner for outputs in plan.taken.values() for path, owner in outputs.items()}
        worker = f"{socket.gethostname()}:{os.getpid()}"
        for task in plan.tasks:
            try:
                result = separate_file(self.separator, queries, job, task.source, task.base, plan.protected, claimed,
                                       self.progress)
            except KeyboardInterrupt:
                report.interrupted = str(task.source)
                raise
            result.worker = worker
            claimed.update((Path(path), task.source) for path in result.claimed)
            on_result(result)
