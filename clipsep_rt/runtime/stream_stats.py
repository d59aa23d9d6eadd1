"""Stream statistics: what a streaming separator measures as it runs (`StreamStats`) and
the one schema every streaming report is written in (`StreamSummary`): a file streamed to
a file (`--stream --stats`), a live run (`--stats`) and each `clipsep-rt bench` row, which
add their own columns around it.

Every hop of H frames the separator runs one network step (STFT, network, masking,
iSTFT). Its compute time is that step's wall time; the real-time factor (RTF) is compute
time over the hop's audio duration: below 1, the step is done before the next one is due.

An overrun is a network step slower than real time: its compute time exceeds the hop's
audio duration (its RTF is above 1). That is the one definition, for every driver
(`StreamStats.overruns`). What a live run then loses is counted apart, as drops.

Start-up is not a step: a stream's first network call compiles the graph's input shape
(OpenVINO, TensorRT, torch.compile) or fills caches, and is made before the first step and
timed apart (`StreamStats.startup_s`, reported as `startup_ms`). The overruns and the
real-time verdict are those of the steps alone, so a short file is not judged by its compile.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from clipsep_rt.io.files import atomic_output


@dataclass
class StepTiming:
    """One network step: when it ran (stream time, s) and how long it took (wall, s)."""

    stream_time_s: float
    compute_s: float


@dataclass
class StreamStats:
    """Collected by the separator while it streams: one StepTiming per network step, each
    covering `hop_s` seconds of audio."""

    hop_s: float
    steps: list[StepTiming] = field(default_factory=list)
    startup_s: float | None = None  # the first network call (a shape's compile), made before the first step

    @property
    def overruns(self) -> int:
        """Network steps slower than real time: compute time above the hop's duration."""
        return sum(step.compute_s > self.hop_s for step in self.steps)

    def recent_rtf_p50(self, recent: int = 64) -> float:
        """The median compute time over the hop's duration of the last `recent` steps (0 before the first)."""
        steps = self.steps[-recent:]
        return float(np.median([s.compute_s for s in steps])) / self.hop_s if steps else 0.0

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile of the step compute times in ms (0 before the first step)."""
        return 1000 * float(np.percentile([s.compute_s for s in self.steps], q)) if self.steps else 0.0


class StepRecord(TypedDict):
    stream_time_s: float  # stream time (input received) when the step ran
    compute_ms: float


@dataclass(kw_only=True)
class StreamSummary:
    """The stream-statistics schema; `to_json()` is the dict written. The timing fields are
    None until `measure` fills them, and stay None where no network step ran."""

    hop_frames: int = 0
    lookahead_frames: int = 0
    latency_ms: float | None = None  # algorithmic latency: input sample -> output sample
    hop_ms: float | None = None  # audio per network step
    compute_p50_ms: float | None = None  # per-step compute time
    compute_p99_ms: float | None = None
    compute_mean_ms: float | None = None
    rtf_p50: float | None = None  # compute / hop duration
    rtf_p99: float | None = None
    rtf_mean: float | None = None
    realtime: bool | None = None  # rtf_p99 < 1 (start-up excluded)
    overruns: int = 0  # network steps slower than real time (compute > hop_ms): StreamStats.overruns
    startup_ms: float | None = None  # the first network call (compiles the graph's shape), before the first step
    steps: list[StepRecord] = field(default_factory=list)  # every network step, in stream order

    def measure(self, stats: StreamStats, *, latency_samples: int, hop_samples: int, sample_rate: int) -> StreamSummary:
        """Fill the latency and timing fields from `stats` (in place); returns self."""
        self.latency_ms = 1000 * latency_samples / sample_rate
        self.hop_ms = 1000 * hop_samples / sample_rate
        self.overruns = stats.overruns
        self.startup_ms = None if stats.startup_s is None else 1000 * stats.startup_s
        self.steps = [{"stream_time_s": s.stream_time_s, "compute_ms": 1000 * s.compute_s} for s in stats.steps]
        if self.steps:
            self.compute_p50_ms = stats.percentile_ms(50)
            self.compute_p99_ms = stats.percentile_ms(99)
            self.compute_mean_ms = 1000 * float(np.mean([s.compute_s for s in stats.steps]))
            self.rtf_p50 = self.compute_p50_ms / self.hop_ms
            self.rtf_p99 = self.compute_p99_ms / self.hop_ms
            self.rtf_mean = self.compute_mean_ms / self.hop_ms
            self.realtime = self.rtf_p99 < 1
        return self

    def to_json(self) -> dict:
        return asdict(self)


def write_stats_json(path: Path, stats: dict, overwrite: bool = True) -> None:
    """A stream's statistics (a `StreamSummary.to_json()`, with a driver's own columns) as
    JSON, written atomically."""
    with atomic_output(path, overwrite=overwrite) as temp:
        Path(temp).write_text(json.dumps(stats, indent=1) + "\n")
