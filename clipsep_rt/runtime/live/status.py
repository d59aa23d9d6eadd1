"""What a live run reports: the status line, the warnings, the closing summary line and the
statistics (`StreamSummary` with the live run's own columns around it), all formatted from a
`LiveSnapshot`: the numbers the runner hands over (`LiveRunner.snapshot`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clipsep_rt.runtime.live.plan import MAX_BUFFER_MS

if TYPE_CHECKING:
    from clipsep_rt.runtime.stream_stats import StreamSummary


@dataclass(frozen=True)
class PlaybackCounts:
    """The playback buffer's troubles so far, in output-rate samples."""

    underflows: int = 0
    underflow_samples: int = 0
    late_samples: int = 0
    trimmed_samples: int = 0


@dataclass(frozen=True)
class LiveSnapshot:
    """A live run's numbers at one moment. Sample counts are at the model `rate`, except the
    playback's (`output_rate`); latency: the parts in ms (`LiveRunner.latency`)."""

    rate: int
    consumed: int = 0  # model-rate input handled: processed + dropped
    latency: dict[str, float] = field(default_factory=dict)
    query_names: tuple[str, ...] = ()
    rtf_recent_p50: float = 0.0  # the last steps' median compute time over the hop
    step_p50_ms: float = 0.0
    step_p99_ms: float = 0.0
    overruns: int = 0  # network steps slower than real time
    drops: int = 0  # times input was dropped because the worker fell behind
    dropped_samples: int = 0
    playback: PlaybackCounts | None = None  # None: not playing
    input_overflows: int = 0  # reported by the devices
    output_underflows: int = 0
    stop_reason: str = ""
    interrupted: bool = False
    written_file: Path | None = None  # the recording, once completed
    recording_failures: tuple[str, ...] = ()  # why recordings stopped early (the disk full), one line each
    # for the statistics only
    input_device: str = ""  # the device's name, or the source file
    input_rate: int = 0
    input_channels: int = 0
    output_device: str | None = None  # None: not playing
    output_rate: int = 0
    block_ms: float = 0.0
    step_estimate_s: float = 0.0
    worker_compute_s: float = 0.0  # time in the separator
    worker_recent_rtf: float = 0.0
    max_backlog_seen: int = 0
    max_backlog: int = 0

    @property
    def seconds(self) -> float:
        """Input handled, in seconds."""
        return self.consumed / self.rate


def status_line(snap: LiveSnapshot) -> str:
    """One line: elapsed input, latency and its parts, load, overruns, drops, underflows, queries."""
    latency = snap.latency
    names = ", ".join(snap.query_names) or "(unnamed)"
    parts = (f"model {latency['algorithmic_ms']:.0f} + buffer {latency['buffer_ms']:.0f} + resampling "
             f"{latency['resampling_ms']:.0f} + device {latency['device_input_ms'] + latency['device_output_ms']:.0f}")
    line = (f"live {snap.seconds:6.1f} s | latency {latency['total_ms']:.0f} ms ({parts}) | RTF "
            f"{snap.rtf_recent_p50:.2f} | overruns {snap.overruns} | drops {snap.drops}")
    if snap.playback is not None:
        line += f" | underflows {snap.playback.underflows}"
    return line + f" | query: {names}"


def summary_line(snap: LiveSnapshot) -> str:
    """The closing line: why and when it stopped, step times, overruns, drops, the file written."""
    text = (
        f"live: stopped ({snap.stop_reason or 'done'}) after {snap.seconds:.1f} s;"
        f" step p50 {snap.step_p50_ms:.1f} ms, p99 {snap.step_p99_ms:.1f} ms, "
        f"RTF p50 {snap.rtf_recent_p50:.2f};"
        f" {snap.overruns} overruns, {snap.drops} drops ({1000 * snap.dropped_samples / snap.rate:.0f} ms dropped)"
    )
    if snap.playback is not None:
        text += f", {snap.playback.underflows} playback underflows"
    if snap.written_file is not None:
        text += f"; wrote {snap.written_file}"
    if snap.recording_failures:
        text += " (incomplete: the recording stopped early, see above)"
    return text


