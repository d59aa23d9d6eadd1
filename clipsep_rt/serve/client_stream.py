"""A stream at the client's rate and channel count: the protocol's blocks in and out.

A client sends interleaved float32 frames at its own rate R (8 to 192 kHz) with C channels
(1 to 8). `ClientStream.process` takes one such block, (n, C), and returns exactly n frames
per query, (Q, n, C), delayed by a fixed `latency_samples` at R:

- at the model rate (16 kHz) the block goes straight to the API's stream
  (`api.Separator.stream`, C channels kept: the network hears the downmix, each channel gets
  its masks, as in batch separation) and the latency is the stream's own;
- at another rate, soxr streaming resamplers (LQ, as live audio uses: about 5 ms each way)
  take the block to 16 kHz and each output row back to R. Their output is aligned with
  their input, but they hold back a varying number of samples; an output FIFO primed with
  `holdback` frames of silence absorbs that, so the delay is fixed:
  latency_samples = holdback + round(stream latency x R / 16000).
  Should the FIFO ever run short (a resampler holding back more than measured), the missing
  frames are sent silent and as many later frames are dropped, so alignment comes back;
  `short_frames` counts them.

Output rows are the current queries in order: after a switch, a row the stream has not
grown yet is silent, and rows of removed queries fading out are not sent.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

from clipsep_rt.runtime.live.buffers import RESAMPLE_QUALITY, chain_held_back
from clipsep_rt.runtime.streaming import StreamingSeparator

HOLDBACK_PROBE_S = 1.0  # silence run through fresh resamplers to find their holdback
HOLDBACK_PROBE_BLOCK = 32  # frames per probe chunk: small chunks are held back the most
HOLDBACK_MARGIN_S = 0.002  # added to the measured holdback: the FIFO's silence at the start


def resampling_holdback(rate: int, model_rate: int, quality: str = RESAMPLE_QUALITY) -> int:
    """The most frames at `rate` that the chain rate -> model rate -> rate holds back, over
    one second of small chunks through fresh resamplers, plus a margin (LQ at 48 kHz: about
    40 ms, at 44.1 kHz about 25 ms; none at the model rate)."""
    if rate == model_rate:
        return 0
    held = chain_held_back(rate, model_rate, rate, HOLDBACK_PROBE_BLOCK,
                           math.ceil(HOLDBACK_PROBE_S * rate / HOLDBACK_PROBE_BLOCK), quality)
    return max(0, round(max(held))) + math.ceil(HOLDBACK_MARGIN_S * rate)


class ClientStream:
    """(n, C) float32 frames at `rate` in -> (Q, n, C) float32 out, `latency_samples` late.

    `stream`: an API stream at the model rate, made with channels=None for C = 1 and
    channels=C otherwise. `max_rows`: the most queries a switch may bring (the output
    resampler carries that many rows from the start, so a new row stays in time)."""

    def __init__(self, stream: StreamingSeparator, rate: int, channels: int, queries: int, max_rows: int):
        self.stream = stream
        self.rate = rate
        self.channels = channels
        self.queries = queries  # output rows sent: the current queries
        self.max_rows = max(max_rows, queries)
        model_rate = stream.sample_rate
        self.resampling = rate != model_rate
        self.holdback = resampling_holdback(rate, model_rate)
        self.latency_samples = self.holdback + round(stream.latency_samples * rate / model_rate)
        self.short_frames = 0  # output frames sent silent because the FIFO ran short
        self._owed = 0  # frames to drop from the FIFO to make up for those
        if self.resampling:
            self._down = soxr.ResampleStream(rate, model_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
            self._up = soxr.ResampleStream(model_rate, rate, self.max_rows * channels, dtype="float32",
                                           quality=RESAMPLE_QUALITY)
            self._fifo = np.zeros((self.holdback, self.max_rows * channels), np.float32)  # (frames, rows x C) at rate

    @property
    def latency_ms(self) -> float:
        return 1000 * self.latency_samples / self.rate

    def process(self, frames: np.ndarray) -> np.ndarray:
        """(n, C) float32 at `rate` -> (queries, n, C) float32, `latency_samples` late."""
        n = len(frames)
        if not self.resampling:
            return self._rows(self._separate(frames), self.queries)
        model_frames = self._down.resample_chunk(frames)  # (m, C) at the model rate
        separated = self._rows(self._separate(model_frames), self.max_rows)  # (max_rows, m, C)
        stacked = separated.transpose(1, 0, 2).reshape(len(model_frames), self.max_rows * self.channels)
        self._fifo = np.concatenate([self._fifo, self._up.resample_chunk(stacked)])
        if self._owed:
            dropped = min(self._owed, len(self._fifo))
            self._fifo, self._owed = self._fifo[dropped:], self._owed - dropped
        out, self._fifo = self._fifo[:n], self._fifo[n:]
        if len(out) < n:  # the resamplers held back more than measured: silence now, dropped later
            self.short_frames += n - len(out)
            self._owed += n - len(out)
            out = np.concatenate([np.zeros((n - len(out), out.shape[1]), np.float32), out])
        return np.ascontiguousarray(out.reshape(n, self.max_rows, self.channels).transpose(1, 0, 2)[: self.queries])

    def flush(self) -> np.ndarray:
        """(queries, latency_samples, C): what is still inside after the last block (silence processed)."""
        return self.process(np.zeros((self.latency_samples, self.channels), np.float32))

    def set_queries(self, queries, count: int) -> None:
        """Switch the stream's queries (texts or prepared `Queries`) to `count` output rows."""
        if count > self.max_rows:
            raise ValueError(f"{count} queries: this stream carries at most {self.max_rows}")
        self.stream.set_queries(queries)
        self.queries = count

    def _separate(self, frames: np.ndarray) -> np.ndarray:
        """(m, C) at the model rate -> (rows, m, C) from the API stream (rows: its current rows)."""
        if not len(frames):
            return np.zeros((self.stream.queries.rows, 0, self.channels), np.float32)
        if self.channels == 1:
            return self.stream.process(frames[:, 0])[:, :, None]
        return self.stream.process(frames)

    @staticmethod
    def _rows(separated: np.ndarray, rows: int) -> np.ndarray:
        """(r, m, C) -> (rows, m, C): extra rows cut, missing ones silent."""
        if len(separated) >= rows:
            return separated[:rows]
        missing = np.zeros((rows - len(separated), *separated.shape[1:]), np.float32)
        return np.concatenate([separated, missing])
