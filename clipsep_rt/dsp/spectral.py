"""Training's spectral front end in torch: the STFT of whole batches and the log-frequency warp.

Plain torch, so it runs on whatever device the training tensors live on. The warp matrices
come from `warp` (numpy, shared with the runtime's front end, `block_spectral`, which
separation runs on).
"""

from __future__ import annotations

import torch

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.warp import MAG_EPS, log_warp_matrix


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


class SpectralFrontEnd(torch.nn.Module):
    """Holds the window and the warp matrix as buffers so `.to(device)` moves them together."""

    def __init__(self, config: SpectralConfig = SpectralConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("window", hann_window(config), persistent=False)
        self.register_buffer("warp", torch.from_numpy(log_warp_matrix(config)).float(), persistent=False)

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """(..., n) -> complex (..., 513, frames)."""
        return stft(wav, self.config, self.window.to(wav.dtype))

    def warped_log_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Network input: log of the magnitude warped onto the log-frequency grid.

        magnitude: (..., 513, T) -> (..., 256, T).
        """
        warped = torch.matmul(self.warp.to(magnitude.dtype), magnitude + MAG_EPS)
        return torch.log(warped)
