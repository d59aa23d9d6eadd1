"""Live audio through PortAudio (sounddevice): an input device through the streaming
separator to an output device and/or a WAV file, in real time.

Threads
-------
The PortAudio callbacks only move audio: the input callback downmixes each block to mono and
queues it; the output callback copies from the playback buffer. One worker thread resamples
the input to the model rate (`soxr.ResampleStream`), runs `StreamingSeparator.process` on it
as it comes (at most a block at a time), resamples the chosen output row to the output device's rate (another
`ResampleStream`) for playback and writes the 16 kHz output to the recording. The thread that
calls `LiveRunner.run` waits, prints status lines and finishes the files.

Fixed latency, never silently late
----------------------------------
Every input sample becomes exactly one output sample, so the latency stays what it was at
the start:

* The worker falls behind (more input waiting than the playback buffer plus two blocks): it
  drops the oldest waiting input (the separator never sees it), plays and records silence in
  its place, counts an overrun in `separator.stats.overruns` and the status line warns. The
  separator's own timeline skips the gap, so the `latency` of audio just before a gap comes
  out just after it; from there on everything is in place again.
* The playback buffer runs dry: silence is played and counted as an underflow; the late
  samples are thrown away when they arrive, so the latency does not grow.
* The playback buffer grows past its target plus a margin (input and output devices on
  different clocks): the oldest samples are dropped ("trimmed").

The reported latency adds up the separator's (`latency_samples`), the playback buffer (as it
was when playback began), what the resamplers hold back (a running mean: soxr works in
blocks, so this varies) and what PortAudio reports for the devices; on a JACK loopback it
agrees with the measured delay within a device period or so.

The recorded file is aligned with the input, like `--stream` files: the separator's latency
is removed and it holds as many 16 kHz samples as the input gave (silence where input was
dropped). It is written incrementally to a temporary file that is moved into place when
the run ends, also after Ctrl-C.

`LiveWorker` and `PlaybackBuffer` hold all of this and need no audio device (tests drive
them directly); `LiveRunner` adds the PortAudio streams.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import numpy as np
import soundfile as sf
import torch

from ..errors import ClipsepError
from ..fileio import atomic_output
from ..spectral import MAG_EPS
from .audio_devices import import_sounddevice, resolve_device
from .engine import PreparedQueries
from .live_buffers import PlaybackBuffer, _StreamResampler
from .streaming import StreamingSeparator

RESAMPLE_QUALITY = "LQ"  # soxr: 5 ms delay each way and steady output; HQ adds about 19 ms each way
_RECORD_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24"}


class LiveWorker:
    """Input blocks (any size, at `input_rate`) -> separator -> playback buffer and recordings.

    `put` is called by the input callback (it only queues); `serve` is the worker thread's
    loop; `pump` handles whatever input is waiting (tests call it directly); `finish`, after
    the input has stopped and the thread has ended, processes the rest and completes the
    recording. `record` / `record_input` are objects with `write(samples)` (a SoundFile).
    """

    def __init__(
        self,
        separator: StreamingSeparator,
        block: int,
        *,
        row: int = 0,
        input_rate: int | None = None,
        output_rate: int | None = None,
        playback: PlaybackBuffer | None = None,
        max_backlog: int | None = None,
        record=None,
        record_input=None,
        resample_quality: str = RESAMPLE_QUALITY,
    ):
        self.separator = separator
        self.rate = separator.spectral.sample_rate
        if block < 1:
            raise ClipsepError(f"the live block size must be at least one sample, got {block}")
        if not 0 <= row < separator.queries.rows:
            rows = separator.queries.rows
            raise ClipsepError(f"output row {row}: the separator has {rows} rows (0..{rows - 1})")
        self.block = int(block)
        self.row = row
        self.input_rate = input_rate or self.rate
        self.output_rate = output_rate or self.rate
        self.inbox: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._in_resampler = self._resampler(self.input_rate, self.rate, resample_quality)
        self._out_resampler = self._resampler(self.rate, self.output_rate, resample_quality) if playback is not None else None
        self.playback = playback
        hop = separator.options.hop_frames * separator.spectral.hop_length
        self.max_backlog = max(2 * self.block, int(max_backlog) if max_backlog is not None else hop + 2 * self.block)
        self.record = record
        self.record_input = record_input
        self._record_skip = separator.latency_samples  # the recording is aligned with the input
        self._pending = np.zeros(0, dtype=np.float32)  # model-rate input not yet processed
        self._switch: tuple[PreparedQueries, Callable[[], None] | None] | None = None
        self._switch_lock = threading.Lock()
        self.consumed = 0  # model-rate input samples handled so far: processed + dropped
        self.dropped_samples = 0
        self.compute_s = 0.0  # time spent in separator.process
        self.recent: deque[tuple[int, float]] = deque(maxlen=256)  # (samples, compute s) per block
        self.max_backlog_seen = 0
        self.error: BaseException | None = None
        self.finished = False

    @staticmethod
    def _resampler(source: int, target: int, quality: str) -> _StreamResampler | None:
        return None if source == target else _StreamResampler(source, target, quality)

    @property
    def resampling_delay_s(self) -> float:
        """What the two resamplers (input to model rate, model to output rate) hold back on
        average, in seconds: their share of the latency."""
        return sum(r.held_s for r in (self._in_resampler, self._out_resampler) if r is not None)

    # -- called from other threads ---------------------------------------------------------

    def put(self, samples: np.ndarray) -> None:
        """Queue one mono input block at `input_rate` (from the input callback: never blocks)."""
        self.inbox.put(samples)

    def switch_queries(self, queries: PreparedQueries, then: Callable[[], None] | None = None) -> None:
        """Switch the separator's queries between two blocks, on the worker thread; `then`
        runs there after the switch. A later switch before that replaces this one."""
        if queries.rows != self.separator.queries.rows:
            raise ClipsepError(f"a query switch must keep {self.separator.queries.rows} output rows, got {queries.rows}")
        with self._switch_lock:
            self._switch = (queries, then)

    # -- the worker thread ------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """The worker thread: handle input as it comes until `stop` is set."""
        try:
            while not stop.is_set():
                try:
                    first = self.inbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                self._take([first])
                self.pump()
        except BaseException as exc:  # noqa: BLE001 - reported by the runner's thread
            self.error = exc

    def pump(self) -> int:
        """Process all waiting input, at most a block at a time (no waiting for a whole block:
        that would add latency), dropping the oldest input when behind. Returns the chunks run."""
        done = 0
        while True:
            self._drain()
            self.max_backlog_seen = max(self.max_backlog_seen, len(self._pending))
            if len(self._pending) > self.max_backlog:
                self._drop(len(self._pending) - self.block)
            if not len(self._pending):
                return done
            self._apply_switch()
            chunk, self._pending = self._pending[: self.block], self._pending[self.block :]
            self._process(chunk)
            done += 1

    def finish(self) -> None:
        """After the input has stopped and `serve` has returned: process what is left (no
        dropping: the stream is over) and complete the recording with the latency's tail."""
        if self.finished:
            return
        self.finished = True
        self._drain()
        if self._in_resampler is not None:
            self._append(self._in_resampler(np.zeros(0, dtype=np.float32), last=True))
        self._apply_switch()
        while len(self._pending):
            chunk, self._pending = self._pending[: self.block], self._pending[self.block :]
            self._process(chunk)
        if self.record is not None:  # the last `latency` samples are still inside the separator
            zeros = np.zeros(self.block, dtype=np.float32)
            left = self.separator.latency_samples
            while left > 0:
                out = self.separator.process(zeros[: min(left, self.block)])[self.row]
                self._record(out)
                left -= len(out)

    # -- internals --------------------------------------------------------------------------

    def _drain(self) -> None:
        chunks = []
        while True:
            try:
                chunks.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        if chunks:
            self._take(chunks)

    def _take(self, chunks: list[np.ndarray]) -> None:
        samples = np.concatenate(chunks).astype(np.float32, copy=False) if len(chunks) > 1 else chunks[0]
        if self._in_resampler is not None:
            samples = self._in_resampler(samples)
        self._append(samples)

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])

    def _apply_switch(self) -> None:
        with self._switch_lock:
            switch, self._switch = self._switch, None
        if switch is not None:
            queries, then = switch
            self.separator.set_queries(queries)
            if then is not None:
                then()

    def _drop(self, count: int) -> None:
        """Skip the oldest `count` waiting samples: silence in their place, an overrun counted."""
        self.separator.stats.overruns += 1
        self.dropped_samples += count
        self.consumed += count
        self._pending = self._pending[count:]
        silence = np.zeros(count, dtype=np.float32)
        self._write_input(silence)
        self._emit(silence)

    def _process(self, chunk: np.ndarray) -> None:
        started = time.perf_counter()
        out = self.separator.process(chunk)[self.row]
        elapsed = time.perf_counter() - started
        self.compute_s += elapsed
        self.recent.append((len(chunk), elapsed))
        self.consumed += len(chunk)
        self._write_input(chunk)
        self._emit(out)

    def _write_input(self, samples: np.ndarray) -> None:
        if self.record_input is not None:
            self.record_input.write(samples)

    def _record(self, out: np.ndarray) -> None:
        if self.record is None:
            return
        if self._record_skip:
            skip = min(self._record_skip, len(out))
            out, self._record_skip = out[skip:], self._record_skip - skip
        if len(out):
            self.record.write(out)

    def _emit(self, out: np.ndarray) -> None:
        self._record(out)
        if self.playback is not None:
            played = self._out_resampler(out) if self._out_resampler is not None else out
            if len(played):
                self.playback.push(played)

    def recent_rtf(self) -> float:
        """Compute time over audio time for the recent blocks (the worker's load)."""
        samples = sum(n for n, _ in self.recent)
        return sum(t for _, t in self.recent) / (samples / self.rate) if samples else 0.0


