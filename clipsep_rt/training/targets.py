"""Training targets of mix-and-separate: warped magnitudes, binary masks, loss weights.

As in the released CLIPSep code (inherited from Sound-of-Pixels), all targets live on the
256-bin log-frequency grid: the linear STFT magnitudes of the mixture and of each source
are warped with the same matrix the network input uses (`spectral.log_warp_matrix`), then

- gt_masks = (mag_i > 0.5 * mag_mix)                 binary target of source i
- weight   = clamp(log1p(mag_mix), 1e-3, 10)          per-bin loss weight

Shapes: B batch items, S sources (2), F log-frequency bins (256), T frames.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from clipsep_rt.dsp.spectral import SpectralFrontEnd

MASK_THRESHOLD = 0.5  # source counts as dominant where mag_i > 0.5 * mag_mix
WEIGHT_MIN = 1e-3
WEIGHT_MAX = 10.0


def warp_magnitude(magnitude: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """Linear-grid magnitude (..., 513, T) -> log-grid magnitude (..., 256, T) (no log)."""
    return torch.matmul(warp.to(magnitude.dtype), magnitude)


def binary_masks(source_mags: torch.Tensor, mix_mag: torch.Tensor) -> torch.Tensor:
    """Binary target masks: 1 where source magnitude > 0.5 x mixture magnitude, else 0.

    source_mags: (B, S, F, T) warped; mix_mag: (B, F, T) warped -> (B, S, F, T) float {0, 1}.
    """
    return (source_mags > MASK_THRESHOLD * mix_mag.unsqueeze(1)).to(source_mags.dtype)


def loss_weights(mix_mag: torch.Tensor) -> torch.Tensor:
    """Per-bin weight clamp(log1p(mix magnitude), 1e-3, 10): (B, F, T) -> (B, F, T)."""
    return torch.clamp(torch.log1p(mix_mag), WEIGHT_MIN, WEIGHT_MAX)


class MixBatch(NamedTuple):
    log_mag: torch.Tensor  # (B, 1, F, T) network input: log of the warped mixture magnitude
    mix_mag: torch.Tensor  # (B, F, T) warped mixture magnitude |STFT(s1 + s2)|
    source_mags: torch.Tensor  # (B, S, F, T) warped source magnitudes |STFT(s_i)|
    masks: torch.Tensor  # (B, S, F, T) binary targets
    weight: torch.Tensor  # (B, F, T) loss weights


def stream_edge_emphasis(frames: int, edge_frames: int, edge_weight: float) -> torch.Tensor:
    """(T,) loss weights over a window's frames that count its last `edge_frames` frames
    `edge_weight` times as much as the others, scaled to mean 1 (so the loss keeps its size).

    A stream keeps the masks of the H frames just before its L-frame look-ahead, at the right
    edge of the network window, where the U-Net has the least right context; the batch path
    keeps mostly window middles. Weighting the last H + L frames of the largest preset trains
    one model for both. edge_frames 0 (or edge_weight 1) gives uniform weights.
    """
    if not 0 <= edge_frames <= frames:
        raise ValueError(f"edge_frames must be in 0..{frames}, got {edge_frames}")
    if edge_weight <= 0:
        raise ValueError(f"edge_weight must be positive, got {edge_weight}")
    emphasis = torch.ones(frames)
    if edge_frames:
        emphasis[frames - edge_frames :] = edge_weight
    return emphasis / emphasis.mean()


def mix_and_warp(sources: torch.Tensor, front_end: SpectralFrontEnd) -> MixBatch:
    """Mix-and-separate: sources (B, S, n) waveforms -> MixBatch on the log grid.

    The mixture is the sum of the sources in the waveform domain; its magnitude is
    |STFT(sum_i s_i)| (not the sum of the source magnitudes).
    """
    mix_linear = front_end.stft(sources.sum(dim=1)).abs()  # (B, 513, T)
    source_linear = front_end.stft(sources).abs()  # (B, S, 513, T)
    mix_mag = warp_magnitude(mix_linear, front_end.warp)
    source_mags = warp_magnitude(source_linear, front_end.warp)
    log_mag = front_end.warped_log_magnitude(mix_linear).unsqueeze(1)
    return MixBatch(log_mag, mix_mag, source_mags, binary_masks(source_mags, mix_mag), loss_weights(mix_mag))
