"""Batch separation on a Ray cluster: the Ray executor of a batch job (`run.Batch`), a pool
of actors, each holding one loaded separator.

    report = Batch(job, inputs, roots).run(RayExecutor(separator.spec, RayCluster("auto", gpus_per_worker=1)))
    report = Batch(BatchJob(names, embeddings, OutputOptions(), Path("/shared/out")), inputs).run(
        RayExecutor(spec, RayCluster("local")))                   # the same, without a separator loaded here

Ray core, not Ray Data: an input is a path on storage every worker sees, and its worker
decodes, separates and writes it in blocks (`batch.separate_file`, as the local executor
does), so no audio goes through the object store and nothing is gained from Ray Data's
block streaming. What the job needs is per-file control: a bounded retry of the one file
whose worker died, the replacement of that worker, one manifest line per file as it
finishes (written by `run.Batch`), and progress per file. Each worker gets one file at a
time; a file is a task, so one slow file never holds back a batch of others.

The queries are embedded once by the caller (the job's names and vectors); each worker
loads the separator from a `PipelineSpec` (paths every worker sees, or the bundled model)
on its own device. Nothing is printed: warnings and errors go to `log`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.api import PipelineSpec, Separator
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import remove_stale_temporaries
from clipsep_rt.jobs.batch import BatchJob, separate_file
from clipsep_rt.jobs.results import FileResult
from clipsep_rt.jobs.run import BatchPlan, BatchReport, FileTask, Log
from clipsep_rt.optional import describe_exception, import_optional

__all__ = ["RayCluster", "RayExecutor", "SeparationWorker"]

logger = logging.getLogger(__name__)

STOP_WAIT_S = 30.0  # how long an interrupted job waits for each kind of its killed workers to be gone
MAX_RETRIES = 10  # a file (or a worker start) that kills its worker this often will not get through


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
        if not 0 < self.cpus_per_worker < math.inf:  # NaN fails too
            raise OptionError("cpus_per_worker", f"must be a positive number, got {self.cpus_per_worker:g}")
        if not 0 <= self.gpus_per_worker < math.inf:
            raise OptionError("gpus_per_worker", f"must be 0 or more, got {self.gpus_per_worker:g}")
        if not 0 <= self.max_retries <= MAX_RETRIES:
            raise OptionError("max_retries", f"must be 0 to {MAX_RETRIES}, got {self.max_retries}")


class RayExecutor:
    """A batch job's executor on a pool of Ray actors, each loading the separator of `spec`.

    Uses the Ray instance this process is connected to, if any; otherwise connects to (or
    with "local" starts) `cluster.address` and disconnects at the end. Each worker runs the
    network on `cluster.cpus_per_worker` threads unless `spec.threads` says otherwise."""

    def __init__(self, spec: PipelineSpec, cluster: RayCluster):
        self.ray = import_optional("ray", "distributed")
        self.spec = spec.resolved() if spec.threads else dataclasses.replace(
            spec.resolved(), threads=max(1, int(cluster.cpus_per_worker)))
        self.cluster = cluster

    def run(self, plan: BatchPlan, on_result: Callable[[FileResult], None], report: BatchReport, log: Log) -> None:
        ray = self.ray
        job = plan.job  # the workers' working directory is not this one: absolute paths
        plan = dataclasses.replace(plan, job=dataclasses.replace(
            job, out_dir=job.out_dir.resolve(), output_file=job.output_file.resolve() if job.output_file else None))
        started_ray = _connect(ray, self.cluster.address)
        try:
            size = min(_pool_size(ray, self.cluster, log), len(plan.tasks))
            pool = _Pool(ray, self.spec, plan, self.cluster, size, log)
            try:
                pool.run(deque(_Item(task) for task in plan.tasks), report, on_result)
            except KeyboardInterrupt:
                report.interrupted = ", ".join(str(item.task.source) for _, item in pool.running.values()) or None
                raise
            finally:
                pool.close()
        finally:
            if started_ray:
                ray.shutdown()


class SeparationWorker:
    """A Ray actor: one loaded separator with the job's queries; separates one input per `separate` call."""

    def __init__(self, spec: PipelineSpec, job: BatchJob, protected: frozenset[Path]):
        import ray

        self.name = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
        self.job = job
        self.protected = protected
        self.load_error: str | None = None
        try:
            self.separator = Separator.load(spec)
            self.queries = job.prepare(self.separator)
            if self.queries.noise_heads != job.noise_heads:
                raise ClipsepError(f"its model has {self.queries.noise_heads} noise heads per query, the job "
                                   f"{job.noise_heads}")
        except Exception as error:  # noqa: BLE001 - reported by `ready`, which stops the job
            self.load_error = str(error) if isinstance(error, ClipsepError) else describe_exception(error)

    def ready(self) -> tuple[str, str | None]:
        """(this worker's node:pid, why it could not load the separator or None)."""
        return self.name, self.load_error

    def separate(self, source: str, base: Path, claimed: dict[Path, Path]) -> tuple[FileResult, dict[Path, Path]]:
        """`batch.separate_file` of one input; `claimed`: the outputs (resolved) earlier inputs of
        the same base named -> those inputs. Returns its result and the outputs it named."""
        result = separate_file(self.separator, self.queries, self.job, Path(source), base, self.protected, claimed)
        result.worker = self.name
        return result, {Path(path): Path(source) for path in result.claimed}


