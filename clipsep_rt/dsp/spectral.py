"""Spectral front end of CLIPSep: STFT/iSTFT (whole or block-wise), the log-frequency warp, and masking.

Everything here is plain torch so it runs on whatever device the tensors live on.
The log-frequency warp is a fixed interpolation along frequency only; the original
implementation computes it with `grid_sample(align_corners=True)`, here it is the
equivalent precomputed (out_bins, in_bins) matrix, so warping is one matmul.
"""

from __future__ import annotations

import math

import torch

from clipsep_rt.config import SpectralConfig

MAG_EPS = 1e-10  # added to the magnitude before the log, as the original does


def hann_window(config: SpectralConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """Periodic Hann window of `win_length` samples (librosa's and torch's default)."""
    return torch.hann_window(config.win_length, periodic=True, device=device, dtype=dtype)


def stft(wav: torch.Tensor, config: SpectralConfig, window: torch.Tensor | None = None) -> torch.Tensor:
    """Centred, zero-padded STFT.

    wav: (..., n) float -> complex (..., n_fft // 2 + 1, 1 + n // hop).
    """
    if window is None:
        window = hann_window(config, wav.device, wav.dtype)
    batch_shape = wav.shape[:-1]
    spec = torch.stft(
        wav.reshape(-1, wav.shape[-1]),
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.reshape(*batch_shape, *spec.shape[-2:])


def istft(
    spec: torch.Tensor, length: int, config: SpectralConfig, window: torch.Tensor | None = None
) -> torch.Tensor:
    """Inverse of `stft`, returning exactly `length` samples.

    spec: complex (..., n_fft // 2 + 1, frames) -> (..., length).
    """
    if window is None:
        window = hann_window(config, spec.device, spec.real.dtype)
    batch_shape = spec.shape[:-2]
    wav = torch.istft(
        spec.reshape(-1, *spec.shape[-2:]),
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
        length=length,
    )
    return wav.reshape(*batch_shape, length)


def _interpolation_matrix(source_coords: torch.Tensor, num_source: int) -> torch.Tensor:
    """Linear interpolation weights: row i samples the source at (fractional) index coords[i].

    Matches bilinear grid_sample with zero padding: taps outside [0, num_source) contribute 0.
    Returns (len(coords), num_source) float64.
    """
    lower = torch.floor(source_coords)
    frac = source_coords - lower
    matrix = torch.zeros(len(source_coords), num_source, dtype=torch.float64)
    rows = torch.arange(len(source_coords))
    for index, weight in ((lower, 1.0 - frac), (lower + 1.0, frac)):
        inside = (index >= 0) & (index <= num_source - 1)
        matrix[rows[inside], index[inside].long()] += weight[inside]
    return matrix


def log_warp_matrix(config: SpectralConfig) -> torch.Tensor:
    """(log_freq_bins, linear_freq_bins) float64: linear STFT bins -> log-spaced bins.

    Output row i samples normalised frequency y = (21 ** ((v + 1) / 2) - 11) / 10 with
    v = linspace(-1, 1, log_freq_bins)[i]: a log scale from DC to Nyquist.
    """
    v = torch.linspace(-1.0, 1.0, config.log_freq_bins, dtype=torch.float64)
    y = (21.0 ** ((v + 1.0) / 2.0) - 11.0) / 10.0
    coords = (y + 1.0) / 2.0 * (config.linear_freq_bins - 1)
    return _interpolation_matrix(coords, config.linear_freq_bins)


def inverse_log_warp_matrix(config: SpectralConfig) -> torch.Tensor:
    """(linear_freq_bins, log_freq_bins) float64: log-spaced bins -> linear STFT bins.

    Row i samples y = log(v * 10 + 11) / log(21) * 2 - 1 with v = linspace(-1, 1, linear)[i].
    """
    v = torch.linspace(-1.0, 1.0, config.linear_freq_bins, dtype=torch.float64)
    y = torch.log(v * 10.0 + 11.0) / math.log(21.0) * 2.0 - 1.0
    coords = (y + 1.0) / 2.0 * (config.log_freq_bins - 1)
    return _interpolation_matrix(coords, config.log_freq_bins)


class SpectralFrontEnd(torch.nn.Module):
    """Holds the window and warp matrices as buffers so `.to(device)` moves them together."""

    def __init__(self, config: SpectralConfig = SpectralConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("window", hann_window(config), persistent=False)
        self.register_buffer("warp", log_warp_matrix(config).float(), persistent=False)
        self.register_buffer("unwarp", inverse_log_warp_matrix(config).float(), persistent=False)

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """(..., n) -> complex (..., 513, frames)."""
        return stft(wav, self.config, self.window.to(wav.dtype))

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex (..., 513, frames) -> (..., length)."""
        return istft(spec, length, self.config, self.window.to(spec.real.dtype))

    # Block-wise processing of a long signal, in global indices: sample s, frame t centred at
    # t * hop. Frame t reaches n_fft / 2 samples either side of its centre.

    def stft_frames(self, samples: torch.Tensor, sample_base: int, first: int, stop: int) -> torch.Tensor:
        """Frames [first, stop) of the centred, zero-padded STFT of a signal held in pieces.

        samples: (..., n) float32 on the CPU (e.g. (n,), or (C, n) for C channels), global
        samples [sample_base, sample_base + n); samples outside it count as zeros (the centre
        padding before sample 0 and after the signal's end) -> complex (..., 513, stop - first)
        on the window's device: `stft(signal)[..., first:stop]` when `samples` holds every
        sample of the signal those frames reach.
        """
        hop, half = self.config.hop_length, self.config.n_fft // 2
        begin, end = first * hop - half, (stop - 1) * hop + half
        segment = torch.zeros(*samples.shape[:-1], end - begin)
        lo, hi = max(begin, sample_base), min(end, sample_base + samples.shape[-1])
        segment[..., lo - begin : hi - begin] = samples[..., lo - sample_base : hi - sample_base]
        spec = torch.stft(
            segment.reshape(-1, end - begin).to(self.window.device),
            n_fft=self.config.n_fft,
            hop_length=hop,
            win_length=self.config.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        return spec.reshape(*samples.shape[:-1], *spec.shape[-2:])

    def istft_first_frame(self, sample: int) -> int:
        """A first frame from which `istft_span` gives exact samples from global `sample` on."""
        reach = -(-self.config.n_fft // (2 * self.config.hop_length))  # hops a frame reaches either side
        return max(0, sample // self.config.hop_length - reach)

    def istft_span(self, spec: torch.Tensor, first_frame: int, start: int, end: int) -> torch.Tensor:
        """Global samples [start, end) of the iSTFT of frames from global `first_frame` on.

        spec: complex (..., 513, frames), its frame 0 being global frame `first_frame` (at most
        `istft_first_frame(start)`), holding every frame that reaches a sample before `end`
        -> (..., end - start).
        """
        offset = first_frame * self.config.hop_length
        return self.istft(spec, length=end - offset)[..., start - offset :]

    def warped_log_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Network input: log of the magnitude warped onto the log-frequency grid.

        magnitude: (..., 513, T) -> (..., 256, T).
        """
        warped = torch.matmul(self.warp.to(magnitude.dtype), magnitude + MAG_EPS)
        return torch.log(warped)

    def linear_masks(
        self, probability: torch.Tensor, union_rows: list[int] | None = None, mode: str = "soft"
    ) -> torch.Tensor:
        """(K, 256, T) log-grid probabilities -> (K [+1 union], 513, T) linear-grid masks."""
        return linear_masks(probability, self.unwarp, union_rows, mode)


MASK_MODES = ("soft", "binary")


def linear_masks(
    probability: torch.Tensor, unwarp: torch.Tensor, union_rows: list[int] | None = None, mode: str = "soft"
) -> torch.Tensor:
    """Masks on the linear STFT grid from probabilities on the log grid, as the original does.

    probability: (K, 256, T) sigmoid of the mask logits -> (K [+1], 513, T). The optional
    extra row is the union (max) of the `union_rows` masks. `binary` thresholds each
    linear-grid probability at 0.5 (the original's default), after the union.
    """
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    masks = torch.matmul(unwarp.to(probability.dtype), probability)
    if union_rows:
        masks = torch.cat([masks, masks[union_rows].amax(dim=0, keepdim=True)])
    if mode == "binary":
        return (masks > 0.5).to(masks.dtype)
    return masks


def apply_real_masks(spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The mixture STFT under each mask: complex (513, T) x real (K, 513, T) -> complex (K, 513, T).

    Shapes broadcast as in `spec * masks`: per-channel spectra (C, 513, T) under masks
    (K, 1, 513, T) give (K, C, 513, T). A real mask scales real and imaginary parts alike:
    cheaper than a complex product.
    """
    return torch.view_as_complex(torch.view_as_real(spec) * masks[..., None])
