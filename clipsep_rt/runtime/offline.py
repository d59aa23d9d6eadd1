"""Offline (file) separation: long audio in overlapping trained-size windows, bounded memory.

`OfflineSeparator.separate_blocks` consumes 16 kHz blocks of any size and yields (mixture, outputs)
blocks as soon as they are final, so memory depends on the batch size, not on the length of
the file. The result is identical (up to float rounding) to processing the whole signal at
once with the same window grid (see `windowing`).

Multichannel input: the masks come from the mono mixture (the mean of the channels' STFTs,
which is the STFT of the downmix) and are applied to each channel's STFT, so every channel's
selection + residual is that channel, and a signal present in all channels alike gets
exactly its mono output in each. Input of any length works: shorter than one window, the
signal is zero-padded to one window and the outputs keep the input's length.

Bookkeeping is in global indices: sample s, STFT frame t (centred at t * hop), in
`dsp.spectral_buffer` buffers sized from the batch of windows and a decoding block
(`BLOCK_ROOM_SAMPLES`); a larger block (`separate` passes the whole signal) grows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import OptionError
from clipsep_rt.dsp.block_spectral import MASK_MODES, BlockFrontEnd, apply_real_masks
from clipsep_rt.dsp.presence import GateOptions, PresenceGate, PresenceTimeline, frame_energies
from clipsep_rt.dsp.samples import float_samples
from clipsep_rt.dsp.spectral_buffer import SlidingBuffer, SpectralBuffer
from clipsep_rt.runtime.engines.protocol import Engine, PreparedQueries
from clipsep_rt.dsp.windowing import crossfade_weights, window_starts


# Windows per network call when not given: 4 is near the best in the CPU benchmark; 16 on CUDA
# is not yet measured (no GPU run so far), only chosen to fill a GPU better than 4.
CPU_BATCH, CUDA_BATCH = 4, 16
# The most windows per network call: the memory budget of a call. Measured with the whole
# `clipsep-rt` process (benchmarks/batch_memory.py, bundled model, onnxruntime, CPU): peak
# 0.59 GB with 4 windows a call and 1.12 GB with 16, the same for 5- and 15-minute files;
# with 64 it was 2.5 GB at 5 minutes and 4.1 GB at 15 (the allocators' reuse breaks down),
# so 16 is the bound at which memory was measured flat in the file's length.
MAX_BATCH_WINDOWS = 16
# Input blocks up to this many samples fit the preallocated buffers (the file jobs decode
# 65,536 at a time); a larger one grows them once.
BLOCK_ROOM_SAMPLES = 1 << 16


@dataclass(frozen=True)
class WindowingOptions:
    overlap_frames: int = 64  # crossfade length between neighbouring windows (1 s)
    batch_windows: int | None = None  # windows per network call, at most MAX_BATCH_WINDOWS; None: CPU_BATCH, or CUDA_BATCH on CUDA
    mask: str = "soft"  # "soft" or "binary"

    def __post_init__(self) -> None:
        if self.mask not in MASK_MODES:
            raise OptionError("mask", f"must be one of {', '.join(MASK_MODES)}, got {self.mask!r}")
        if self.batch_windows is not None and not 1 <= self.batch_windows <= MAX_BATCH_WINDOWS:
            raise OptionError("batch_windows", f"must be 1 to {MAX_BATCH_WINDOWS} network windows per call (memory "
                                               f"grows with it), got {self.batch_windows}")


class OfflineSeparator:
    """Masks a mixture with one row of outputs per head vector (and an optional union row)."""

    def __init__(self, engine: Engine, spectral: SpectralConfig = SpectralConfig(), options: WindowingOptions = WindowingOptions()):
        self.engine = engine
        self.spectral = spectral
        self.options = options
        self.front_end = BlockFrontEnd(spectral)
        self.window = spectral.window_frames
        if not 0 <= options.overlap_frames <= self.window // 2:  # the window size bounds it: checked here
            raise OptionError(
                "overlap_frames", f"must be between 0 and {self.window // 2} frames, got {options.overlap_frames}"
            )
        self.hop = self.window - options.overlap_frames
        self.weights = crossfade_weights(self.window, options.overlap_frames)  # (W,)
        self.batch_windows = options.batch_windows or (CUDA_BATCH if engine.device.startswith("cuda") else CPU_BATCH)

    def separate(self, mixture: np.ndarray, queries: PreparedQueries, union_rows: list[int] | None = None,
                 presence: PresenceTimeline | None = None, presence_rows: Mapping[int, str] | None = None,
                 gate: GateOptions | None = None) -> np.ndarray:
        """(n,) or (n, C) float32 mixture, queries prepared by the engine -> (rows [+1 union], n)
        or (rows [+1 union], n, C) float32. `presence`, `presence_rows`, `gate`: as `separate_blocks`."""
        mixture = np.asarray(mixture, dtype=np.float32)
        channels = None if mixture.ndim == 1 else mixture.shape[1]
        outputs = [out for _, out in self.separate_blocks([mixture], queries, union_rows, channels=channels,
                                                          presence=presence, presence_rows=presence_rows, gate=gate)]
        return np.concatenate(outputs, axis=1)

    def separate_blocks(
        self,
        blocks: Iterable[np.ndarray],
        queries: PreparedQueries,
        union_rows: list[int] | None = None,
        on_progress: Callable[[int], None] | None = None,
        channels: int | None = None,
        presence: PresenceTimeline | None = None,
        presence_rows: Mapping[int, str] | None = None,
        gate: GateOptions | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields (mixture, outputs) blocks covering the input in order, at least one (empty
        for an empty input).

        `channels=None`: blocks are mono (m,); they yield a (m,) mixture and (K [+1], m)
        outputs. `channels=C`: blocks are (m, C); they yield (m, C) and (K [+1], m, C).
        `union_rows` adds a last output row masked by the union (max) of those rows' masks.
        `on_progress` is called with the number of input samples consumed so far.
        `presence` collects the per-second presence of the rows `presence_rows` names (row -> name);
        `gate` fades each row's output to silence where its presence score says absent
        (`dsp.presence`; the union row follows the loudest gain of its rows).
        """
        scoring = _Presence(self.spectral, queries.rows, presence, presence_rows or {}, gate, union_rows)
        state = _BlockState(self, queries, union_rows, channels, scoring)
        for block in blocks:
            state.push(_channels_first(block, channels))
            if on_progress:
                on_progress(state.received)
            yield from state.run(final=False)
        yield from state.run(final=True)


