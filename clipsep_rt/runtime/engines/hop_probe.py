"""Which CPU backend streams fastest here: each one timed on a streaming hop's network call, cached.

`auto` ranks the CPU backends in a fixed order (runtime.engines.choice) that is right on a quiet
machine with native bf16, not everywhere: without bf16, with some backends missing, or under
load (torch bf16 then missed the hop where OpenVINO bf16 did not). For a stream
(`PipelineSpec.stream_latency`), `Pipeline.load` asks `choose_for_stream` instead. Every CPU option
`auto` could pick here (`choice.cpu_candidates`) is opened and timed on the call each streaming
hop makes, `engine.probabilities` of one (1, 1, F, W) log-magnitude window (F log-frequency bins,
W the trained window's frames: 256 x 256) with one query. One option at a time (two runtimes'
thread pools slow each other's calls): it is opened, makes WARMUP_CALLS calls (the first
compiles the shape), then up to PROBE_CALLS timed calls within PROBE_SECONDS (MIN_CALLS at
least); from MIN_CALLS on it stops when its median is PRUNE_FACTOR times the best p99 so far: it
cannot win. `rank` orders the options by p99 against the preset's hop duration: those within it
fastest first, then the rest; when none is within it, the fastest runs with a warning that the
stream is not real time here.

Every preset makes the same call, only more or less often (every H frames), so one probe serves
them all: the preset sets the budget alone. The hop's other work (STFT, masks, iSTFT) is not in
the figures: 0.4-0.7 ms a hop at the median on 2 loaded cores (`clipsep-rt bench` times whole hops).

The timings are kept as JSON in `user_cache_dir("hop_probe")` (io.user_cache), one file per key:
the model's files (sha256 of the ONNX graph and of the weights), the options timed, the threads,
the window shape, the CPU (name, cores) and the versions of clipsep_rt, onnxruntime, openvino and
torch. A file that cannot be read or holds another key is measured again and rewritten; deleting
the folder is always safe. A cached ranking whose pick misses the hop and that was measured while
the cores were busy (the load average is recorded) is measured again rather than trusted. Torch is
imported only to time its options (a cache miss) or to run them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from clipsep_rt import __version__
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output, file_sha256, make_output_folder
from clipsep_rt.io.user_cache import user_cache_dir
from clipsep_rt.model.hardware import usable_cores
from clipsep_rt.optional import describe_exception
from clipsep_rt.runtime.engines.choice import BackendChoice, cpu_candidates, installed_onnxruntime_packages
from clipsep_rt.runtime.engines.loader import ModelSource, open_engine
from clipsep_rt.runtime.engines.protocol import Engine
from clipsep_rt.runtime.streaming_presets import PRESETS

FORMAT = 1  # of the cache files
WARMUP_CALLS = 2  # untimed: the first call compiles the shape (OpenVINO) or fills caches
PROBE_CALLS = 30  # timed calls per option, at most
PROBE_SECONDS = 1.5  # timed calls per option stop after this long (MIN_CALLS at least)
MIN_CALLS = 3
PRUNE_FACTOR = 2.0  # from MIN_CALLS on, an option whose median is this many times the best p99 so far stops
SEED = 0
BUSY_LOAD_PER_CORE = 0.5  # a cached miss measured above this load (per usable core) is measured again

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptionTiming:
    """One CPU option's network call on a streaming window, or why it could not run."""

    label: str  # backend and precision: "openvino bf16"
    p50_ms: float | None = None
    p99_ms: float | None = None
    calls: int = 0  # timed calls
    startup_ms: float | None = None  # opening the engine and its warm-up calls
    error: str | None = None  # why it could not be opened or run here (then no figures)


@dataclass(frozen=True)
class Ranking:
    """The timed options in the order a stream should take them, against one preset's hop."""

    order: list[OptionTiming]  # the pick first
    latency: str  # the preset
    budget_ms: float  # its hop duration: each hop's network call must take less

    @property
    def real_time(self) -> bool:
        return self.order[0].p99_ms < self.budget_ms

    def summary(self) -> str:
        """'measured p99 per network call ... at balanced (a hop every 192 ms): openvino bf16 5.9 ms, ...'"""
        figures = ", ".join(f"{timing.label} {_ms(timing.p99_ms)} ms" for timing in self.order)
        return f"measured p99 per network call for streaming at {self.latency} (a hop every {self.budget_ms:.0f} ms): {figures}"

    def warning(self) -> str | None:
        """None when the pick computes a hop in time, else what to do about it."""
        if self.real_time:
            return None
        fastest = self.order[0]
        frame_ms = self.budget_ms / PRESETS[self.latency][0]
        longer = [name for name, (hop, _) in PRESETS.items() if hop * frame_ms > fastest.p99_ms]
        advice = (f"a preset with a longer hop keeps up ({', '.join(longer)})" if longer
                  else "no preset keeps up (a machine busy while measured, or too slow for this model)")
        return (f"warning: no backend here computes a hop within its {self.budget_ms:.0f} ms at {self.latency} "
                f"(fastest: {fastest.label}, p99 {_ms(fastest.p99_ms)} ms): the stream is not real time on this "
                f"machine; {advice}")


