"""Separated tracks at the rate the user wants, usually the input's own.

The separator works at 16 kHz. Selections (and noise heads) are resampled to the output
rate; residuals are computed there against the input decoded at that rate, so that
selection + residual equals the input exactly, content above 8 kHz included.

Inputs reach the model rate through `resample` (arrays) or `media`'s block decoder (files):
a non-empty signal gives at least one sample there (`one_sample`), where soxr, which rounds
the length, would give none (one sample at 44.1 kHz, two at 192 kHz).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import soxr

RESAMPLE_QUALITY = "HQ"  # soxr quality of every resampling: decoding (media), outputs, the API's arrays


def resample(samples: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Whole (n,) or (n, C) float32 samples at another rate: round(n * to_rate / from_rate)
    samples, and one when that rounds to none (`one_sample`) while `samples` has some."""
    if from_rate == to_rate:
        return samples
    converted = soxr.resample(np.ascontiguousarray(samples), from_rate, to_rate, quality=RESAMPLE_QUALITY)
    if len(converted) or not len(samples):
        return converted.astype(np.float32, copy=False)
    return one_sample(samples, from_rate, to_rate)


def one_sample(samples: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """The first sample at `to_rate` of a signal too short to give one by rounding (fewer than
    from_rate / to_rate frames): the signal, made one `to_rate` sample period long with
    silence, resampled. (n,) -> (1,), (n, C) -> (1, C) float32."""
    period = math.ceil(from_rate / to_rate)
    padded = np.zeros((max(period, len(samples)), *samples.shape[1:]), dtype=np.float32)
    padded[: len(samples)] = samples
    return soxr.resample(padded, from_rate, to_rate, quality=RESAMPLE_QUALITY)[:1].astype(np.float32, copy=False)


class OutputRateConverter:
    """Turns 16 kHz (mixture, outputs) blocks into output-rate (mixture, outputs) blocks.

    Mono blocks are a (m,) mixture and (K, m) outputs; C-channel blocks a (m, C) mixture and
    (K, m, C) outputs, each channel resampled on its own. `native_mixture` yields the input at
    `out_rate` in the same layout (float32 blocks of any size); it is only read when the rates
    differ. All outputs end with exactly the native length: a native tail the model-rate
    blocks do not reach (a very short input can have no samples at 16 kHz) gets silent outputs.
    """

    def __init__(self, model_rate: int, out_rate: int, native_mixture: Iterator[np.ndarray] | None):
        self.identity = model_rate == out_rate
        self.model_rate, self.out_rate = model_rate, out_rate
        self.native = native_mixture
        self.pending: np.ndarray | None = None  # native samples not yet paired with output
        self.resamplers: list[soxr.ResampleStream] = []

    def convert(self, mixture: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m[, C]) mixture, (K, m[, C]) outputs at the model rate -> (k[, C]), (K, k[, C]) at the output rate."""
        if self.identity:
            return mixture, outputs
        if not self.resamplers:
            channels = 1 if mixture.ndim == 1 else mixture.shape[1]
            self.pending = mixture[:0]
            self.resamplers = [
                soxr.ResampleStream(self.model_rate, self.out_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
                for _ in outputs
            ]
        converted = np.stack([r.resample_chunk(row) for r, row in zip(self.resamplers, outputs)])
        native = self._native(converted.shape[1])
        return native, converted[:, : len(native)]  # shorter only past the input's end

    def finish(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The tail: flushed resamplers, padded or cut to the native length."""
        if self.identity or not self.resamplers:
            return None
        tail = np.stack([r.resample_chunk(self.pending[:0], last=True) for r in self.resamplers])
        for block in self.native:
            self.pending = np.concatenate([self.pending, block])
        remaining = len(self.pending)
        if tail.shape[1] < remaining:
            tail = np.pad(tail, [(0, 0), (0, remaining - tail.shape[1])] + [(0, 0)] * (tail.ndim - 2))
        return self._native(remaining), tail[:, :remaining]

    def _native(self, count: int) -> np.ndarray:
        """The next `count` native samples (fewer only if the input ended)."""
        while len(self.pending) < count:
            block = next(self.native, None)
            if block is None:
                break
            self.pending = np.concatenate([self.pending, block])
        taken, self.pending = self.pending[:count], self.pending[count:]
        return taken
