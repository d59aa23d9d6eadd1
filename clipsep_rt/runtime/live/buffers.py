"""Buffers between the live worker and the devices: the playback jitter buffer, and a
streaming resampler that tracks what it holds back (and how bursty a chain of them is)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
import soxr

RESAMPLE_QUALITY = "LQ"  # soxr: 5 ms delay each way and steady output; HQ adds about 19 ms each way


class PlaybackBuffer:
    """Output-rate audio between the worker (`push`) and the output callback (`pull`).

    Playback starts once `target` samples are waiting (the jitter buffer that covers a slow
    network step). A pull that finds too little plays silence and counts an underflow; the
    missing samples are remembered and discarded from the next pushes, so the latency stays
    what it was when playback began. More than `high_water` samples, plus two of the largest
    device blocks, waiting (clock drift) are trimmed to `target`.
    """

    def __init__(self, target: int, high_water: int | None = None):
        self.target = max(0, int(target))
        self.high_water = max(self.target, int(high_water if high_water is not None else 2 * self.target))
        self._chunks: deque[np.ndarray] = deque()
        self._offset = 0  # samples of _chunks[0] already played
        self._level = 0
        self._lock = threading.Lock()
        self.primed = False
        self.deficit = 0  # samples played as silence and still to be discarded when they arrive
        self.underflows = 0
        self.underflow_samples = 0
        self.trimmed_samples = 0
        self.late_samples = 0  # arrived after their time and were discarded
        self.primed_level: int | None = None  # samples waiting when playback began: the real buffer
        self._largest_pull = 0

    @property
    def level(self) -> int:
        return self._level

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        with self._lock:
            if self.deficit:
                late = min(self.deficit, len(samples))
                self.deficit -= late
                self.late_samples += late
                samples = samples[late:]
            if len(samples):
                self._chunks.append(samples)
                self._level += len(samples)
            if self._level > self.high_water + 2 * self._largest_pull:  # a device block may be waiting too
                excess = self._level - self.target
                self._discard(excess)
                self.trimmed_samples += excess

    def pull(self, frames: int) -> np.ndarray:
        """`frames` samples for the device: silence until primed, then the buffer (silence if dry)."""
        out = np.zeros(frames, dtype=np.float32)
        with self._lock:
            self._largest_pull = max(self._largest_pull, frames)
            if not self.primed:
                if self._level < max(1, self.target):
                    return out
                self.primed = True
                self.primed_level = self._level
            filled = 0
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk) - self._offset)
                out[filled : filled + take] = chunk[self._offset : self._offset + take]
                filled += take
                self._consume_head(take)
            if filled < frames:
                self.underflows += 1
                self.underflow_samples += frames - filled
                self.deficit += frames - filled
        return out

    def _discard(self, count: int) -> None:
        while count > 0 and self._chunks:
            take = min(count, len(self._chunks[0]) - self._offset)
            self._consume_head(take)
            count -= take

    def _consume_head(self, take: int) -> None:
        self._offset += take
        self._level -= take
        if self._offset == len(self._chunks[0]):
            self._chunks.popleft()
            self._offset = 0


class StreamResampler:
    """A soxr.ResampleStream (mono float32) that keeps a running mean of the output it holds
    back. Its output is aligned with its input (sample 0 maps to sample 0); the samples held
    back until more input comes are its latency, which soxr's block processing makes vary."""

    def __init__(self, source: int, target: int, quality: str):
        self._stream = soxr.ResampleStream(source, target, 1, dtype="float32", quality=quality)
        self._ratio = target / source
        self._target = target
        self._fed = 0
        self._made = 0
        self._held: float | None = None  # output samples, running mean

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        out = self._stream.resample_chunk(np.asarray(samples, dtype=np.float32), last=last)
        self._fed += len(samples)
        self._made += len(out)
        if not last and len(samples):
            held = self._fed * self._ratio - self._made
            self._held = held if self._held is None else self._held + 0.02 * (held - self._held)
        return out

    @property
    def held_s(self) -> float:
        return (self._held or 0.0) / self._target


def chain_held_back(input_rate: int, rate: int, output_rate: int, chunk: int, chunks: int,
                    quality: str = RESAMPLE_QUALITY) -> list[float]:
    """The output samples the resampling chain input -> `rate` -> output holds back after each of
    `chunks` chunks of `chunk` input samples of silence through fresh resamplers (how far its
    output is behind its steady pace); [] where neither stage resamples."""
    stages = [StreamResampler(a, b, quality) for a, b in ((input_rate, rate), (rate, output_rate)) if a != b]
    if not stages:
        return []
    silence = np.zeros(chunk, dtype=np.float32)
    fed = made = 0
    held = []
    for _ in range(chunks):
        out = silence
        for stage in stages:
            out = stage(out)
        fed += chunk
        made += len(out)
        held.append(fed * output_rate / input_rate - made)
    return held


def resampling_jitter(input_rate: int, rate: int, output_rate: int, quality: str = RESAMPLE_QUALITY) -> float:
    """How much the output of the resampling chain (input -> model rate -> output rate) lags
    behind its steady pace at worst beyond at best, in seconds: soxr releases its output in
    blocks (about 19 ms at 48 kHz in LQ), and the playback buffer must cover that too.
    Found by running one second of 5 ms chunks through fresh resamplers."""
    chunk = max(1, round(0.005 * input_rate))
    held = chain_held_back(input_rate, rate, output_rate, chunk, input_rate // chunk, quality)
    if not held:
        return 0.0
    steady = held[len(held) // 4 :]
    return (max(steady) - min(steady)) / output_rate