def _channels_first(block: np.ndarray, channels: int | None) -> np.ndarray:
    """A (m,) mono block or a (m, C) one -> float32 (1, m) or (C, m); integer PCM scaled,
    NaN/Inf refused (`dsp.samples`)."""
    block = float_samples(block, "blocks")
    if channels is None:
        if block.ndim != 1:
            raise OptionError("blocks", f"mono blocks (channels=None) have shape (m,), got {block.shape}")
        return block[None]
    if block.ndim != 2 or block.shape[1] != channels:
        raise OptionError("blocks", f"expected blocks of shape (m, {channels}), got {block.shape}")
    return block.T


class _BlockState:
    """Buffers of one stream: samples, per-channel STFT frames, blended mask probabilities.

    All are held from the frame (or its first sample) that the oldest output sample still
    to come or the latest window start needs, whichever is earlier (`_trim`)."""

    def __init__(
        self, separator: OfflineSeparator, queries: PreparedQueries, union_rows: list[int] | None, channels: int | None,
        presence: _Presence,
    ):
        self.sep = separator
        self.presence = presence  # presence scores and the gate
        self.config = separator.spectral
        self.queries = queries
        self.union_rows = union_rows
        self.channels = channels  # None: mono blocks in and out
        hop = self.config.hop_length
        # Most frames held at once: a batch of windows, and the few before it kept for the output.
        frame_capacity = separator.batch_windows * separator.hop + separator.window + 2 * self.config.n_fft // hop
        self.spectrum = SpectralBuffer(  # samples (C, n) and per-channel STFT frames (C, 513, T)
            separator.front_end, (channels or 1,),
            sample_capacity=frame_capacity * hop + BLOCK_ROOM_SAMPLES, frame_capacity=frame_capacity,
        )
        self.blend = SlidingBuffer((queries.rows, self.config.log_freq_bins), np.float32, frame_capacity)  # (rows, 256, T) weighted masks
        self.weight_sum = SlidingBuffer((), np.float32, frame_capacity)  # (T,) the weights summed into blend
        self.latest_start = -1  # the latest window start processed (windows go in start order)
        self.emitted = 0  # global samples yielded so far

    @property
    def received(self) -> int:
        return self.spectrum.received

    def push(self, block: np.ndarray) -> None:
        """Append a (C, m) block."""
        self.spectrum.push(block)

    # -- windows ---------------------------------------------------------------------------

    def _ready_starts(self, final: bool) -> list[int]:
        hop_samples, half = self.config.hop_length, self.config.n_fft // 2
        if final:
            if not self.received:
                return []  # nothing to separate
            # The last window, moved left to end on the last frame, still starts after every
            # regular window processed so far.
            starts = window_starts(1 + self.received // hop_samples, self.sep.window, self.sep.hop)
            return [s for s in starts if s > self.latest_start]
        # Frame t needs samples up to t * hop + n_fft / 2 (exclusive).
        complete_frames = max(0, (self.received - half) // hop_samples + 1)
        first = self.latest_start + self.sep.hop if self.latest_start >= 0 else 0
        return list(range(first, complete_frames - self.sep.window + 1, self.sep.hop))

    def run(self, final: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        batch = self.sep.batch_windows
        pending = self._ready_starts(final)
        while len(pending) >= batch or (final and pending):
            self._process(pending[:batch], final)
            pending = pending[batch:]
            yield from self._emit(final=final and not pending)
        if final and self.emitted < self.received:
            yield from self._emit(final=True)
        if final and not self.received:  # an empty input: one empty block
            rows = self.queries.rows + (1 if self.union_rows else 0)
            empty = self.spectrum.samples.held()  # (C, 0)
            yield self._output(empty, np.zeros((rows, *empty.shape), np.float32))

    def _process(self, starts: list[int], final: bool) -> None:
        window = self.sep.window
        first, stop = min(starts), max(starts) + window
        end = (stop - 1) * self.config.hop_length + self.config.n_fft // 2  # the last frame's reach
        assert final or end <= self.received, "frame requested before its samples arrived"
        spec = self.spectrum.compute_frames(first, stop)  # (C, 513, stop - first); new frames kept
        mono = spec[0] if spec.shape[0] == 1 else spec.mean(axis=0)  # the downmix's STFT (STFT is linear)
        log_mag = self.sep.front_end.warped_log_magnitude(np.abs(mono))  # (256, stop - first)
        windows = np.stack([log_mag[:, s - first : s - first + window] for s in starts])[:, None]  # (B, 1, 256, W)
        probabilities = self.sep.engine.probabilities(windows, self.queries)  # (B, rows, 256, W)
        self.blend.extend_to(stop)  # frames not yet blended: zero weight so far
        self.weight_sum.extend_to(stop)
        for start, window_probs in zip(starts, probabilities):
            blend = self.blend.slice(start, start + window)  # (rows, 256, W), a view
            blend += window_probs * self.sep.weights
            weight_sum = self.weight_sum.slice(start, start + window)
            weight_sum += self.sep.weights
            self.latest_start = start

    # -- output ----------------------------------------------------------------------------

    def _emit(self, final: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        hop = self.config.hop_length
        if final:
            end = self.received
        else:
            # Frames before the latest window start get no more contributions; a sample
            # needs frames up to 2 ahead of it (n_fft = 4 hops).
            end = (self.latest_start - 2) * hop
        if end <= self.emitted:
            return
        front_end = self.sep.front_end
        first = front_end.istft_first_frame(self.emitted)
        known = self.spectrum.frames.stop
        stop = known if final else min(known, -(-end // hop) + 3)
        probability = self.blend.slice(first, stop) / self.weight_sum.slice(first, stop)  # (rows, 256, T)
        masks = front_end.linear_masks(probability, self.union_rows, self.sep.options.mask)  # (K, 513, T)
        frames = self.spectrum.frames.slice(first, stop)  # (C, 513, T)
        masks = self.presence.apply(masks, frames[0] if frames.shape[0] == 1 else frames.mean(axis=0), first)
        masked = apply_real_masks(self.spectrum.frames.slice(first, stop), masks[:, None])  # (K, C, 513, T)
        audio = front_end.istft_span(masked, first, self.emitted, end)  # (K, C, end - emitted)
        yield self._output(self.spectrum.samples.slice(self.emitted, end), audio)
        self.emitted = end
        self._trim()

    def _output(self, mixture: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C, m) mixture, (K, C, m) outputs -> the blocks' layout: (m,), (K, m) for mono
        blocks, else (m, C), (K, m, C)."""
        if self.channels is None:
            return mixture[0].copy(), audio[:, 0]
        return mixture.T.copy(), np.ascontiguousarray(audio.transpose(0, 2, 1))

    def _trim(self) -> None:
        """Drop samples and frames no future window or output needs."""
        hop, half = self.config.hop_length, self.config.n_fft // 2
        # The last window may be moved left onto the latest start, never further.
        keep_frame = min(self.sep.front_end.istft_first_frame(self.emitted), self.latest_start)
        self.spectrum.trim(keep_sample=min(self.emitted, keep_frame * hop - half), keep_frame=keep_frame)
        self.blend.trim(keep_frame)
        self.weight_sum.trim(keep_frame)
        self.presence.trim(keep_frame)


class _Presence:
    """A file's presence scores and gate gains, each frame scored once (emits overlap by a few
    frames): gains kept from the frame the next emit starts at."""

    def __init__(self, spectral: SpectralConfig, rows: int, timeline: PresenceTimeline | None,
                 names: Mapping[int, str], gate: GateOptions | None, union_rows: list[int] | None):
        self.timeline = timeline
        self.names = dict(names)
        self.gate = PresenceGate(gate, rows, spectral) if gate is not None else None
        self.union_rows = union_rows
        self.gains = SlidingBuffer((rows,), np.float32, 64)  # (rows, T) gains of the frames scored
        self.scored = 0  # frames scored so far

    def apply(self, masks: np.ndarray, mixture: np.ndarray, first: int) -> np.ndarray:
        """(K [+1], 513, T) masks of frames [first, first + T), the mono mixture's (513, T)
        STFT -> the masks, gated if the gate is on."""
        if self.timeline is None and self.gate is None:
            return masks
        rows, stop = self.gains.element_shape[0], first + masks.shape[-1]
        if stop > self.scored:
            new = slice(self.scored - first, None)
            passed, total = frame_energies(masks[:rows, :, new], mixture[:, new])  # (rows, n), (n,)
            if self.timeline is not None:
                self.timeline.add(self.scored, passed[list(self.names)], total, list(self.names.values()))
            if self.gate is not None:
                self.gains.append(self.gate.gains(passed, total))
            self.scored = stop
        if self.gate is None:
            return masks
        gains = self.gains.slice(first, stop)  # (rows, T)
        if self.union_rows:
            gains = np.concatenate([gains, gains[self.union_rows].max(axis=0, keepdims=True)])
        return masks * gains[:, None, :]

    def trim(self, keep_frame: int) -> None:
        self.gains.trim(min(keep_frame, self.gains.stop))
