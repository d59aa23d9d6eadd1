"""The live separation worker: input blocks through the streaming separator into the
playback buffer and the recordings, on its own thread, at a fixed latency.

Fixed latency, never silently late
----------------------------------
Every input sample becomes exactly one output sample, so the latency stays what it was at
the start:

* The worker falls behind (more input waiting than the playback buffer plus two blocks): it
  drops the oldest waiting input (the separator never sees it), plays and records silence in
  its place and counts a drop in `drops` (the runner's status line warns). Network steps
  slower than real time are the separator's overruns (`StreamStats.overruns`): the playback
  buffer absorbs a few; drops follow when they go on.
  The separator's own timeline skips the gap, so the `latency` of audio just before a gap
  comes out just after it; from there on everything is in place again.
* The playback buffer runs dry, or grows past its target (`PlaybackBuffer`): silence is
  played, or the oldest samples are dropped, so the latency does not grow.

The recording is aligned with the input, like `--stream` files (`LatencyAligner`): the
separator's latency is removed and it holds as many model-rate samples as the input gave
(silence where input was dropped).

Query switches may change the number of queries. Playback is row `row` (the first query
by default) throughout. The recording keeps the channel count it started with, one per
query: after a switch, channel k records the new query k; channels without a query are
silent, queries without a channel are not recorded.

The model-rate input it handles (dropped input included) is also kept in `recent_input`, the
last `RECENT_INPUT_S` seconds, for a query fitted to what was just heard (`/this`).

`LiveWorker` needs no audio device: tests drive it directly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.runtime.engines.protocol import PreparedQueries
from clipsep_rt.runtime.live.buffers import RESAMPLE_QUALITY, PlaybackBuffer, StreamResampler
from clipsep_rt.runtime.live.recent_input import RECENT_INPUT_S, RecentInput
from clipsep_rt.runtime.streaming import LatencyAligner, StreamingSeparator


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
            raise OptionError("block", f"must be at least one sample, got {block}")
        if not 0 <= row < separator.queries.rows:
            rows = separator.queries.rows
            raise OptionError("row", f"output row {row} does not exist: the separator has {rows} rows (0..{rows - 1})")
        self.block = int(block)
        self.row = row
        self.input_rate = input_rate or self.rate
        self.output_rate = output_rate or self.rate
        self.inbox: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._in_resampler = self._resampler(self.input_rate, self.rate, resample_quality)
        self._out_resampler = self._resampler(self.rate, self.output_rate, resample_quality) if playback is not None else None
        self.playback = playback
        default_backlog = separator.hop_samples + 2 * self.block
        self.max_backlog = max(2 * self.block, int(max_backlog) if max_backlog is not None else default_backlog)
        self.record = record  # record_channels channels
        self.record_channels = separator.queries.rows  # fixed for the run: one per query at the start
        self.record_input = record_input
        self.recent_input = RecentInput(RECENT_INPUT_S, self.rate)  # the last seconds handled, for `/this`
        self._aligner = LatencyAligner(separator)  # the recording is aligned with the input
        self._pending = np.zeros(0, dtype=np.float32)  # model-rate input not yet processed
        self._switch: tuple[PreparedQueries, Sequence[str], Callable[[], None] | None] | None = None
        self._switch_lock = threading.Lock()
        self.consumed = 0  # model-rate input samples handled so far: processed + dropped
        self.drops = 0  # times input was dropped because the worker fell behind
        self.dropped_samples = 0
        self.compute_s = 0.0  # time spent in separator.process
        self.recent: deque[tuple[int, float]] = deque(maxlen=256)  # (samples, compute s) per block
        self.max_backlog_seen = 0
        self.error: BaseException | None = None
        self.finished = False

    @staticmethod
    def _resampler(source: int, target: int, quality: str) -> StreamResampler | None:
        return None if source == target else StreamResampler(source, target, quality)

    @property
    def resampling_delay_s(self) -> float:
        """What the two resamplers (input to model rate, model to output rate) hold back on
        average, in seconds: their share of the latency."""
        return sum(r.held_s for r in (self._in_resampler, self._out_resampler) if r is not None)

    # -- called from other threads ---------------------------------------------------------

    def put(self, samples: np.ndarray) -> None:
        """Queue one mono input block at `input_rate` (from the input callback: never blocks)."""
        self.inbox.put(samples)

    def switch_queries(self, queries: PreparedQueries, then: Callable[[], None] | None = None,
                       names: Sequence[str] = ()) -> None:
        """Switch the separator's queries between two blocks, on the worker thread; `then`
        runs there after the switch. A later switch before that replaces this one."""
        if queries.rows <= self.row:
            raise ClipsepError(f"playback is query {self.row + 1}: a switch needs at least {self.row + 1} queries, "
                               f"got {queries.rows}")
        with self._switch_lock:
            self._switch = (queries, names, then)

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
            for out in self._aligner.flush(self.block):
                self._write_record(out)

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
            queries, names, then = switch
            self.separator.set_queries(queries, names)
            if then is not None:
                then()

    def _drop(self, count: int) -> None:
        """Skip the oldest `count` waiting samples: silence in their place, a drop counted."""
        self.drops += 1
        self.dropped_samples += count
        self.consumed += count
        self.recent_input.write(self._pending[:count])  # heard, though not separated
        self._pending = self._pending[count:]
        silence = np.zeros((self.row + 1, count), dtype=np.float32)
        self._write_input(silence[0])
        self._emit(silence)

    def _process(self, chunk: np.ndarray) -> None:
        started = time.perf_counter()
        out = self.separator.process(chunk)
        elapsed = time.perf_counter() - started
        self.compute_s += elapsed
        self.recent.append((len(chunk), elapsed))
        self.consumed += len(chunk)
        self.recent_input.write(chunk)
        self._write_input(chunk)
        self._emit(out)

    def _write_input(self, samples: np.ndarray) -> None:
        if self.record_input is not None:
            self.record_input.write(samples)

    def _write_record(self, aligned: np.ndarray) -> None:
        """(rows, m) aligned output -> the recording's channels, (m, record_channels)."""
        if self.record is None or not aligned.shape[1]:
            return
        channels = np.zeros((self.record_channels, aligned.shape[1]), dtype=np.float32)
        kept = min(self.record_channels, len(aligned))
        channels[:kept] = aligned[:kept]
        self.record.write(channels.T)

    def _emit(self, out: np.ndarray) -> None:
        """(rows, m) separator output: aligned to the recording, row `row` to playback."""
        self._write_record(self._aligner.align(out))
        if self.playback is not None:
            played = self._out_resampler(out[self.row]) if self._out_resampler is not None else out[self.row]
            if len(played):
                self.playback.push(played)

    def recent_rtf(self) -> float:
        """Compute time over audio time for the recent blocks (the worker's load)."""
        samples = sum(n for n, _ in self.recent)
        return sum(t for _, t in self.recent) / (samples / self.rate) if samples else 0.0