@dataclass
class _Item:
    task: FileTask
    attempts: int = 0

    @property
    def base(self) -> Path:
        return self.task.base


def _connect(ray, address: str) -> bool:
    """Connect this process to Ray unless it already is; True when it connected here."""
    if ray.is_initialized():
        return False
    options = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address == "local":
        options["include_dashboard"] = False
    try:
        with _own_stop_signals():
            ray.init(address=address, **options)
    except Exception as error:  # noqa: BLE001 - Ray raises several kinds; all mean "no cluster there"
        hint = " (start one with `ray start --head`, or use --ray local)" if address == "auto" else ""
        raise OptionError("address", f"cannot connect to the Ray cluster {address!r}: {describe_exception(error)}{hint}") from None
    return True


@contextmanager
def _own_stop_signals() -> Iterator[None]:
    """Keep the process's SIGTERM and SIGINT handlers across `ray.init`, which replaces SIGTERM's
    with its own (exit at once, status 1 or 15, after a C++ stack dump on stderr): a SIGTERM
    must unwind as the caller chose (the command line: clean-up, then status 143), and the
    executor's `finally` stops the workers and the Ray it started. Only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(number, handler)


def _pool_size(ray, cluster: RayCluster, log: Log) -> int:
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

    def __init__(self, ray, spec: PipelineSpec, plan: BatchPlan, cluster: RayCluster, size: int, log: Log):
        self.ray = ray
        self.cluster = cluster
        self.log = log
        self.job = plan.job
        self.refs = (ray.put(spec), ray.put(plan.job), ray.put(plan.protected))  # shipped once, not once per worker
        self.actor_class = ray.remote(SeparationWorker).options(
            num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker, max_restarts=0, max_task_retries=0,
        )
        self.starting: dict = {}  # ready() ref -> actor
        self.running: dict = {}  # separate() ref -> (actor, item)
        self.idle: list = []
        self.pids: dict = {}  # actor -> its process id, for the workers on this machine
        self.start_deaths = 0  # workers that died before they were ready, since the last one was
        self.died: list[_Item] = []  # inputs whose worker died: their partial temporaries are removed at the end
        self.claims = {base: dict(outputs) for base, outputs in plan.taken.items()}  # base -> outputs named -> input
        for _ in range(size):
            self._start_worker()

    def _start_worker(self) -> None:
        actor = self.actor_class.remote(*self.refs)
        self.starting[actor.ready.remote()] = actor

    def run(self, queue: deque[_Item], report: BatchReport, on_result: Callable[[FileResult], None]) -> None:
        while queue or self.running:
            while self.idle and (item := self._next(queue)) is not None:
                actor = self.idle.pop()
                item.attempts += 1
                source = str(item.task.source.resolve())
                self.running[actor.separate.remote(source, item.base, self.claims.get(item.base, {}))] = (actor, item)
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
            on_result(result)

    def _next(self, queue: deque[_Item]) -> _Item | None:
        """The first queued input no running input shares a base with (those run in input
        order, so a name clash fails the later input, as in one process), or None."""
        busy = {item.base for _, item in self.running.values()}
        for index, item in enumerate(queue):
            if item.base not in busy:
                del queue[index]
                return item
        return None

    def _worker_ready(self, ref, report: BatchReport) -> None:
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
        node, _, pid = name.rpartition(":")
        if node == self.ray.util.get_node_ip_address():
            self.pids[actor] = int(pid)
        self.idle.append(actor)

    def _worker_died(self, actor, item: _Item, error: Exception, queue: deque[_Item]) -> FileResult | None:
        """Replace the dead worker; requeue its file, or fail it after max_retries retries."""
        self.ray.kill(actor, no_restart=True)
        self._start_worker()
        self.died.append(item)
        reason = _first_line(error)
        source = item.task.source.resolve()
        if item.attempts <= self.cluster.max_retries:
            self.log(f"warning: {source}: its Ray worker died ({reason}); trying again "
                     f"(retry {item.attempts} of {self.cluster.max_retries})")
            queue.appendleft(item)
            return None
        return FileResult(str(source), error=f"{source}: its Ray worker died {item.attempts} times while "
                                             f"separating it (last: {reason})")

    def close(self) -> None:
        """Stop every worker, then remove the partial temporary outputs dead workers left: those
        of the outputs of their inputs that no live process holds (`remove_stale_temporaries`).

        The workers still separating (the job was interrupted) are ended and waited for
        first, so that none writes a temporary after the clean-up: those on this machine by
        their process (SIGKILL, as `ray.kill` does; it works when a SIGTERM to the whole
        process group has stopped Ray's own services too), the others through Ray, each
        for up to `STOP_WAIT_S`."""
        busy = [actor for actor, _ in self.running.values()]
        for actor in [*self.idle, *self.starting.values(), *busy]:
            with suppress(Exception):  # Ray's services may be gone already
                self.ray.kill(actor, no_restart=True)
        _end_processes([self.pids[actor] for actor in busy if actor in self.pids])
        elsewhere = [ref for ref, (actor, _) in self.running.items() if actor not in self.pids]
        if elsewhere:
            with suppress(Exception):  # Ray's services may be gone already: their workers with them
                self.ray.wait(elsewhere, num_returns=len(elsewhere), timeout=STOP_WAIT_S)
        for item in [*self.died, *(item for _, item in self.running.values())]:
            for path in self.job.possible_outputs(item.task.source, item.base):
                remove_stale_temporaries(path)


def _end_processes(pids: list[int]) -> None:
    """SIGKILL these processes, then wait (up to `STOP_WAIT_S`) until none runs any more."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_WAIT_S
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def _running(pid: int) -> bool:
    """Whether process `pid` still runs: any of its threads is not yet a zombie. A killed
    multi-threaded process can show its main thread as a zombie while the others still
    exit, holding its files (and their locks) until the last one is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # no /proc: running until its parent reaps it
        return True
    return any(_thread_state(thread) not in ("Z", "X", None) for thread in threads)


def _thread_state(thread: Path) -> str | None:
    """One letter from /proc/PID/task/TID/stat (R, S, D, Z...), or None for a thread gone meanwhile."""
    try:
        return (thread / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
