"""Live audio through PortAudio (sounddevice): an input device (or a media file at real-time
pace) through the streaming separator to an output device and/or a WAV or FLAC file.

Threads
-------
The PortAudio callbacks only move audio: the input callback downmixes each block to mono and
queues it; the output callback copies from the playback buffer. The worker thread
(`LiveWorker`) resamples the input to the model rate, runs the separator on it as it comes
(at most a block at a time), resamples the chosen output row to the output device's rate
for playback and writes the model-rate output to the recording. The thread that calls
`LiveRunner.run` waits, reports status lines (`status` callback) and finishes the files.

The reported latency adds up the separator's (`latency_samples`), the playback buffer (as it
was when playback began), what the resamplers hold back (a running mean: soxr works in
blocks, so this varies) and what PortAudio reports for the devices; on a JACK loopback it
agrees with the measured delay within a device period or so.

The recordings (`recording.Recording`) are written as the run goes, to temporaries moved into
place when it ends, however it ends short of kill -9: Ctrl-C, SIGTERM or SIGHUP
(`stop_signals`), a lost device, a failure of the worker or of this thread (they keep what
was recorded up to it; the error is raised after). A recording whose disk fills up stops
there, complete (`recording_failures`, a warning line): a run that plays goes on playing, a
run that only records stops.

Stopping: input is refused from then on, the worker finishes and the recordings are completed
first, and only then are the devices stopped, within `DEVICE_STOP_TIMEOUT_S`: a sound server
that stops answering (PortAudio's stop then waits for a callback that never comes) costs the
run that long, never its recordings. `device_unresponsive` then says so; the process should
exit without PortAudio's exit handler, which would wait on the same device.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import numpy as np

from clipsep_rt.dsp.warp import MAG_EPS
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES
from clipsep_rt.runtime.engines.protocol import PreparedQueries
from clipsep_rt.runtime.live.buffers import RESAMPLE_QUALITY, PlaybackBuffer, resampling_jitter
from clipsep_rt.runtime.live.devices import find_audio_device, import_sounddevice
from clipsep_rt.runtime.live.plan import LivePlan, check_live_settings
from clipsep_rt.runtime.live.recording import Recording, close_all
from clipsep_rt.runtime.live.status import (
    LiveSnapshot,
    PlaybackCounts,
    Warnings,
    live_summary,
    status_line,
    summary_line,
)
from clipsep_rt.runtime.live.stop_signals import StopSignals
from clipsep_rt.runtime.live.streams import DEVICE_STOP_TIMEOUT_S, DeviceStreams
from clipsep_rt.runtime.live.worker import LiveWorker
from clipsep_rt.runtime.stream_stats import write_stats_json
from clipsep_rt.runtime.streaming import StreamingSeparator


class LiveRunner:
    """Real-time separation from an input device (or a file played at real-time pace) to an
    output device and/or a recording. See the module docstring for the threads, and the
    `worker` module's for the real-time rules.

    separator: a fresh StreamingSeparator. input_device / output_device: id, part of a name
    or None (the default device); both are opened at their native rate. output_file: .wav
    (float) or .flac at the model rate, aligned with the input, one channel per query at the
    start (kept through query switches: see `worker`; `overwrite` to replace an existing
    file). play: send the output `row` (the first query) to `output_device`.
    block_ms: the most input the worker hands the separator at once (device blocks are the
    host's). status: called with one line every `status_interval_s` and for warnings, from
    the thread that calls `run`. query_names: shown in the status line (updated by
    `switch_queries`).

    buffer_ms: the playback jitter buffer (at most `plan.MAX_BUFFER_MS`); default: twice a
    measured network step plus a block (at most a hop plus two blocks), plus the resamplers'
    burstiness (`resampling_jitter`, about 19 ms at 48 kHz). buffer_setting: how the caller's
    user sets it, for the warning that advises a larger one. input_channels: channels opened and
    averaged (default: up to 2). device_latency: PortAudio's latency setting ("low",
    "high" or seconds). resample_quality: soxr's. source_file: instead of an input device, a
    media file fed at real-time pace. record_input: also record the 16 kHz mono input the
    separator was given (silence where input was dropped).
    """

    def __init__(
        self,
        separator: StreamingSeparator,
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        output_file: Path | None = None,
        play: bool = True,
        row: int = 0,
        block_ms: float = 16,
        status: Callable[[str], None] | None = None,
        *,
        source_file: Path | None = None,
        record_input: Path | None = None,
        overwrite: bool = False,
        buffer_ms: float | None = None,
        input_channels: int | None = None,
        device_latency: str | float = "low",
        resample_quality: str = RESAMPLE_QUALITY,
        query_names: list[str] | tuple[str, ...] = (),
        status_interval_s: float = 0.5,
        buffer_setting: str = "buffer_ms",
    ):
        if not play and output_file is None:
            raise ClipsepError("live separation needs somewhere to go: play it (speakers) and/or record it to a file")
        check_live_settings(block_ms, buffer_ms)
        for path in (output_file, record_input):
            if path is not None and Path(path).suffix.lower() not in AUDIO_OUTPUT_SUBTYPES:
                raise ClipsepError(f"{path}: live recordings are .wav or .flac files")
        self.separator = separator
        self.rate = separator.spectral.sample_rate
        self.output_file = Path(output_file) if output_file is not None else None
        self.record_input_file = Path(record_input) if record_input is not None else None
        self.source_file = Path(source_file) if source_file is not None else None
        self.status = status
        self.overwrite = overwrite
        self.query_names = list(query_names)
        self.status_interval_s = status_interval_s
        self.device_latency = device_latency
        self.buffer_setting = buffer_setting
        self._sd = import_sounddevice() if (play or self.source_file is None) else None
        self.plan = self._make_plan(input_device, output_device, input_channels, play, block_ms, buffer_ms,
                                    resample_quality)
        plan = self.plan
        playback = PlaybackBuffer(plan.playback_target, high_water=plan.playback_high_water) if play else None
        self.worker = LiveWorker(
            separator, plan.block, row=row, input_rate=plan.input_rate, output_rate=plan.output_rate,
            playback=playback, max_backlog=plan.max_backlog, resample_quality=resample_quality,
        )
        self.device_input_latency_s = 0.0
        self.device_output_latency_s = 0.0
        self.input_overflows = 0  # reported by the device: audio lost before it reached us
        self.output_underflows = 0  # reported by the device
        self.interrupted = False
        self.stop_reason = ""
        self.written = False  # the recordings were completed and moved into place
        self.recordings: list[Recording] = []
        self.device_unresponsive = False  # the devices did not stop within DEVICE_STOP_TIMEOUT_S
        self._init_threads()

    def _make_plan(self, input_device, output_device, input_channels: int | None, play: bool, block_ms: float,
                   buffer_ms: float | None, resample_quality: str) -> LivePlan:
        """Find the devices (sets `input_device` / `output_device`: (id, name, native rate) or
        None), time a network step (`measure_step`) and size the run (`LivePlan`)."""
        self.input_device: tuple[int, str, int] | None = None
        input_rate, channels = self.rate, 1
        if self.source_file is None:
            self.input_device = find_audio_device(input_device, "input")
            input_rate = self.input_device[2]
            max_channels = self._sd.query_devices(self.input_device[0])["max_input_channels"]
            channels = min(max_channels, input_channels or 2)
        self.output_device = find_audio_device(output_device, "output") if play else None
        output_rate, output_channels = self.rate, 0
        if self.output_device:
            output_rate = self.output_device[2]
            output_channels = min(2, self._sd.query_devices(self.output_device[0])["max_output_channels"])
        step_estimate_s = measure_step(self.separator)
        return LivePlan.make(
            rate=self.rate, hop_samples=self.separator.hop_samples, block_ms=block_ms, step_estimate_s=step_estimate_s,
            resampling_jitter_s=resampling_jitter(input_rate, self.rate, output_rate, resample_quality),
            input_rate=input_rate, input_channels=channels, output_rate=output_rate, output_channels=output_channels,
            play=play, buffer_ms=buffer_ms,
        )

    def _init_threads(self) -> None:
        """The state the threads share: input accepted so far, stop events, streams, files, notes."""
        self._done_reason = "duration reached"
        self._input_frames = 0
        self._limit_frames: int | None = None
        self._input_done = threading.Event()
        self._accept_lock = threading.Lock()  # input is accepted, or refused for good (stopping)
        self._worker_stop = threading.Event()
        self._feeder_stop = threading.Event()
        self._streams = DeviceStreams(self._sd, self.device_latency)
        self._threads: list[threading.Thread] = []
        self._notes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._started_at: float | None = None
        self._closed = False
        self._warnings = Warnings(self.buffer_setting)
        self._warned_counts = (0, 0, 0, 0)
        self._failures_reported = 0

    # -- public ------------------------------------------------------------------------------

    @property
    def latency(self) -> dict[str, float]:
        """Input-to-speaker latency parts, in ms (device parts are known once the streams are open)."""
        parts = {
            "algorithmic_ms": self.separator.latency_ms,
            "buffer_ms": self._buffer_ms(),
            "resampling_ms": 1000 * self.worker.resampling_delay_s,
            "device_input_ms": 1000 * self.device_input_latency_s,
            "device_output_ms": 1000 * self.device_output_latency_s,
        }
        parts["total_ms"] = sum(parts.values())
        return parts

    def _buffer_ms(self) -> float:
        """The playback buffer: what was waiting when playback began (the target, plus up to a
        device block), less what has been trimmed since; the target before that."""
        playback = self.worker.playback
        if playback is None:
            return 0.0
        if playback.primed_level is None:
            return 1000 * self.plan.buffer_s
        return 1000 * (playback.primed_level - playback.trimmed_samples) / self.plan.output_rate

    def switch_queries(self, prepared: PreparedQueries, names: list[str] | tuple[str, ...]) -> None:
        """Thread-safe: the worker switches (with the separator's crossfade) between two blocks.
        The number of queries may change (see `worker` for what plays and what is recorded)."""
        names = list(names)
        routing = self._routing(names)

        def switched() -> None:
            self.query_names = names
            self._notes.put(f"queries now: {', '.join(names) or '(unnamed)'}{routing}")

        self.worker.switch_queries(prepared, then=switched, names=names)

    def _routing(self, names: list[str]) -> str:
        """Where `names` go, when that is not one query to each output: empty, or a note."""
        worker, parts = self.worker, []
        if worker.playback is not None and len(names) > 1:
            parts.append(f"speakers play {names[worker.row]}")
        if self.output_file is not None and len(names) != worker.record_channels:
            channels = worker.record_channels
            if len(names) > channels:
                parts.append(f"not recorded: {', '.join(names[channels:])} (the recording keeps its {channels} channel(s))")
            else:
                parts.append(f"recording channels {len(names) + 1}-{channels} now silent")
        return f" ({'; '.join(parts)})" if parts else ""

    @property
    def recording_failures(self) -> list[str]:
        """Why recordings stopped before the run did (the disk full...), one line each."""
        return [recording.failure for recording in self.recordings if recording.failure]

    def start(self) -> None:
        """Open the files and the streams and start the worker (run() calls this if needed)."""
        if self._started_at is not None:
            return
        try:
            self.worker.record = self._open_recording(self.output_file, self.worker.record_channels)
            self.worker.record_input = self._open_recording(self.record_input_file, 1)
            worker = threading.Thread(target=self.worker.serve, args=(self._worker_stop,), name="clipsep-live-worker",
                                      daemon=True)
            worker.start()
            self._threads.append(worker)
            self._open_streams()
        except BaseException:
            self._close(failed=sys.exc_info()[1])
            raise
        self._started_at = time.monotonic()

    def run(self, duration_s: float | None = None, stop_event: threading.Event | None = None) -> None:
        """Start (if needed) and run until `duration_s` of input since the start, the end of the
        source file, `stop_event`, Ctrl-C or SIGTERM (`interrupted` is set, `stop_reason` says
        which; the files are completed, also when the signal comes again meanwhile: see
        `stop_signals`) or a worker error (raised here); then stop and finish the files."""
        if duration_s is not None:
            if not duration_s > 0:
                raise OptionError("duration_s", f"must be positive, got {duration_s}")
            self._limit_frames = round(duration_s * self.plan.input_rate)
            if self._input_frames >= self._limit_frames:
                self._input_done.set()
        with StopSignals().caught() as signals:
            self._run_until_stopped(stop_event, signals)
            self._close()
        self._emit_notes()
        self._report(summary_line(self.snapshot()))

    def _run_until_stopped(self, stop_event: threading.Event | None, signals: StopSignals) -> None:
        """Start, then report status until a reason to stop (not closing, unless it fails)."""
        try:
            self.start()
            next_status = time.monotonic() + self.status_interval_s
            while True:
                if signals.event.wait(timeout=0.05):
                    self.interrupted = True
                    self.stop_reason = signals.reason
                    break
                if self._input_done.is_set():
                    self.stop_reason = self._done_reason
                    break
                if stop_event is not None and stop_event.is_set():
                    self.stop_reason = "stopped"
                    break
                if self.worker.error is not None:
                    break
                if not self._streams.active:
                    self.stop_reason = "the input stream stopped (device lost?)"
                    break
                if self.worker.playback is None and all(recording.failure for recording in self.recordings):
                    self.stop_reason = "the recording stopped"  # nothing is played: nothing left to do
                    break
                self._emit_notes()
                if time.monotonic() >= next_status:
                    self._report(status_line(self.snapshot()))
                    next_status += self.status_interval_s
        except KeyboardInterrupt:  # off the main thread's signal handling (see stop_signals)
            self.interrupted = True
            self.stop_reason = "interrupted"
        except BaseException as exc:
            self._close(failed=exc)
            raise

    def snapshot(self) -> LiveSnapshot:
        """The run's numbers now, for the status line, the warnings and the statistics."""
        worker, stats, plan, playback = self.worker, self.separator.stats, self.plan, self.worker.playback
        return LiveSnapshot(
            rate=self.rate, consumed=worker.consumed, latency=self.latency, query_names=tuple(self.query_names),
            rtf_recent_p50=stats.recent_rtf_p50(), step_p50_ms=stats.percentile_ms(50),
            step_p99_ms=stats.percentile_ms(99), overruns=stats.overruns, drops=worker.drops,
            dropped_samples=worker.dropped_samples,
            playback=None if playback is None else PlaybackCounts(
                playback.underflows, playback.underflow_samples, playback.late_samples, playback.trimmed_samples),
            input_overflows=self.input_overflows, output_underflows=self.output_underflows,
            stop_reason=self.stop_reason, interrupted=self.interrupted,
            written_file=self.worker.record.path if self.written and self.worker.record is not None else None,
            recording_failures=tuple(self.recording_failures),
            input_device=self.input_device[1] if self.input_device else str(self.source_file),
            input_rate=plan.input_rate, input_channels=plan.input_channels,
            output_device=self.output_device[1] if self.output_device else None, output_rate=plan.output_rate,
            block_ms=plan.block_ms, step_estimate_s=plan.step_estimate_s, worker_compute_s=worker.compute_s,
            worker_recent_rtf=worker.recent_rtf(), max_backlog_seen=worker.max_backlog_seen,
            max_backlog=worker.max_backlog,
        )

    def summary(self) -> dict:
        """Everything `write_stats` writes (`status.live_summary`)."""
        return {**live_summary(self.snapshot(), self.separator.summary()), "presence": self.separator.presence_json()}

    def write_stats(self, path: Path, overwrite: bool = True) -> None:
        """The run's timings, latency and overruns as JSON (atomically)."""
        write_stats_json(path, self.summary(), overwrite=overwrite)

    # -- streams -----------------------------------------------------------------------------

    def _open_recording(self, path: Path | None, channels: int) -> Recording | None:
        if path is None:
            return None
        recording = Recording(path, self.rate, channels, overwrite=self.overwrite,
                              tail_samples=self.separator.latency_samples)
        self.recordings.append(recording)
        return recording

    def _open_streams(self) -> None:
        if self.output_device is not None:
            stream = self._streams.open("output", self.output_device, self.plan.output_channels, self._output_callback)
            self.device_output_latency_s = float(stream.latency)
        if self.input_device is not None:
            stream = self._streams.open("input", self.input_device, self.plan.input_channels, self._input_callback)
            self.device_input_latency_s = float(stream.latency)
        self._streams.start()
        if self.source_file is not None:
            feeder = threading.Thread(target=self._feed_file, name="clipsep-live-source", daemon=True)
            feeder.start()
            self._threads.insert(0, feeder)

    def _input_callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.input_overflows += 1
        if self._input_done.is_set():  # stopping (checked again, under the lock, by _accept)
            return
        mono = indata.mean(axis=1, dtype=np.float32) if indata.shape[1] > 1 else indata[:, 0].copy()
        self._accept(mono)

    def _accept(self, mono: np.ndarray) -> None:
        """Queue input up to the duration limit (input callback or file feeder); none once
        the run is stopping."""
        with self._accept_lock:
            if self._input_done.is_set():
                return
            if self._limit_frames is not None:
                room = self._limit_frames - self._input_frames
                if room <= len(mono):
                    mono = mono[: max(0, room)]
                    self._done_reason = "duration reached"
                    self._input_done.set()
            self._input_frames += len(mono)
            if len(mono):
                self.worker.put(mono)

    def _output_callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.output_underflows += 1
        outdata[:] = self.worker.playback.pull(frames)[:, None]

    def _feed_file(self) -> None:
        """A media file at real-time pace in place of an input device."""
        from clipsep_rt.io.media import iter_audio_blocks

        started = time.monotonic()
        position = 0
        try:
            for block in iter_audio_blocks(self.source_file, self.plan.block, self.rate, min_samples=1):
                if self._feeder_stop.is_set() or self._input_done.is_set():
                    return
                ahead = position / self.rate - (time.monotonic() - started)
                if ahead > 0 and self._feeder_stop.wait(ahead):
                    return
                self._accept(block)
                position += len(block)
        except BaseException as exc:  # noqa: BLE001 - surfaced as the worker's error
            self.worker.error = exc
        if not self._input_done.is_set():
            self._done_reason = "end of the source file"
            self._input_done.set()

    # -- stopping ----------------------------------------------------------------------------

    def _close(self, failed: BaseException | None = None) -> None:
        """Refuse further input, let the worker finish, complete the recordings, then stop the
        devices (bounded: see the module docstring). Raises the worker's error, if it had one."""
        if self._closed:
            return
        self._closed = True
        with self._accept_lock:  # after this no callback queues input: the worker sees all there is
            self._input_done.set()
        self._feeder_stop.set()
        self._worker_stop.set()
        for thread in self._threads:
            thread.join()
        try:
            self._finish_files(failed)
        finally:
            self._stop_devices()

    def _finish_files(self, failed: BaseException | None) -> None:
        """Complete the recordings: with the separator's tail after a clean stop; after a
        failure, as they are (a recording that holds nothing yet is removed). Raises the
        worker's error, if it had one, or the first a recording's completion raised."""
        error = failed or self.worker.error
        if error is None:
            try:
                self.worker.finish()
            except BaseException as exc:
                error = exc
        kept, close_error = close_all(self.recordings, clean=error is None)
        self.written, error = bool(kept), error or close_error
        if error is not None and kept:
            self._report("kept what was recorded before the failure: " + ", ".join(f"{r.path} ({r.seconds:.1f} s)" for r in kept))
        if failed is None and error is not None:
            raise error

    def _stop_devices(self) -> None:
        """Stop and close the streams, waiting at most DEVICE_STOP_TIMEOUT_S."""
        if not self._streams.stop(DEVICE_STOP_TIMEOUT_S):
            self.device_unresponsive = True
            self._notes.put(f"warning: the audio device did not stop within {DEVICE_STOP_TIMEOUT_S:.0f} s "
                            "(its sound server stopped answering?); the recordings are complete")

    def _emit_notes(self) -> None:
        while True:
            try:
                self._report(self._notes.get_nowait())
            except queue.Empty:
                break
        failures = self.recording_failures
        for failure in failures[self._failures_reported :]:
            self._report(f"warning: {failure}" + ("; the audio goes on playing" if self.worker.playback else ""))
        self._failures_reported = len(failures)
        playback = self.worker.playback
        counts = (self.worker.drops, playback.underflows if playback is not None else 0, self.input_overflows,
                  self.output_underflows)
        if counts != self._warned_counts:  # a snapshot only then: its step statistics cost time on long runs
            self._warned_counts = counts
            for line in self._warnings.new(self.snapshot()):
                self._report(line)

    def _report(self, line: str) -> None:
        with suppress(OSError):  # the terminal hung up (EIO): the run and its files go on without status lines
            if self.status is not None:
                self.status(line)


def measure_step(separator: StreamingSeparator, repeats: int = 5) -> float:
    """Time one network call on a silent window, after the stream's warm-up call (it builds
    CUDA graphs or compiles the shape; timed as start-up, `StreamingSeparator.warm_up`): the
    second slowest of `repeats` calls, in seconds."""
    separator.warm_up()
    spectral, engine = separator.spectral, separator.engine
    window = np.full((1, 1, spectral.log_freq_bins, spectral.window_frames), np.log(MAG_EPS), np.float32)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.probabilities(window, separator.queries)  # returns when the masks are in host memory
        times.append(time.perf_counter() - started)
    return sorted(times)[-2] if repeats > 1 else times[-1]