def _ms(value: float) -> str:
    """3 significant digits, whole milliseconds from 100 ms on: 5.94 -> 5.94, 1234.5 -> 1234."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def rank(timings: Sequence[OptionTiming], latency: str, budget_ms: float) -> Ranking:
    """The options that ran, those whose p99 is within `budget_ms` first (fastest first), then the
    others (fastest first): so the pick is the fastest, real time or not (`Ranking.warning`).
    ClipsepError when none ran."""
    timed = [timing for timing in timings if timing.p99_ms is not None]
    if not timed:
        raise ClipsepError("no backend could be timed here: " + "; ".join(f"{t.label}: {t.error}" for t in timings))
    meeting = sorted((t for t in timed if t.p99_ms < budget_ms), key=lambda t: t.p99_ms)
    missing = sorted((t for t in timed if t.p99_ms >= budget_ms), key=lambda t: t.p99_ms)
    return Ranking(meeting + missing, latency, budget_ms)


def pick_is_real_time(timings: Sequence[OptionTiming], latency: str, budget_ms: float) -> bool:
    """Whether the pick of `timings` computes a hop in time (False also when none ran)."""
    try:
        return rank(timings, latency, budget_ms).real_time
    except ClipsepError:
        return False


def hop_budget_ms(source: ModelSource, latency: str) -> float:
    """The preset's hop duration in ms: how long each network call may take."""
    if latency not in PRESETS:
        raise ClipsepError(f"latency preset {latency!r}: expected one of {', '.join(PRESETS)}")
    spectral = source.spectral
    return 1000 * PRESETS[latency][0] * spectral.hop_length / spectral.sample_rate


# -- timing -----------------------------------------------------------------------------------


