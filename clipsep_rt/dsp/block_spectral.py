"""The runtime's spectral front end in numpy: STFT/iSTFT of a signal held in pieces, the
log-frequency warp, and masking.

Batch and streaming separation run their frame loops on this, so a separation through ONNX
Runtime needs no torch at all (the engine is the only part that may use it). Its numbers are
those of `torch.stft` / `torch.istft` (centred, zero-padded, periodic Hann window,
window-envelope normalisation) to float rounding; `tests/test_block_spectral.py` holds it
to them and to training's torch front end (`spectral`).

Global indices throughout: sample s, frame t centred at t * hop; frame t reaches n_fft / 2
samples either side of its centre.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.warp import MAG_EPS, inverse_log_warp_matrix, log_warp_matrix

MASK_MODES = ("soft", "binary")
ENVELOPE_FLOOR = 1e-11  # torch.istft's bound on the summed squared window
MAX_CACHED_ENVELOPES = 64  # frame counts whose istft envelope is kept (streams use a few; files one per block size)
_BLAS_LIMIT = threading.Lock()  # threadpoolctl's limit is process-wide: one thread sets and restores it at a time


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` on one BLAS thread. numpy's OpenBLAS threads spin on after each call and take
    the cores from the network's threads: on 2 cores the bundled model's offline speed fell
    from 190x to 79x real time (torch bf16) with them; the warps are small enough for one."""
    with _BLAS_LIMIT, _blas().limit(limits=1, user_api="blas"):
        return np.matmul(a, b)


