"""Batch separation on a Ray cluster: a pool of actors, each holding one loaded separator.

    job = DistributedJob(PipelineSpec(checkpoint=Path("/shared/model.safetensors")), names, embeddings,
                         OutputOptions(), Path("/shared/out"))
    report = separate_on_ray(job, inputs, RayCluster("auto", gpus_per_worker=1))

Ray core, not Ray Data: an input is a path on storage every worker sees, and its worker
decodes, separates and writes it in blocks (`BatchSeparator.separate_file`), so no audio goes
through the object store and nothing is gained from Ray Data's block streaming. What the job
needs is per-file control: a bounded retry of the one file whose worker died, the
replacement of that worker, one manifest line per file as it finishes, and progress per
file. Each worker gets one file at a time; a file is a task, so one slow file never holds
back a batch of others.

The queries are embedded once by the caller (`embeddings`); each worker loads the separator
from `PipelineSpec` (paths every worker sees, or the bundled model) on its own device.
Nothing is printed: warnings and errors go to `log`, progress to `progress`.
"""

from __future__ import annotations

import glob
import logging
import os
import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.api import Separator
from clipsep_rt.jobs.batch import BatchReport, BatchSeparator, failure_message
from clipsep_rt.jobs.manifest import FileResult, Manifest
from clipsep_rt.jobs.outputs import OutputOptions, output_base
from clipsep_rt.runtime.pipeline import PipelineSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedJob:
    separator: PipelineSpec  # what each worker loads (`Separator.spec` of the caller's, absolute paths)
    names: list[str]  # (Q,) query names, used in output names
    embeddings: np.ndarray  # (Q, D) float32 query vectors
    options: OutputOptions
    out_dir: Path
    noise_heads: bool = False  # also separate (and, with options.noise_heads, write) the noise heads
    overwrite: bool = False  # replace existing outputs and separate again what the manifest says is done
    protected: frozenset[Path] = frozenset()  # resolved inputs: never written (filled by separate_on_ray)

    def build_batch(self, progress) -> BatchSeparator:
        """On a worker: the separator loaded and the queries prepared, as a BatchSeparator."""
        separator = Separator.load(self.separator)
        queries = separator.prepare_queries(self.names, self.embeddings, self.noise_heads)
        batch = BatchSeparator(separator, queries, self.options, self.out_dir,
                               overwrite=self.overwrite, log=logger.debug, progress=progress)
        batch.protected = set(self.protected)
        return batch