def probe(
    source: ModelSource,
    candidates: Sequence[BackendChoice],
    threads: int | None = None,
    calls: int = PROBE_CALLS,
    seconds: float = PROBE_SECONDS,
) -> tuple[list[OptionTiming], tuple[str, Engine] | None]:
    """Time each candidate's streaming call (module docstring), one after the other in the given
    order; returns the timings and (label, engine) of the fastest, kept open so that it need not
    be opened again. One at a time: the runtimes' thread pools spin after a call, so calls of two
    runtimes in turns slowed each other (torch bf16 took 8x as long beside OpenVINO as alone)."""
    spectral = source.spectral
    rng = np.random.default_rng(SEED)
    window = (rng.standard_normal((1, 1, spectral.log_freq_bins, spectral.window_frames)) - 4).astype(np.float32)
    query = rng.standard_normal((1, source.model_config.query_dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    timings: list[OptionTiming] = []
    best: tuple[float, str, Engine] | None = None  # (p99 ms, label, engine) of the fastest so far
    for choice in candidates:
        started = time.perf_counter()
        try:
            engine = open_engine(choice, source.files, source.weights, "cpu", threads=threads)
            queries = engine.prepare_queries(query, noise_heads=False)
            for _ in range(WARMUP_CALLS):
                engine.probabilities(window, queries)
            startup_ms = 1000 * (time.perf_counter() - started)
            samples = _timed_calls(engine, window, queries, calls, seconds, PRUNE_FACTOR * best[0] if best else None)
        except (ClipsepError, RuntimeError, ImportError, OSError) as error:
            reason = str(error) if isinstance(error, ClipsepError) else describe_exception(error)
            timings.append(OptionTiming(choice.label, error=reason))
            continue
        timing = OptionTiming(choice.label, float(np.percentile(samples, 50)), float(np.percentile(samples, 99)),
                              len(samples), startup_ms)
        timings.append(timing)
        if best is None or timing.p99_ms < best[0]:
            best = (timing.p99_ms, choice.label, engine)
        del engine  # a slower one is closed now, not at the end
    return timings, (best[1], best[2]) if best else None


def _timed_calls(engine: Engine, window: np.ndarray, queries: object, calls: int, seconds: float,
                 give_up_ms: float | None) -> list[float]:
    """Up to `calls` call times in ms, within `seconds` (MIN_CALLS at least); stopped at MIN_CALLS
    when their median is over `give_up_ms` (the option cannot win)."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < calls:
        started = time.perf_counter()
        engine.probabilities(window, queries)
        now = time.perf_counter()
        samples.append(1000 * (now - started))
        if len(samples) >= MIN_CALLS and (now > deadline or (give_up_ms is not None and np.median(samples) > give_up_ms)):
            break
    return samples


# -- the cache --------------------------------------------------------------------------------


def cache_key(source: ModelSource, candidates: Sequence[BackendChoice], threads: int | None) -> dict:
    """Everything that changes the timings (module docstring), as plain JSON values."""
    spectral = source.spectral
    files = {"onnx": source.files.get("onnx")}
    weights = source.weights_file or (Path(source.name) if Path(source.name).is_file() else None)
    files["weights"] = str(weights) if weights else None
    ort = installed_onnxruntime_packages()
    return {
        "format": FORMAT,
        "model": {key: file_sha256(Path(path)) if path else None for key, path in files.items()},
        "options": [choice.label for choice in candidates],
        "threads": threads,
        "window": [1, 1, spectral.log_freq_bins, spectral.window_frames],
        "queries": 1,
        "cpu": {"name": cpu_name(), "cores": os.cpu_count(), "usable_cores": usable_cores()},
        "versions": {"clipsep_rt": __version__, "onnxruntime": _version(ort[0]) if ort else None,
                     "openvino": _version("openvino"), "torch": _version("torch")},
    }


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return user_cache_dir("hop_probe") / f"{digest}.json"


def read_cache(path: Path, key: dict) -> tuple[list[OptionTiming], dict] | None:
    """(timings, the file's record) for `key`, or None: no file, an unreadable one, another key."""
    try:
        record = json.loads(path.read_text())
        if record.get("key") != key:
            return None
        return [OptionTiming(**timing) for timing in record["timings"]], record
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # missing, corrupt or of another layout
        return None


def write_cache(path: Path, key: dict, timings: Sequence[OptionTiming], probe_s: float) -> dict:
    """Write the record atomically (a failure is logged, not raised: the next stream measures again)."""
    record = {"key": key, "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "probe_s": round(probe_s, 3), "load_1min": _load_1min(), "timings": [asdict(timing) for timing in timings]}
    try:
        make_output_folder(path.parent)
        with atomic_output(path, overwrite=True) as temp:
            temp.write_text(json.dumps(record, indent=1) + "\n")
    except ClipsepError as error:
        logger.warning("hop probe not cached: %s", error)
    return record


def _load_1min() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measured_busy(record: dict) -> bool:
    """Whether a cached measurement was taken with the cores busy with other work (a 1-minute
    load average over half the usable cores): its figures may be too slow."""
    load = record.get("load_1min")
    return isinstance(load, (int, float)) and load > BUSY_LOAD_PER_CORE * usable_cores()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the choice -------------------------------------------------------------------------------


def choose_for_stream(
    static: BackendChoice,
    source: ModelSource,
    latency: str,
    precision: str = "auto",
    threads: int | None = None,
    cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[BackendChoice, Engine | None]:
    """The CPU backend for streaming at preset `latency`: the measured fastest (from the cache, or
    timed now), with `static` (choose_backend's auto pick) kept when nothing could be timed.
    Its reasons: `static`'s, every option that cannot run here, the measured figures and, when
    the pick misses the hop, a warning. Also the pick's engine when it was just timed (else None).
    `cache`: False measures again and leaves the cache alone. `log` hears that a measurement
    starts (seconds; default `logging`)."""
    budget_ms = hop_budget_ms(source, latency)
    candidates, cannot_run = cpu_candidates(source.files, precision=precision)
    reasons = list(static.reasons) + [reason for reason in cannot_run if reason not in static.reasons]
    if not candidates:
        return static, None
    key = cache_key(source, candidates, threads)
    path = cache_path(key)
    cached = read_cache(path, key) if cache else None
    just_timed: tuple[str, Engine] | None = None  # (label, engine) of the fastest, when timed now
    if cached is not None and measured_busy(cached[1]) and not pick_is_real_time(cached[0], latency, budget_ms):
        cached = None  # a miss measured while the machine was busy is measured again, not trusted
    if cached is not None:
        timings, record = cached
        where = f"cached {record.get('measured_at', '')} in {path.parent}"
    else:
        labels = ", ".join(choice.label for choice in candidates)
        once = ", once (cached)" if cache else ""
        (log or logger.info)(f"timing the CPU backends for streaming on this machine ({labels}): a few seconds{once}")
        started = time.perf_counter()
        timings, just_timed = probe(source, candidates, threads, PROBE_CALLS, PROBE_SECONDS)
        probe_s = time.perf_counter() - started
        if cache:
            write_cache(path, key, timings, probe_s)
        where = f"measured now in {probe_s:.1f} s" + (f", cached in {path.parent}" if cache else "")
    reasons += [f"{timing.label}: cannot run here ({timing.error})" for timing in timings if timing.error]
    try:
        ranking = rank(timings, latency, budget_ms)
    except ClipsepError:
        return BackendChoice(static.name, static.device, static.precision, reasons, static.artifact, static.provider), None
    pick = next(choice for choice in candidates if choice.label == ranking.order[0].label)
    reasons.append(f"{ranking.summary()}; {pick.label} is the fastest ({where})")
    if ranking.warning():
        again = f"; to measure again, delete {path}" if cache else ""
        reasons.append(ranking.warning() + again)
    kept = just_timed[1] if just_timed is not None and just_timed[0] == pick.label else None
    return BackendChoice(pick.name, "cpu", pick.precision, reasons, pick.artifact, pick.provider), kept


__all__ = ["OptionTiming", "Ranking", "choose_for_stream", "probe", "rank"]