class BlockFrontEnd:
    """The window and warp matrices of one `SpectralConfig`, and the block-wise transforms."""

    def __init__(self, config: SpectralConfig = SpectralConfig()):
        if config.win_length != config.n_fft or config.n_fft % config.hop_length:
            raise ValueError(
                f"the block front end needs win_length == n_fft and n_fft a multiple of hop_length, got {config}"
            )
        self.config = config
        n = np.arange(config.n_fft)
        self.window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.n_fft)).astype(np.float32)  # periodic Hann
        self.warp = log_warp_matrix(config).astype(np.float32)  # (256, 513)
        self.unwarp = inverse_log_warp_matrix(config).astype(np.float32)  # (513, 256)
        self._envelopes: dict[int, np.ndarray] = {}  # frame count -> summed squared window (istft)

    def stft(self, samples: np.ndarray) -> np.ndarray:
        """The whole centred STFT of a signal: (..., n) float32 -> complex64 (..., 513, 1 + n // hop)."""
        return self.stft_frames(samples, 0, 0, 1 + samples.shape[-1] // self.config.hop_length)

    def stft_frames(self, samples: np.ndarray, sample_base: int, first: int, stop: int) -> np.ndarray:
        """Frames [first, stop) of the centred, zero-padded STFT of a signal held in pieces.

        samples: (..., n) float32, global samples [sample_base, sample_base + n); samples
        outside it count as zeros (the centre padding before sample 0 and after the signal's
        end) -> complex64 (..., 513, stop - first), not contiguous: `stft(signal)[..., first:stop]` when
        `samples` holds every sample of the signal those frames reach.
        """
        hop, half = self.config.hop_length, self.config.n_fft // 2
        begin, end = first * hop - half, (stop - 1) * hop + half
        lo, hi = max(begin, sample_base), min(end, sample_base + samples.shape[-1])
        if (lo, hi) == (begin, end):  # all held (a stream past its start): frame the samples in place
            segment = samples[..., begin - sample_base : end - sample_base]
        else:  # the centre padding, or a signal's end: zeros around what is held
            segment = np.zeros((*samples.shape[:-1], end - begin), dtype=np.float32)
            if hi > lo:
                segment[..., lo - begin : hi - begin] = samples[..., lo - sample_base : hi - sample_base]
        frames = sliding_window_view(segment, self.config.n_fft, axis=-1)[..., ::hop, :]  # (..., T, n_fft)
        # numpy's FFT, not scipy's: scipy.fft is ~2x faster (2 cores, 7,500 frames: 76 -> 42 ms)
        # but takes 0.15 s to import, more than it saves on files shorter than minutes.
        spec = np.fft.rfft(frames * self.window, axis=-1)  # (..., T, 513)
        return np.swapaxes(spec, -1, -2)  # a view: transposing 7,500 frames would cost as much as the FFT

    def istft(self, spec: np.ndarray, length: int) -> np.ndarray:
        """Inverse of the centred STFT, exactly `length` samples (as `torch.istft(center=True)`).

        spec: complex (..., 513, T) -> float32 (..., length).
        """
        n_fft = self.config.n_fft
        frames_count = spec.shape[-1]
        frames = np.fft.irfft(np.swapaxes(spec, -1, -2), n=n_fft, axis=-1)
        frames = frames.astype(np.float32, copy=False)
        frames *= self.window  # (..., T, n_fft)
        signal = self._overlap_add(frames)
        half = n_fft // 2
        signal, envelope = signal[..., half : half + length], self._envelope(frames_count)[half : half + length]
        if np.any(envelope <= ENVELOPE_FLOOR):
            raise ValueError("iSTFT window envelope vanishes: the frames do not cover the samples asked for")
        out = signal / envelope
        if out.shape[-1] < length:  # past the last frame's reach: silence, as torch pads
            out = np.concatenate([out, np.zeros((*out.shape[:-1], length - out.shape[-1]), np.float32)], axis=-1)
        return out

    def _envelope(self, frames_count: int) -> np.ndarray:
        """The summed squared window of `frames_count` frames, (frames_count - 1) * hop + n_fft;
        computed once per count (a stream asks for the same few counts every hop)."""
        envelope = self._envelopes.get(frames_count)
        if envelope is None:
            envelope = self._overlap_add(np.broadcast_to(self.window**2, (frames_count, self.config.n_fft)))
            envelope.flags.writeable = False
            if len(self._envelopes) < MAX_CACHED_ENVELOPES:
                self._envelopes[frames_count] = envelope
        return envelope

    def _overlap_add(self, frames: np.ndarray) -> np.ndarray:
        """(..., T, n_fft) frames, one hop apart -> (..., (T - 1) * hop + n_fft) summed."""
        hop = self.config.hop_length
        parts = self.config.n_fft // hop
        count = frames.shape[-2]
        pieces = frames.reshape(*frames.shape[:-1], parts, hop)  # (..., T, parts, hop)
        out = np.zeros((*frames.shape[:-2], count + parts - 1, hop), dtype=np.float32)
        for part in range(parts):
            out[..., part : part + count, :] += pieces[..., part, :]
        return out.reshape(*out.shape[:-2], -1)

    def istft_first_frame(self, sample: int) -> int:
        """A first frame from which `istft_span` gives exact samples from global `sample` on."""
        reach = -(-self.config.n_fft // (2 * self.config.hop_length))  # hops a frame reaches either side
        return max(0, sample // self.config.hop_length - reach)

    def istft_span(self, spec: np.ndarray, first_frame: int, start: int, end: int) -> np.ndarray:
        """Global samples [start, end) of the iSTFT of frames from global `first_frame` on.

        spec: complex (..., 513, frames), its frame 0 being global frame `first_frame` (at most
        `istft_first_frame(start)`), holding every frame that reaches a sample before `end`
        -> float32 (..., end - start).
        """
        offset = first_frame * self.config.hop_length
        return self.istft(spec, length=end - offset)[..., start - offset :]

    def warped_log_magnitude(self, magnitude: np.ndarray) -> np.ndarray:
        """Network input: log of the magnitude warped onto the log-frequency grid.

        magnitude: float32 (..., 513, T) -> float32 (..., 256, T).
        """
        return np.log(_matmul(self.warp, magnitude + np.float32(MAG_EPS)))

    def linear_masks(self, probability: np.ndarray, union_rows: list[int] | None = None, mode: str = "soft") -> np.ndarray:
        """Masks on the linear STFT grid from probabilities on the log grid, as the original does.

        probability: float32 (K, 256, T) sigmoid of the mask logits -> (K [+1], 513, T). The
        optional extra row is the union (max) of the `union_rows` masks. `binary` thresholds
        each linear-grid probability at 0.5 (the original's default), after the union.
        """
        if mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
        masks = _matmul(self.unwarp, probability)
        if union_rows:
            masks = np.concatenate([masks, masks[union_rows].max(axis=0, keepdims=True)])
        if mode == "binary":
            return (masks > 0.5).astype(np.float32)
        return masks


def apply_real_masks(spec: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The mixture STFT under each mask: complex64 (513, T) x float32 (K, 513, T) -> complex64 (K, 513, T).

    Shapes broadcast as in `spec * masks`: per-channel spectra (C, 513, T) under masks
    (K, 1, 513, T) give (K, C, 513, T). A real mask scales real and imaginary parts alike:
    cheaper than a complex product.
    """
    pairs = np.ascontiguousarray(spec, dtype=np.complex64).view(np.float32).reshape(*spec.shape, 2)
    masks = np.asarray(masks, dtype=np.float32)  # a float64 product would not view as complex64
    return np.ascontiguousarray(pairs * masks[..., None]).view(np.complex64)[..., 0]
