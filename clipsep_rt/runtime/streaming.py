"""Low-latency streaming separation: block-wise masking over a sliding trained-size window.

A small stateful frame loop around the stateless engine (DeepFilterNet's split). Every
H new STFT frames ("hop"), the network sees the trained 256-frame window that ends L
frames ("look-ahead") after the newest H frames, and only those H frames' masks are kept
("block-wise masking"). Masked frames are overlap-added by the iSTFT.

Audio goes in and out in blocks of any size: `process(block)` returns exactly as many
samples as it takes, delayed by a fixed `latency_samples`:

    latency = (H + L + 3) * hop - 1 samples

(H + L frames of window, the n_fft / 2 samples a centred frame reaches ahead, and the
two hops a sample waits for the last frame that covers it). Before the first full
window, the window is left-padded with silence, so output starts after `latency`.
`LatencyAligner` removes that delay where the output goes to a file (file streaming, live
recordings, benchmarks); `stats` (runtime.stream_stats) times every network step.

A query switch (`set_queries`) may change the number of rows. Over the switch hop, a row
in both sets crossfades from the old mask to the new one, a new row fades in from silence,
and a row that is gone fades out; that row stays in the output, silent, until its last
audio has come out (at most a hop and the latency later), then the next block drops it.
A new row's output is silent until the switch reaches it, like all of the switch.

Multichannel audio (`channels=C`): as in batch separation (`offline`), the network hears the
downmix (the mean of the channels' STFTs) and each channel gets the masks applied to its own
STFT, so a stereo input gives stereo output. Blocks are then (m, C) in and (rows, m, C) out;
mono blocks (m,) in and (rows, m) out. Time is axis 1 of the output either way.

Start-up: the first network call of a stream compiles the graph's input shape (OpenVINO,
TensorRT, torch.compile) or fills caches, and can take many hops' time. `warm_up` makes that
call on a silent window before the first step (the first step makes it if nobody did) and
times it apart, as `stats.startup_s`: the steps' timings, and so the overruns and the
real-time verdict, are those of the steady state.

Global indices as in `offline`: sample s, STFT frame t centred at t * hop. The samples,
frames, masked frames and output FIFO are `dsp.spectral_buffer` buffers allocated up front,
sized from the options for blocks up to `BLOCK_ROOM_SAMPLES`: a hop allocates none of them
(a larger block grows them once; see that module for what still allocates).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.dsp.block_spectral import MASK_MODES, BlockFrontEnd, apply_real_masks
from clipsep_rt.dsp.presence import GateOptions, PresenceGate, PresenceTimeline, frame_energies
from clipsep_rt.dsp.samples import float_samples
from clipsep_rt.dsp.spectral_buffer import SlidingBuffer, SpectralBuffer, shift_in
from clipsep_rt.dsp.warp import MAG_EPS
from clipsep_rt.runtime.engines.protocol import Engine, PreparedQueries
from clipsep_rt.runtime.queries import Queries
from clipsep_rt.runtime.stream_stats import StepTiming, StreamStats, StreamSummary
from clipsep_rt.runtime.streaming_presets import PRESETS

# Blocks up to this many samples (256 ms at 16 kHz; audio callbacks and file streaming pass
# 16 ms) fit the preallocated buffers; a larger one grows them once.
BLOCK_ROOM_SAMPLES = 4096


@dataclass(frozen=True)
class StreamingOptions:
    hop_frames: int = 12  # the "balanced" preset
    lookahead_frames: int = 4
    mask: str = "soft"

    def __post_init__(self) -> None:
        if self.hop_frames < 1:
            raise OptionError("hop_frames", f"must be at least 1, got {self.hop_frames}")
        if self.lookahead_frames < 0:
            raise OptionError("lookahead_frames", f"must be 0 or more, got {self.lookahead_frames}")
        if self.mask not in MASK_MODES:
            raise OptionError("mask", f"must be one of {MASK_MODES}, got {self.mask!r}")

    @classmethod
    def preset(cls, name: str, mask: str = "soft") -> "StreamingOptions":
        if name not in PRESETS:
            raise ClipsepError(f"latency preset {name!r}: expected one of {', '.join(PRESETS)}")
        hop, lookahead = PRESETS[name]
        return cls(hop, lookahead, mask)


class StreamingSeparator:
    """Blocks in (model rate) -> (rows, block) separated blocks out, with fixed latency.

        out = stream.process(block)        # (m,) float32 at stream.sample_rate -> (rows, m);
                                           # with channels=C: (m, C) -> (rows, m, C)
        stream.set_queries(["dog"])        # switch mid-stream (rows may change)
        tail = stream.flush()              # (rows, latency_samples): what is left after the last block
        stream.summary()                   # latency, per-step compute p50/p99, overruns

    Output row k is query k of `query_names` (after a switch, rows of removed queries stay,
    silent, until their last audio is out: see the module docstring). Not thread-safe: process and switch from one
    thread, or hand switches to that thread (as the live worker does).
    """

    def __init__(
        self,
        engine: Engine,
        queries: PreparedQueries,
        spectral: SpectralConfig = SpectralConfig(),
        options: StreamingOptions = StreamingOptions(),
        *,
        names: Sequence[str] = (),
        query_source: Callable[[list[str]], Queries] | None = None,
        channels: int | None = None,
        gate: GateOptions | None = None,
    ):
        """`names`: the queries' names (`query_names`); `query_source(texts)`: embeds and
        prepares texts for `set_queries` (a `Pipeline`'s query path), if texts may be given.
        `channels`: None for mono blocks (m,), else C for (m, C) blocks, each channel separated.
        `gate`: fade each query's output to silence where its presence score says absent
        (`dsp.presence`, causal: no added latency). The per-second presence of every query is
        kept either way (`presence`)."""
        if channels is not None and channels < 1:
            raise OptionError("channels", f"must be at least 1 (or None for mono blocks), got {channels}")
        if spectral.n_fft != 4 * spectral.hop_length:  # the latency and buffer sizes below count on it
            raise ClipsepError(f"streaming needs an STFT of 4 hops (n_fft = 4 x hop_length), got n_fft {spectral.n_fft}, "
                               f"hop {spectral.hop_length}")
        if options.hop_frames + options.lookahead_frames > spectral.window_frames:
            raise OptionError(
                "lookahead_frames",
                f"hop ({options.hop_frames}) + look-ahead ({options.lookahead_frames}) frames must fit in "
                f"the {spectral.window_frames}-frame window",
            )
        self.engine = engine
        self.spectral = spectral
        self.options = options
        self.front_end = BlockFrontEnd(spectral)
        self.queries = queries
        self.query_names = list(names)
        self._query_source = query_source
        self.channels = channels
        self.stats = StreamStats(hop_s=self.hop_samples / spectral.sample_rate)
        hop_frames, lookahead = options.hop_frames, options.lookahead_frames
        hop, window = spectral.hop_length, spectral.window_frames
        self.latency_samples = (hop_frames + lookahead + 3) * hop - 1
        # Capacities: twice the most each buffer holds at once, so the held run moves to
        # the front of its storage every few hops only (a memmove, see SlidingBuffer).
        reach = spectral.n_fft // hop  # frames whose samples one frame's span covers
        per_channel = () if channels is None else (channels,)
        self._signal = SpectralBuffer(  # input samples ([C,] n) and mixture STFT frames ([C,] 513, T)
            self.front_end, per_channel,
            sample_capacity=2 * ((hop_frames + lookahead + reach) * hop + BLOCK_ROOM_SAMPLES),
            frame_capacity=2 * (hop_frames + lookahead),
        )
        # The network input, (1, 1, 256, W): log magnitudes of the newest W frames, silent at first.
        self._network_input = np.full((1, 1, spectral.log_freq_bins, window), np.log(MAG_EPS), np.float32)
        # Masked frames (rows, [C,] 513, T) awaiting the iSTFT, from frame istft_first_frame(_finished) on.
        self._masked = SlidingBuffer((queries.rows, *per_channel, spectral.linear_freq_bins), np.complex64,
                                     2 * (hop_frames + reach + 1))
        # Output FIFO (rows, [C,] n), indexed by output sample: `latency_samples` of silence, then the separation.
        self._output = SlidingBuffer((queries.rows, *per_channel), np.float32, 2 * (self.latency_samples + BLOCK_ROOM_SAMPLES))
        self._output.append_zeros(self.latency_samples)
        self._next_frame = 0  # first frame not yet computed
        self._step = 0
        self._finished = 0  # processed samples final so far
        self._fade_in: PreparedQueries | None = None
        self._rows = queries.rows  # rows of _masked and _output: the queries' and those fading out
        self._retire_at: int | None = None  # when _output.start reaches it, the rows fading out are silent
        self.presence = PresenceTimeline(spectral)  # per query, per second (bounded: a score per second)
        self._gate = PresenceGate(gate, queries.rows, spectral) if gate is not None else None
        self._gate_restarts: list[int] = []  # rows whose gate starts over at the next hop (a switch)

    @property
    def sample_rate(self) -> int:
        """The rate of the blocks in and out: the model's."""
        return self.spectral.sample_rate

    @property
    def latency_ms(self) -> float:
        return 1000 * self.latency_samples / self.spectral.sample_rate

    @property
    def hop_samples(self) -> int:
        """Audio per network step, in samples."""
        return self.options.hop_frames * self.spectral.hop_length

    @property
    def buffers(self) -> dict[str, SlidingBuffer]:
        """The stream's buffers by name (for inspection: their storage stays the same array
        from hop to hop unless a block exceeds BLOCK_ROOM_SAMPLES or rows are added)."""
        return {"samples": self._signal.samples, "frames": self._signal.frames, "masked": self._masked,
                "output": self._output}

    def summary(self) -> StreamSummary:
        """The statistics of what this separator has streamed so far."""
        summary = StreamSummary(hop_frames=self.options.hop_frames, lookahead_frames=self.options.lookahead_frames)
        return summary.measure(self.stats, latency_samples=self.latency_samples, hop_samples=self.hop_samples,
                               sample_rate=self.spectral.sample_rate)

    def presence_json(self) -> dict:
        """Each query's presence per second so far, as `--stats` writes it (`dsp.presence`),
        with whether the gate is on."""
        threshold = self._gate.options.threshold if self._gate is not None else GateOptions().threshold
        return {"gate": self._gate is not None, **self.presence.to_json(threshold)}

    def set_queries(self, queries: PreparedQueries | Queries | Sequence[str], names: Sequence[str] | None = None) -> None:
        """Switch queries mid-stream, to as many rows as they have: the next hop fades from the
        old masks to the new ones (see the module docstring for rows gained or lost). Texts are
        embedded here (one encoder call for a new one) through `query_source`; `names` name
        prepared queries (texts and `Queries` bring their own). `query_names` changes at once."""
        if isinstance(queries, str):
            queries = [queries]
        if isinstance(queries, Sequence):
            if self._query_source is None:
                raise ClipsepError("this stream has no query encoder: switch with prepared queries, not texts")
            queries = self._query_source(list(queries))
        if isinstance(queries, Queries):
            names, queries = queries.labels, queries.for_streaming()
        previous, self.query_names = self.query_names, list(names or [])
        # Rows that hold another query from the switch on: their gate starts over.
        self._gate_restarts = [k for k in range(queries.rows) if k >= len(previous) or k >= len(self.query_names)
                               or previous[k] != self.query_names[k]]
        self._fade_in = queries

    def silence(self, samples: int) -> np.ndarray:
        """A silent input block of `samples` samples in this stream's layout: (m,) or (m, C)."""
        return np.zeros((samples,) if self.channels is None else (samples, self.channels), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """(rows, latency_samples[, C]): the output still inside the stream after the last block
        (it processes that much silence). The stream can go on afterwards."""
        return self.process(self.silence(self.latency_samples))

    def warm_up(self) -> float:
        """Make the stream's first network call now, on a silent window, if no step has made
        it yet: it compiles the graph's shape or fills caches (see the module docstring).
        Returns its time in seconds, also kept as `stats.startup_s`."""
        if self.stats.startup_s is None:
            started = time.perf_counter()
            self.engine.probabilities(np.full_like(self._network_input, np.log(MAG_EPS)), self.queries)
            self.stats.startup_s = time.perf_counter() - started
        return self.stats.startup_s

    def process(self, block: np.ndarray) -> np.ndarray:
        """(m,) float32 at the model rate -> (rows, m) float32, `latency_samples` late; with
        `channels` C, (m, C) -> (rows, m, C). rows: the queries' rows, plus those of a switch's
        removed queries until they are silent."""
        block = self._channels_first(block)  # ([C,] m)
        m = block.shape[-1]
        self._signal.push(block)
        while self._signal.received >= self._step_ready_at(self._step):
            self._run_step()
        returned = self._output.start  # output samples returned so far
        out = self._output.slice(returned, returned + m)  # (rows, [C,] m), a view
        # the caller's own copy, in the blocks' layout: (rows, m) or (rows, m, C)
        out = out.copy() if self.channels is None else np.ascontiguousarray(out.transpose(0, 2, 1))
        self._output.trim(returned + m)
        if self._retire_at is not None and self._output.start >= self._retire_at:  # from the next block on
            self._rows, self._retire_at = self.queries.rows, None
            self._masked.set_rows(self._rows)
            self._output.set_rows(self._rows)
        return out

    def _channels_first(self, block: np.ndarray) -> np.ndarray:
        """A block in the stream's layout -> (m,) or (C, m) float32; integer PCM scaled, NaN/Inf
        and other layouts refused (`dsp.samples`, OptionError naming `block`)."""
        block = float_samples(block, "block")
        if self.channels is None:
            if block.ndim == 2 and block.shape[1] == 1:
                return block[:, 0]
            if block.ndim != 1:
                raise OptionError("block", f"this stream takes mono blocks of shape (m,), got {block.shape}")
            return block
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise OptionError("block", f"this stream takes blocks of shape (m, {self.channels}), got {block.shape}")
        return block.T

    # -- one hop ---------------------------------------------------------------------------

    def _step_ready_at(self, step: int) -> int:
        """Samples needed before step `step`: its last look-ahead frame must be complete."""
        newest = (step + 1) * self.options.hop_frames - 1 + self.options.lookahead_frames
        return newest * self.spectral.hop_length + self.spectral.n_fft // 2

    def _run_step(self) -> None:
        self.warm_up()  # the first call's compile is start-up, not this step's compute
        started = time.perf_counter()
        hop_frames, lookahead = self.options.hop_frames, self.options.lookahead_frames
        newest = (self._step + 1) * hop_frames - 1 + lookahead
        new_frames = self._signal.compute_frames(self._next_frame, newest + 1)  # ([C,] 513, n), kept in _signal.frames
        self._next_frame = newest + 1
        mixture = new_frames if self.channels is None else new_frames.mean(axis=0)  # the downmix's STFT (STFT is linear)
        shift_in(self._network_input[0, 0], self.front_end.warped_log_magnitude(np.abs(mixture)))

        probability = self._probabilities(self.queries)  # (queries' rows, 256, H)
        if self._fade_in is not None:  # crossfade to the new queries over this hop
            new = self._probabilities(self._fade_in)
            self._resize(max(self._rows, self._fade_in.rows))
            ramp = np.linspace(0, 1, hop_frames + 2, dtype=np.float32)[1:-1]
            probability = self._padded(probability) * (1 - ramp) + self._padded(new) * ramp
            self.queries, self._fade_in = self._fade_in, None
        masks = self.front_end.linear_masks(self._padded(probability), mode=self.options.mask)  # (_rows, 513, H)
        if self.channels is not None:
            masks = masks[:, None]  # (_rows, 1, 513, H): the same masks on every channel

        first = self._step * hop_frames  # the frames this step masks
        frames = self._signal.frames.slice(first, first + hop_frames)  # ([C,] 513, H)
        masks = self._presence_step(masks, frames if self.channels is None else frames.mean(axis=0), first)
        self._masked.append(apply_real_masks(frames, masks))
        self._step += 1
        self._emit(end=(first + hop_frames) * self.spectral.hop_length - self.spectral.n_fft // 2)
        # Kept for the next hops: the look-ahead frames, and the samples of the frames to come.
        self._signal.trim(keep_sample=self._next_frame * self.spectral.hop_length - self.spectral.n_fft // 2,
                          keep_frame=self._next_frame - lookahead)
        if self._rows > self.queries.rows and self._retire_at is None and not self._masked.held()[self.queries.rows :].any():
            self._retire_at = self._output.stop  # the rows fading out have gone silent
        self.stats.steps.append(StepTiming(self._signal.received / self.spectral.sample_rate, time.perf_counter() - started))

    def _presence_step(self, masks: np.ndarray, mixture: np.ndarray, first: int) -> np.ndarray:
        """Score this hop's frames [first, first + H) (masks (_rows, [1,] 513, H), the mono
        mixture's (513, H) STFT) into `presence`; gated masks if the gate is on."""
        linear = masks if self.channels is None else masks[:, 0]
        passed, total = frame_energies(linear, mixture)  # (_rows, H), (H,)
        rows = self.queries.rows  # rows fading out are not scored
        names = (self.query_names + [f"query {k + 1}" for k in range(len(self.query_names), rows)])[:rows]
        self.presence.add(first, passed[:rows], total, names)
        if self._gate is None:
            return masks
        if self._gate.rows != self._rows:
            self._gate.set_rows(self._rows)
        if self._gate_restarts:
            self._gate.reset(self._gate_restarts)
            self._gate_restarts = []
        gains = self._gate.gains(passed, total)  # (_rows, H)
        return masks * (gains[:, None, :] if self.channels is None else gains[:, None, None, :])

    def _resize(self, rows: int) -> None:
        """Give the buffers `rows` rows: new rows are silent so far."""
        if rows > self._rows:
            self._masked.set_rows(rows)
            self._output.set_rows(rows)
        self._rows = rows
        self._retire_at = None  # rows fading out (if any) are checked again after this hop

    def _padded(self, probability: np.ndarray) -> np.ndarray:
        """(r, ...) -> (_rows, ...): rows fading out (or not yet there) get masks of zero."""
        missing = self._rows - probability.shape[0]
        if not missing:
            return probability
        return np.concatenate([probability, np.zeros((missing, *probability.shape[1:]), probability.dtype)])

    def _probabilities(self, queries: PreparedQueries) -> np.ndarray:
        """Masks for this hop's H frames from the current window: (rows, 256, H)."""
        probability = self.engine.probabilities(self._network_input, queries)[0]  # (rows, 256, W)
        end = self.spectral.window_frames - self.options.lookahead_frames
        return probability[..., end - self.options.hop_frames : end]

    def _emit(self, end: int) -> None:
        """Append processed samples [finished, end) to the output FIFO and drop the masked
        frames no later sample needs."""
        if end <= self._finished:  # the first hop of a short hop size finishes no sample yet
            return
        first = self.front_end.istft_first_frame(self._finished)
        masked = self._masked.slice(first, self._masked.stop)  # (rows, [C,] 513, T)
        self._output.append(self.front_end.istft_span(masked, first, self._finished, end))  # (rows, [C,] end - finished)
        self._finished = end
        self._masked.trim(self.front_end.istft_first_frame(end))


class LatencyAligner:
    """A separator's output aligned with its input, as a file of it is written: `align`
    drops the first `latency_samples` of the output; after the last input, `flush` streams
    `latency_samples` of silence for the rest. In all, as many samples as went in. Outputs
    are (rows, m) or (rows, m, C): time on axis 1."""

    def __init__(self, separator: StreamingSeparator):
        self.separator = separator
        self._skip = separator.latency_samples  # output samples still to drop

    def align(self, output: np.ndarray) -> np.ndarray:
        """(rows, m[, C]) output, in stream order -> its part aligned with the input (rows, m or fewer[, C])."""
        skip = min(self._skip, output.shape[1])
        self._skip -= skip
        return output[:, skip:]

    def process(self, block: np.ndarray) -> np.ndarray:
        """`separator.process(block)`, aligned: (m[, C]) -> (rows, m or fewer[, C])."""
        return self.align(self.separator.process(block))

    def flush(self, block: int | None = None) -> Iterator[np.ndarray]:
        """The aligned output still inside the separator after the last input, (rows, n[, C])
        pieces, by processing silence `block` samples at a time (default: all at once)."""
        left = self.separator.latency_samples
        block = block or left
        while left > 0:
            size = min(block, left)
            yield self.align(self.separator.process(self.separator.silence(size)))
            left -= size


def stream_file_aligned(separator: StreamingSeparator, blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Stream blocks through `separator` and return (rows, n[, C]) aligned with the input
    (latency removed, same length): how a file streamed to a file is written."""
    aligner = LatencyAligner(separator)
    pieces = [aligner.process(block) for block in blocks]
    return np.concatenate([*pieces, *aligner.flush()], axis=1)