# ---------------------------------------------------------------------------- runner


class LiveRunner:
    """Real-time separation from an input device (or a file played at real-time pace) to an
    output device and/or a recording. See the module docstring for the threading and the
    real-time rules.

    separator: a fresh StreamingSeparator. input_device / output_device: id, part of a name
    or None (the default device); both are opened at their native rate. output_file: .wav
    (float) or .flac, the chosen output `row` at the model rate, aligned with the input
    (`overwrite` to replace an existing file). play: send the output to `output_device`.
    block_ms: the most input the worker hands the separator at once (device blocks are the
    host's). status: called with one line every `status_interval_s` and for warnings, from
    the thread that calls `run`. query_names: shown in the status line (updated by
    `switch_queries`).

    buffer_ms: the playback jitter buffer; default: twice a measured network step plus a
    block (at most a hop plus two blocks), plus the resamplers' burstiness
    (`resampling_jitter`, about 19 ms at 48 kHz). input_channels: channels opened and
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
    ):
        if not play and output_file is None:
            raise ClipsepError("live separation needs somewhere to go: play it (speakers) and/or record it to a file")
        if not block_ms > 0:
            raise ClipsepError(f"block_ms must be positive, got {block_ms}")
        for path in (output_file, record_input):
            if path is not None and Path(path).suffix.lower() not in _RECORD_SUBTYPES:
                raise ClipsepError(f"{path}: live recordings are .wav or .flac files")
        self.separator = separator
        self.rate = separator.spectral.sample_rate
        self.output_file = Path(output_file) if output_file is not None else None
        self.record_input_file = Path(record_input) if record_input is not None else None
        self.source_file = Path(source_file) if source_file is not None else None
        self.play = play
        self.row = row
        self.status = status
        self.overwrite = overwrite
        self.query_names = list(query_names)
        self.status_interval_s = status_interval_s
        self.device_latency = device_latency
        self.block = max(1, round(block_ms * self.rate / 1000))
        self.block_ms = 1000 * self.block / self.rate

        self._sd = import_sounddevice() if (play or self.source_file is None) else None
        self.input_device: tuple[int, str, int] | None = None
        if self.source_file is None:
            self.input_device = resolve_device(input_device, "input")
            self.input_rate = self.input_device[2]
            max_channels = self._sd.query_devices(self.input_device[0])["max_input_channels"]
            self.input_channels = min(max_channels, input_channels or 2)
        else:
            self.input_rate, self.input_channels = self.rate, 1
        self.output_device = resolve_device(output_device, "output") if play else None
        self.output_rate = self.output_device[2] if self.output_device else self.rate
        if self.output_device:
            self.output_channels = min(2, self._sd.query_devices(self.output_device[0])["max_output_channels"])

        self.step_estimate_s = measure_step(separator)
        self.resampling_jitter_s = resampling_jitter(
            self.input_rate, self.rate, self.output_rate if play else self.rate, resample_quality)
        hop_s = separator.options.hop_frames * separator.spectral.hop_length / self.rate
        block_s = self.block / self.rate
        if buffer_ms is None:
            buffer_s = min(max(2 * self.step_estimate_s + block_s, 2 * block_s), hop_s + 2 * block_s)
            buffer_s += self.resampling_jitter_s
        else:
            if buffer_ms < 0:
                raise ClipsepError(f"buffer_ms must be 0 or more, got {buffer_ms}")
            buffer_s = buffer_ms / 1000
        self.buffer_s = buffer_s
        playback = None
        if play:
            block_out = round(block_s * self.output_rate)
            target = round(buffer_s * self.output_rate)
            playback = PlaybackBuffer(target, high_water=target + 3 * block_out)
        self.worker = LiveWorker(
            separator, self.block, row=row, input_rate=self.input_rate, output_rate=self.output_rate,
            playback=playback, max_backlog=round(buffer_s * self.rate) + 2 * self.block,
            resample_quality=resample_quality,
        )
        self.device_input_latency_s = 0.0
        self.device_output_latency_s = 0.0
        self.input_overflows = 0  # reported by the device: audio lost before it reached us
        self.output_underflows = 0  # reported by the device
        self.interrupted = False
        self.stop_reason = ""
        self._done_reason = "duration reached"
        self.written = False  # the recordings were completed and moved into place
        self._input_frames = 0
        self._limit_frames: int | None = None
        self._input_done = threading.Event()
        self._worker_stop = threading.Event()
        self._feeder_stop = threading.Event()
        self._streams: list = []
        self._threads: list[threading.Thread] = []
        self._files: ExitStack | None = None
        self._notes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._started_at: float | None = None
        self._closed = False
        self._reported = {"overruns": 0, "dropped": 0, "underflows": 0, "input_overflows": 0, "output_underflows": 0}

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
            return 1000 * self.buffer_s
        return 1000 * (playback.primed_level - playback.trimmed_samples) / self.output_rate

    @property
    def latency_ms(self) -> float:
        return self.latency["total_ms"]

    def switch_queries(self, prepared: PreparedQueries, names: list[str] | tuple[str, ...]) -> None:
        """Thread-safe: the worker switches (with the separator's crossfade) between two blocks."""
        names = list(names)

        def switched() -> None:
            self.query_names = names
            self._notes.put(f"queries now: {', '.join(names) or '(unnamed)'}")

        self.worker.switch_queries(prepared, then=switched)

    def start(self) -> None:
        """Open the files and the streams and start the worker (run() calls this if needed)."""
        if self._started_at is not None:
            return
        files = ExitStack()
        try:
            self.worker.record = self._open_recording(files, self.output_file)
            self.worker.record_input = self._open_recording(files, self.record_input_file)
            worker = threading.Thread(target=self.worker.serve, args=(self._worker_stop,), name="clipsep-live-worker",
                                      daemon=True)
            worker.start()
            self._threads.append(worker)
            self._files = files
            self._open_streams()
        except BaseException:
            self._files = files
            self._close(failed=sys.exc_info()[1])
            raise
        self._started_at = time.monotonic()

    def run(self, duration_s: float | None = None, stop_event: threading.Event | None = None) -> None:
        """Start (if needed) and run until `duration_s` of input since the start, the end of the
        source file, `stop_event`, Ctrl-C (KeyboardInterrupt: `interrupted` is set, the files are
        still completed) or a worker error (raised here); then stop and finish the files."""
        if duration_s is not None:
            if not duration_s > 0:
                raise ClipsepError(f"duration must be positive, got {duration_s}")
            self._limit_frames = round(duration_s * self.input_rate)
            if self._input_frames >= self._limit_frames:
                self._input_done.set()
        try:
            self.start()
            next_status = time.monotonic() + self.status_interval_s
            while True:
                if self._input_done.wait(timeout=0.05):
                    self.stop_reason = self._done_reason
                    break
                if stop_event is not None and stop_event.is_set():
                    self.stop_reason = "stopped"
                    break
                if self.worker.error is not None:
                    break
                if not all(stream.active for stream in self._streams):
                    self.stop_reason = "the input stream stopped (device lost?)"
                    break
                self._emit_notes()
                if time.monotonic() >= next_status:
                    self._report(self.status_line())
                    next_status += self.status_interval_s
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop_reason = "interrupted"
        except BaseException as exc:
            self._close(failed=exc)
            raise
        self._close()
        self._emit_notes()
        self._report(self.summary_line())

    def status_line(self) -> str:
        latency = self.latency
        elapsed = self.worker.consumed / self.rate
        names = ", ".join(self.query_names) or "(unnamed)"
        parts = (f"model {latency['algorithmic_ms']:.0f} + buffer {latency['buffer_ms']:.0f} + resampling "
                 f"{latency['resampling_ms']:.0f} + device {latency['device_input_ms'] + latency['device_output_ms']:.0f}")
        line = (f"live {elapsed:6.1f} s | latency {latency['total_ms']:.0f} ms ({parts}) | RTF {self.rtf_p50():.2f}"
                f" | overruns {self.separator.stats.overruns}")
        if self.worker.playback is not None:
            line += f" | underflows {self.worker.playback.underflows}"
        return line + f" | query: {names}"

    def summary_line(self) -> str:
        stats = self.separator.stats
        text = (
            f"live: stopped ({self.stop_reason or 'done'}) after {self.worker.consumed / self.rate:.1f} s;"
            f" step p50 {stats.percentile_ms(50):.1f} ms, p99 {stats.percentile_ms(99):.1f} ms, RTF p50 {self.rtf_p50():.2f};"
            f" {stats.overruns} overruns ({1000 * self.worker.dropped_samples / self.rate:.0f} ms dropped)"
        )
        if self.worker.playback is not None:
            text += f", {self.worker.playback.underflows} playback underflows"
        if self.written and self.output_file is not None:
            text += f"; wrote {self.output_file}"
        return text

    def rtf_p50(self, recent: int = 64) -> float:
        """Median network step time over the hop it covers, for the last `recent` steps."""
        steps = self.separator.stats.steps[-recent:]
        if not steps:
            return 0.0
        hop_s = self.separator.options.hop_frames * self.separator.spectral.hop_length / self.rate
        return float(np.median([s.compute_s for s in steps])) / hop_s

    def summary(self) -> dict:
        """Everything `write_stats` writes."""
        stats, worker = self.separator.stats, self.worker
        hop_s = self.separator.options.hop_frames * self.separator.spectral.hop_length / self.rate
        audio_s = worker.consumed / self.rate
        playback = worker.playback
        return {
            "duration_s": audio_s,
            "input_samples": worker.consumed,
            "sample_rate": self.rate,
            "input": {"device": self.input_device[1] if self.input_device else str(self.source_file),
                      "rate": self.input_rate, "channels": self.input_channels},
            "output": ({"device": self.output_device[1], "rate": self.output_rate} if self.output_device else None),
            "block_ms": self.block_ms,
            "hop_frames": self.separator.options.hop_frames,
            "lookahead_frames": self.separator.options.lookahead_frames,
            "hop_ms": 1000 * hop_s,
            "latency_ms": self.latency,
            "step_estimate_ms": 1000 * self.step_estimate_s,
            "step_p50_ms": stats.percentile_ms(50),
            "step_p99_ms": stats.percentile_ms(99),
            "rtf": {  # network step time over the hop it covers; mean and recent: the worker's load
                "p50": stats.percentile_ms(50) / (1000 * hop_s),
                "p99": stats.percentile_ms(99) / (1000 * hop_s),
                "mean": worker.compute_s / audio_s if audio_s else 0.0,
                "recent": worker.recent_rtf(),
            },
            "overruns": stats.overruns,
            "dropped_ms": 1000 * worker.dropped_samples / self.rate,
            "max_backlog_ms": 1000 * worker.max_backlog_seen / self.rate,
            "backlog_limit_ms": 1000 * worker.max_backlog / self.rate,
            "playback": None if playback is None else {
                "underflows": playback.underflows,
                "underflow_ms": 1000 * playback.underflow_samples / self.output_rate,
                "late_ms": 1000 * playback.late_samples / self.output_rate,
                "trimmed_ms": 1000 * playback.trimmed_samples / self.output_rate,
            },
            "device_input_overflows": self.input_overflows,
            "device_output_underflows": self.output_underflows,
            "interrupted": self.interrupted,
            "queries": self.query_names,
            "steps": [{"stream_time_s": s.stream_time_s, "compute_ms": 1000 * s.compute_s} for s in stats.steps],
        }

    def write_stats(self, path: Path, overwrite: bool = True) -> None:
        """The run's timings, latency and overruns as JSON (atomically)."""
        with atomic_output(path, overwrite=overwrite) as temp:
            Path(temp).write_text(json.dumps(self.summary(), indent=1) + "\n")

    # -- streams -----------------------------------------------------------------------------

    def _open_recording(self, files: ExitStack, path: Path | None):
        if path is None:
            return None
        temp = files.enter_context(atomic_output(path, self.overwrite))
        subtype = _RECORD_SUBTYPES[path.suffix.lower()]
        return files.enter_context(sf.SoundFile(temp, "w", samplerate=self.rate, channels=1, subtype=subtype,
                                                format=path.suffix[1:].upper()))

    def _open_streams(self) -> None:
        sd = self._sd
        if self.output_device is not None:
            index, name, rate = self.output_device
            stream = self._portaudio(f"open the output device {name!r} at {rate} Hz", lambda: sd.OutputStream(
                device=index, samplerate=rate, channels=self.output_channels, dtype="float32",
                blocksize=0, latency=self.device_latency, callback=self._output_callback))
            self._streams.append(stream)
            self.device_output_latency_s = float(stream.latency)
        if self.input_device is not None:
            index, name, rate = self.input_device
            stream = self._portaudio(f"open the input device {name!r} at {rate} Hz", lambda: sd.InputStream(
                device=index, samplerate=rate, channels=self.input_channels, dtype="float32",
                blocksize=0, latency=self.device_latency, callback=self._input_callback))
            self._streams.append(stream)
            self.device_input_latency_s = float(stream.latency)
        for stream in self._streams:
            self._portaudio("start the audio streams", stream.start)
        if self.source_file is not None:
            feeder = threading.Thread(target=self._feed_file, name="clipsep-live-source", daemon=True)
            feeder.start()
            self._threads.insert(0, feeder)

    @staticmethod
    def _portaudio(what: str, call):
        """Run a PortAudio call; its errors become a ClipsepError saying what failed."""
        try:
            return call()
        except Exception as exc:
            if type(exc).__name__ != "PortAudioError":
                raise
            raise ClipsepError(f"cannot {what}: {exc}") from None

    def _input_callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.input_overflows += 1
        if self._input_done.is_set():
            return
        mono = indata.mean(axis=1, dtype=np.float32) if indata.shape[1] > 1 else indata[:, 0].copy()
        self._accept(mono)

    def _accept(self, mono: np.ndarray) -> None:
        """Queue input up to the duration limit (input callback or file feeder)."""
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
        from .audio_io import iter_audio_blocks

        started = time.monotonic()
        position = 0
        try:
            for block in iter_audio_blocks(self.source_file, self.block, self.rate, min_samples=1):
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
        """Stop the input, let the worker finish, stop the output, complete (or on failure
        discard) the files. Raises the worker's error, if it had one."""
        if self._closed:
            return
        self._closed = True
        self._input_done.set()
        self._feeder_stop.set()
        for stream in reversed(self._streams):  # the input (opened last) first
            try:
                if isinstance(stream, self._sd.OutputStream):
                    stream.abort()  # no need to play out what is queued
                else:
                    stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - stopping is best effort; the files matter more
                pass
        self._worker_stop.set()
        for thread in self._threads:
            thread.join()
        error = failed or self.worker.error
        if error is None:
            try:
                self.worker.finish()
            except BaseException as exc:
                error = exc
        if self._files is not None:
            if error is None:
                self._files.close()
                self.written = self.output_file is not None or self.record_input_file is not None
            else:
                self._files.__exit__(type(error), error, error.__traceback__)
        if failed is None and error is not None:
            raise error

    def _emit_notes(self) -> None:
        while True:
            try:
                self._report(self._notes.get_nowait())
            except queue.Empty:
                break
        worker, seen = self.worker, self._reported
        overruns = self.separator.stats.overruns
        if overruns > seen["overruns"]:
            dropped = worker.dropped_samples - seen["dropped"]
            self._report(
                f"warning: falling behind real time (step p50 {self.separator.stats.percentile_ms(50):.1f} ms, "
                f"RTF {self.rtf_p50():.2f}): dropped {1000 * dropped / self.rate:.0f} ms of input in "
                f"{overruns - seen['overruns']} overrun(s), {overruns} in all"
            )
            seen["overruns"], seen["dropped"] = overruns, worker.dropped_samples
        if worker.playback is not None and worker.playback.underflows > seen["underflows"]:
            self._report(
                f"warning: playback ran dry {worker.playback.underflows - seen['underflows']} time(s), "
                f"{worker.playback.underflows} in all (silence played; a larger buffer_ms avoids it)"
            )
            seen["underflows"] = worker.playback.underflows
        for key, what in (("input_overflows", "the input device lost audio (overflow)"),
                          ("output_underflows", "the output device ran dry (underflow)")):
            count = getattr(self, key)
            if count > seen[key]:
                self._report(f"warning: {what} {count - seen[key]} time(s), {count} in all")
                seen[key] = count

    def _report(self, line: str) -> None:
        if self.status is not None:
            self.status(line)


def measure_step(separator: StreamingSeparator, repeats: int = 5) -> float:
    """Time one network call on a silent window, after a warm-up call (which also builds CUDA
    graphs or compiled kernels): the second slowest of `repeats` calls, in seconds."""
    spectral, engine = separator.spectral, separator.engine
    window = torch.full((1, 1, spectral.log_freq_bins, spectral.window_frames), float(np.log(MAG_EPS)), device=engine.device)
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        engine.probabilities(window, separator.queries)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        times.append(time.perf_counter() - started)
    return sorted(times[1:])[-2] if repeats > 1 else times[-1]


def resampling_jitter(input_rate: int, rate: int, output_rate: int, quality: str = RESAMPLE_QUALITY) -> float:
    """How much the output of the resampling chain (input -> model rate -> output rate) lags
    behind its steady pace at worst beyond at best, in seconds: soxr releases its output in
    blocks (about 19 ms at 48 kHz in LQ), and the playback buffer must cover that too.
    Found by running one second of 5 ms chunks through fresh resamplers."""
    stages = [_StreamResampler(a, b, quality) for a, b in ((input_rate, rate), (rate, output_rate)) if a != b]
    if not stages:
        return 0.0
    chunk = max(1, round(0.005 * input_rate))
    silence = np.zeros(chunk, dtype=np.float32)
    fed = made = 0
    held = []
    for _ in range(input_rate // chunk):
        out = silence
        for stage in stages:
            out = stage(out)
        fed += chunk
        made += len(out)
        held.append(fed * output_rate / input_rate - made)
    steady = held[len(held) // 4 :]
    return (max(steady) - min(steady)) / output_rate


def read_queries_from_stdin(
    callback: Callable[[str], None],
    stream: TextIO | None = None,
    on_error: Callable[[str], None] | None = None,
) -> threading.Thread:
    """A daemon thread calling `callback(line)` for each non-empty line of stdin (or `stream`)
    until end of input. A ClipsepError from the callback goes to `on_error` (default: stderr)
    and the thread goes on reading."""
    source = stream if stream is not None else sys.stdin

    def report(message: str) -> None:
        (on_error or (lambda text: print(f"clipsep-rt: error: {text}", file=sys.stderr)))(message)

    def read() -> None:
        for line in source:
            text = line.strip()
            if not text:
                continue
            try:
                callback(text)
            except ClipsepError as exc:
                report(str(exc))
            except Exception as exc:  # noqa: BLE001 - keep reading; say what went wrong
                report(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=read, name="clipsep-live-queries", daemon=True)
    thread.start()
    return thread
