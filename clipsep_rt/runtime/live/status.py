"""What a live run reports: the status line, the warnings, the closing summary line and the
statistics (`StreamSummary` with the live run's own columns around it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from clipsep_rt.runtime.stream_stats import StreamSummary

if TYPE_CHECKING:
    from clipsep_rt.runtime.live.runner import LiveRunner
    from clipsep_rt.runtime.streaming import StreamingSeparator


def recent_rtf_p50(separator: StreamingSeparator, recent: int = 64) -> float:
    """Median network step time over the hop it covers, for the last `recent` steps."""
    steps = separator.stats.steps[-recent:]
    if not steps:
        return 0.0
    hop_s = separator.hop_samples / separator.spectral.sample_rate
    return float(np.median([s.compute_s for s in steps])) / hop_s


def status_line(runner: LiveRunner) -> str:
    """One line: elapsed input, latency and its parts, load, overruns, drops, underflows, queries."""
    latency, worker = runner.latency, runner.worker
    names = ", ".join(runner.query_names) or "(unnamed)"
    parts = (f"model {latency['algorithmic_ms']:.0f} + buffer {latency['buffer_ms']:.0f} + resampling "
             f"{latency['resampling_ms']:.0f} + device {latency['device_input_ms'] + latency['device_output_ms']:.0f}")
    line = (f"live {worker.consumed / runner.rate:6.1f} s | latency {latency['total_ms']:.0f} ms ({parts}) | RTF "
            f"{recent_rtf_p50(runner.separator):.2f} | overruns {runner.separator.stats.overruns} | drops {worker.drops}")
    if worker.playback is not None:
        line += f" | underflows {worker.playback.underflows}"
    return line + f" | query: {names}"


def summary_line(runner: LiveRunner) -> str:
    """The closing line: why and when it stopped, step times, overruns, drops, the file written."""
    stats, worker = runner.separator.stats, runner.worker
    text = (
        f"live: stopped ({runner.stop_reason or 'done'}) after {worker.consumed / runner.rate:.1f} s;"
        f" step p50 {stats.percentile_ms(50):.1f} ms, p99 {stats.percentile_ms(99):.1f} ms, "
        f"RTF p50 {recent_rtf_p50(runner.separator):.2f};"
        f" {stats.overruns} overruns, {worker.drops} drops ({1000 * worker.dropped_samples / runner.rate:.0f} ms dropped)"
    )
    if worker.playback is not None:
        text += f", {worker.playback.underflows} playback underflows"
    if runner.written and runner.output_file is not None:
        text += f"; wrote {runner.output_file}"
    return text


class Warnings:
    """Warning lines for what went wrong since the last call: drops, playback and device
    underflows, device overflows."""

    def __init__(self):
        self._seen = {"drops": 0, "dropped": 0, "underflows": 0, "input_overflows": 0, "output_underflows": 0}

    def new(self, runner: LiveRunner) -> list[str]:
        worker, seen, lines = runner.worker, self._seen, []
        stats = runner.separator.stats
        if worker.drops > seen["drops"]:
            dropped = worker.dropped_samples - seen["dropped"]
            lines.append(
                f"warning: falling behind real time (step p50 {stats.percentile_ms(50):.1f} ms, "
                f"RTF {recent_rtf_p50(runner.separator):.2f}, {stats.overruns} overruns): dropped "
                f"{1000 * dropped / runner.rate:.0f} ms of input in {worker.drops - seen['drops']} drop(s), {worker.drops} in all"
            )
            seen["drops"], seen["dropped"] = worker.drops, worker.dropped_samples
        if worker.playback is not None and worker.playback.underflows > seen["underflows"]:
            lines.append(
                f"warning: playback ran dry {worker.playback.underflows - seen['underflows']} time(s), "
                f"{worker.playback.underflows} in all (silence played; a larger buffer_ms avoids it)"
            )
            seen["underflows"] = worker.playback.underflows
        for key, what in (("input_overflows", "the input device lost audio (overflow)"),
                          ("output_underflows", "the output device ran dry (underflow)")):
            count = getattr(runner, key)
            if count > seen[key]:
                lines.append(f"warning: {what} {count - seen[key]} time(s), {count} in all")
                seen[key] = count
        return lines


def live_summary(runner: LiveRunner) -> dict:
    """The run's statistics: the `StreamSummary` fields (latency_ms: the algorithmic latency)
    and the live run's own: devices, end-to-end latency parts, worker load, drops, underflows."""
    worker, rate = runner.worker, runner.rate
    audio_s = worker.consumed / rate
    playback = worker.playback
    return {
        **StreamSummary.of(runner.separator).to_json(),
        "duration_s": audio_s,
        "input_samples": worker.consumed,
        "sample_rate": rate,
        "input": {"device": runner.input_device[1] if runner.input_device else str(runner.source_file),
                  "rate": runner.input_rate, "channels": runner.input_channels},
        "output": ({"device": runner.output_device[1], "rate": runner.output_rate} if runner.output_device else None),
        "block_ms": runner.block_ms,
        "end_to_end_latency_ms": runner.latency,
        "step_estimate_ms": 1000 * runner.step_estimate_s,
        "worker_load": {  # time in the separator over the audio it handled (processed + dropped): all blocks, recent
            "mean": worker.compute_s / audio_s if audio_s else 0.0,
            "recent": worker.recent_rtf(),
        },
        "drops": worker.drops,  # times input was dropped because the worker fell behind
        "dropped_ms": 1000 * worker.dropped_samples / rate,
        "max_backlog_ms": 1000 * worker.max_backlog_seen / rate,
        "backlog_limit_ms": 1000 * worker.max_backlog / rate,
        "playback": None if playback is None else {
            "underflows": playback.underflows,
            "underflow_ms": 1000 * playback.underflow_samples / runner.output_rate,
            "late_ms": 1000 * playback.late_samples / runner.output_rate,
            "trimmed_ms": 1000 * playback.trimmed_samples / runner.output_rate,
        },
        "device_input_overflows": runner.input_overflows,
        "device_output_underflows": runner.output_underflows,
        "interrupted": runner.interrupted,
        "queries": runner.query_names,
    }