class Warnings:
    """Warning lines for what went wrong since the last call: drops, playback and device
    underflows, device overflows. `buffer_setting`: how the user sizes the playback buffer
    (the CLI's --buffer-ms), named in the advice after an underflow."""

    def __init__(self, buffer_setting: str = "buffer_ms"):
        self.buffer_setting = buffer_setting
        self._seen = {"drops": 0, "dropped": 0, "underflows": 0, "input_overflows": 0, "output_underflows": 0}

    def new(self, snap: LiveSnapshot) -> list[str]:
        seen, lines = self._seen, []
        if snap.drops > seen["drops"]:
            dropped = snap.dropped_samples - seen["dropped"]
            lines.append(
                f"warning: falling behind real time (step p50 {snap.step_p50_ms:.1f} ms, "
                f"RTF {snap.rtf_recent_p50:.2f}, {snap.overruns} overruns): dropped "
                f"{1000 * dropped / snap.rate:.0f} ms of input in {snap.drops - seen['drops']} drop(s), {snap.drops} in all"
            )
            seen["drops"], seen["dropped"] = snap.drops, snap.dropped_samples
        playback = snap.playback
        if playback is not None and playback.underflows > seen["underflows"]:
            buffer_ms = snap.latency.get("buffer_ms", 0.0)
            larger = min(MAX_BUFFER_MS, max(2 * buffer_ms, buffer_ms + 20))
            advice = (f"a larger {self.buffer_setting} (say {larger:.0f}) avoids it, at that much more latency"
                      if larger > buffer_ms else
                      f"{self.buffer_setting} is at its largest: the machine cannot keep up (try a faster "
                      "backend or a preset with longer hops)")
            lines.append(
                f"warning: playback ran dry {playback.underflows - seen['underflows']} time(s), "
                f"{playback.underflows} in all (silence played): the playback buffer holds {buffer_ms:.0f} ms; {advice}"
            )
            seen["underflows"] = playback.underflows
        for key, what in (("input_overflows", "the input device lost audio (overflow)"),
                          ("output_underflows", "the output device ran dry (underflow)")):
            count = getattr(snap, key)
            if count > seen[key]:
                lines.append(f"warning: {what} {count - seen[key]} time(s), {count} in all")
                seen[key] = count
        return lines


def live_summary(snap: LiveSnapshot, stream: StreamSummary) -> dict:
    """The run's statistics: the `StreamSummary` fields (latency_ms: the algorithmic latency)
    and the live run's own: devices, end-to-end latency parts, worker load, drops, underflows."""
    rate, audio_s, playback = snap.rate, snap.seconds, snap.playback
    return {
        **stream.to_json(),
        "duration_s": audio_s,
        "input_samples": snap.consumed,
        "sample_rate": rate,
        "input": {"device": snap.input_device, "rate": snap.input_rate, "channels": snap.input_channels},
        "output": None if snap.output_device is None else {"device": snap.output_device, "rate": snap.output_rate},
        "block_ms": snap.block_ms,
        "end_to_end_latency_ms": dict(snap.latency),
        "step_estimate_ms": 1000 * snap.step_estimate_s,
        "worker_load": {  # time in the separator over the audio it handled (processed + dropped): all blocks, recent
            "mean": snap.worker_compute_s / audio_s if audio_s else 0.0,
            "recent": snap.worker_recent_rtf,
        },
        "drops": snap.drops,  # times input was dropped because the worker fell behind
        "dropped_ms": 1000 * snap.dropped_samples / rate,
        "max_backlog_ms": 1000 * snap.max_backlog_seen / rate,
        "backlog_limit_ms": 1000 * snap.max_backlog / rate,
        "playback": None if playback is None else {
            "underflows": playback.underflows,
            "underflow_ms": 1000 * playback.underflow_samples / snap.output_rate,
            "late_ms": 1000 * playback.late_samples / snap.output_rate,
            "trimmed_ms": 1000 * playback.trimmed_samples / snap.output_rate,
        },
        "device_input_overflows": snap.input_overflows,
        "device_output_underflows": snap.output_underflows,
        "interrupted": snap.interrupted,
        "recording_failures": list(snap.recording_failures),  # the recording stopped early (the disk full)
        "queries": list(snap.query_names),
    }