@dataclass(frozen=True)
class RayCluster:
    address: str = "local"  # "local" (start Ray on this machine), "auto" (the running cluster), or an address
    workers: int | None = None  # None: as many as the cluster's CPUs (or GPUs) hold, at most one per input
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_retries: int = 2  # times a file is tried again after its worker died while separating it

    def __post_init__(self) -> None:
        if not self.address:
            raise OptionError("address", "give 'local', 'auto' or a Ray cluster address (ray://HOST:10001, HOST:6379)")
        if self.workers is not None and self.workers < 1:
            raise OptionError("workers", f"must be at least 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise OptionError("cpus_per_worker", f"must be positive, got {self.cpus_per_worker:g}")
        if self.gpus_per_worker < 0:
            raise OptionError("gpus_per_worker", f"must be 0 or more, got {self.gpus_per_worker:g}")
        if self.max_retries < 0:
            raise OptionError("max_retries", f"must be 0 or more, got {self.max_retries}")


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
class DistributedReport:
    total: int
    results: list[FileResult] = field(default_factory=list)  # this run's, in the order they finished
    skipped: list[FileResult] = field(default_factory=list)  # finished by an earlier run (the manifest)
    workers: list[str] = field(default_factory=list)  # every worker started, "node:pid"
    elapsed_s: float = 0.0

    @property
    def failures(self) -> list[FileResult]:
        return [result for result in self.results if result.error is not None]

    @property
    def written(self) -> list[str]:
        return [path for result in self.results for path in result.outputs]

    @property
    def audio_seconds(self) -> float:
        return sum(result.audio_seconds for result in self.results)


class _AudioMeter:
    """BatchSeparator's progress meter on a worker: adds up the seconds of audio separated."""

    def __init__(self, worker: "SeparationWorker"):
        self.worker = worker

    def update(self, n: float) -> None:
        self.worker.audio_seconds += n

    def close(self) -> None:
        pass


class SeparationWorker:
    """A Ray actor: one loaded separator; separates one input per `separate` call."""

    def __init__(self, job: DistributedJob):
        import ray

        self.name = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
        self.audio_seconds = 0.0
        self.load_error: str | None = None
        try:
            self.batch = job.build_batch(progress=lambda source, duration_s: _AudioMeter(self))
        except Exception as error:  # noqa: BLE001 - reported by `ready`, which stops the job
            self.batch, self.load_error = None, str(error) if isinstance(error, ClipsepError) else describe_exception(error)

    def ready(self) -> tuple[str, str | None]:
        """(this worker's node:pid, why it could not load the separator or None)."""
        return self.name, self.load_error

    def separate(self, source: str, base: Path, claims: dict[Path, Path]) -> tuple[FileResult, dict[Path, Path]]:
        """Separate one input (outputs `out_dir/base...`, see `outputs.output_base`); `claims`:
        the outputs (resolved) earlier inputs of the same base took -> those inputs. Returns its
        result and the outputs it claimed, as `BatchSeparator.run` would have in one process."""
        result = FileResult(source, worker=self.name)
        report = BatchReport()
        start = time.perf_counter()
        self.audio_seconds = 0.0
        self.batch.claimed = dict(claims)
        try:
            self.batch.separate_file(Path(source), base, report)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop this worker
            result.error = failure_message(Path(source), error)
        result.outputs = [str(path) for path in [*report.kept, *report.written]]
        result.seconds = time.perf_counter() - start
        result.audio_seconds = self.audio_seconds
        result.warnings = report.warnings
        result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        return result, {path: owner for path, owner in self.batch.claimed.items() if path not in claims}


@dataclass
class _Item:
    source: str
    base: Path
    attempts: int = 0


def separate_on_ray(
    job: DistributedJob,
    inputs: list[Path],
    cluster: RayCluster,
    roots: list[Path] = (),
    progress: Callable[[JobProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> DistributedReport:
    """Separate `inputs` (on storage every worker sees) on a pool of Ray actors, with the
    names `BatchSeparator.run(inputs, roots)` gives them.

    Inputs the manifest in `job.out_dir` says are done, with their outputs still there, are
    skipped (unless `job.overwrite`). Each result is appended to the manifest as it arrives.
    Uses the Ray instance this process is connected to, if any; otherwise connects to (or
    with "local" starts) `cluster.address` and disconnects at the end.
    """
    ray = import_optional("ray", "distributed")
    log = log or logger.warning
    start = time.perf_counter()
    sources = [str(path.resolve()) for path in inputs]
    job = replace(job, out_dir=job.out_dir.resolve(), protected=frozenset(map(Path, sources)))
    manifest = Manifest(job.out_dir)
    earlier = {} if job.overwrite else manifest.read()
    report = DistributedReport(total=len(inputs))
    queue: deque[_Item] = deque()
    for given, source in zip(inputs, sources):
        previous = earlier.get(source)
        if previous is not None and previous.finished():
            report.skipped.append(previous)
        else:
            queue.append(_Item(source, output_base(given, list(roots))))
    _report_progress(progress, report, start)
    if not queue:
        return report
    started_ray = _connect(ray, cluster.address)
    pool = _Pool(ray, job, cluster, min(_pool_size(ray, cluster, log), len(queue)), log)
    try:
        pool.run(queue, report, manifest, lambda: _report_progress(progress, report, start))
    finally:
        pool.close()
        if started_ray:
            ray.shutdown()
    report.elapsed_s = time.perf_counter() - start
    return report


def _report_progress(progress: Callable[[JobProgress], None] | None, report: DistributedReport, start: float) -> None:
    if progress is not None:
        done = len(report.results) + len(report.skipped)
        progress(JobProgress(done, report.total, len(report.failures), report.audio_seconds, time.perf_counter() - start))


def _connect(ray, address: str) -> bool:
    """Connect this process to Ray unless it already is; True when it connected here."""
    if ray.is_initialized():
        return False
    options = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address == "local":
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except Exception as error:  # noqa: BLE001 - Ray raises several kinds; all mean "no cluster there"
        hint = " (start one with `ray start --head`, or use --ray local)" if address == "auto" else ""
        raise OptionError("address", f"cannot connect to the Ray cluster {address!r}: {describe_exception(error)}{hint}") from None
    return True


def _pool_size(ray, cluster: RayCluster, log: Callable[[str], None]) -> int:
    """`cluster.workers`, or as many workers as the cluster's resources hold now."""
    resources = ray.cluster_resources()
    held = int(resources.get("CPU", 0) // cluster.cpus_per_worker)
    if cluster.gpus_per_worker:
        held = min(held, int(resources.get("GPU", 0) // cluster.gpus_per_worker))
    if cluster.workers is None:
        if held < 1:
            kind = "GPUs" if cluster.gpus_per_worker else "CPUs"
            raise OptionError("gpus_per_worker" if cluster.gpus_per_worker else "cpus_per_worker",
                              f"the Ray cluster has too few {kind} for one worker ({resources.get(kind[:-1], 0):g})")
        return held
    if cluster.workers > held:
        log(f"warning: the Ray cluster holds {held} such workers now; the other {cluster.workers - held} "
            "start when resources free up (or an autoscaler adds nodes)")
    return cluster.workers


class _Pool:
    """The actors and the scheduling loop: one file per idle worker; a dead worker is replaced."""

    def __init__(self, ray, job: DistributedJob, cluster: RayCluster, size: int, log: Callable[[str], None]):
        self.ray = ray
        self.cluster = cluster
        self.log = log
        self.out_dir = job.out_dir
        self.job_ref = ray.put(job)  # shipped once, not once per worker
        self.actor_class = ray.remote(SeparationWorker).options(
            num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker, max_restarts=0, max_task_retries=0,
        )
        self.starting: dict = {}  # ready() ref -> actor
        self.running: dict = {}  # separate() ref -> (actor, item)
        self.idle: list = []
        self.start_deaths = 0  # workers that died before they were ready, since the last one was
        self.died_bases: set[Path] = set()
        self.claims: dict[Path, dict[Path, Path]] = {}  # base -> outputs claimed by its inputs -> input  # inputs whose worker died: their partial temp files are removed at the end
        for _ in range(size):
            self._start_worker()

    def _start_worker(self) -> None:
        actor = self.actor_class.remote(self.job_ref)
        self.starting[actor.ready.remote()] = actor

    def run(self, queue: deque[_Item], report: DistributedReport, manifest: Manifest, on_result: Callable[[], None]) -> None:
        while queue or self.running:
            while self.idle and (item := self._next(queue)) is not None:
                actor = self.idle.pop()
                item.attempts += 1
                claims = self.claims.get(item.base, {})
                self.running[actor.separate.remote(item.source, item.base, claims)] = (actor, item)
            [ref], _ = self.ray.wait([*self.starting, *self.running], num_returns=1)
            if ref in self.starting:
                self._worker_ready(ref, report)
                continue
            actor, item = self.running.pop(ref)
            try:
                result, claimed = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as error:
                result = self._worker_died(actor, item, error, queue)
                if result is None:
                    continue
            else:
                self.idle.append(actor)
                self.claims.setdefault(item.base, {}).update(claimed)
            result.attempts = item.attempts
            for warning in result.warnings:
                self.log(f"warning: {warning}")
            if result.error is not None:
                self.log(f"error: {result.error}")
            report.results.append(result)
            manifest.append(result)
            on_result()

    def _next(self, queue: deque[_Item]) -> _Item | None:
        """The first queued input no running input shares a base with (those run in input
        order, so a name clash fails the later input, as in one process), or None."""
        busy = {item.base for _, item in self.running.values()}
        for index, item in enumerate(queue):
            if item.base not in busy:
                del queue[index]
                return item
        return None

    def _worker_ready(self, ref, report: DistributedReport) -> None:
        actor = self.starting.pop(ref)
        try:
            name, load_error = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as error:
            self.start_deaths += 1
            if self.start_deaths > self.cluster.max_retries + 1:
                raise ClipsepError(f"Ray workers keep dying while they load the separator ({_first_line(error)})") from None
            self.log(f"warning: a Ray worker died while loading the separator; starting another ({_first_line(error)})")
            self._start_worker()
            return
        if load_error is not None:
            raise ClipsepError(f"Ray worker {name} cannot load the separator: {load_error}")
        self.start_deaths = 0
        report.workers.append(name)
        self.idle.append(actor)

    def _worker_died(self, actor, item: _Item, error: Exception, queue: deque[_Item]) -> FileResult | None:
        """Replace the dead worker; requeue its file, or fail it after max_retries retries."""
        self.ray.kill(actor, no_restart=True)
        self._start_worker()
        self.died_bases.add(item.base)
        reason = _first_line(error)
        if item.attempts <= self.cluster.max_retries:
            self.log(f"warning: {item.source}: its Ray worker died ({reason}); trying again "
                     f"(retry {item.attempts} of {self.cluster.max_retries})")
            queue.appendleft(item)
            return None
        return FileResult(item.source, error=f"{item.source}: its Ray worker died {item.attempts} times while "
                                             f"separating it (last: {reason})")

    def close(self) -> None:
        """Stop every worker, then remove the partial temporary outputs dead workers left."""
        for actor in [*self.idle, *self.starting.values(), *(actor for actor, _ in self.running.values())]:
            self.ray.kill(actor, no_restart=True)
        interrupted = {item.base for _, item in self.running.values()}
        for base in self.died_bases | interrupted:  # atomic_output's temporary names: .{base}_{target}.{hex}.tmp{ext}
            folder = glob.escape(str(self.out_dir / base.parent))
            for path in glob.glob(os.path.join(folder, f".{glob.escape(base.name)}_*.tmp*")):
                Path(path).unlink(missing_ok=True)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
