"""The log-frequency warp of CLIPSep as fixed (out_bins, in_bins) interpolation matrices.

The original computes the warp with `grid_sample(align_corners=True)` along frequency only;
here it is the equivalent precomputed matrix, so warping is one matmul. Plain numpy (float64),
shared by the runtime's numpy front end (`block_spectral`) and training's torch one
(`spectral`), so both warp with the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from clipsep_rt.config import SpectralConfig

MAG_EPS = 1e-10  # added to the magnitude before the log, as the original does


def _interpolation_matrix(source_coords: np.ndarray, num_source: int) -> np.ndarray:
    """Linear interpolation weights: row i samples the source at (fractional) index coords[i].

    Matches bilinear grid_sample with zero padding: taps outside [0, num_source) contribute 0.
    Returns (len(coords), num_source) float64.
    """
    lower = np.floor(source_coords)
    frac = source_coords - lower
    matrix = np.zeros((len(source_coords), num_source), dtype=np.float64)
    rows = np.arange(len(source_coords))
    for index, weight in ((lower, 1.0 - frac), (lower + 1.0, frac)):
        inside = (index >= 0) & (index <= num_source - 1)
        np.add.at(matrix, (rows[inside], index[inside].astype(np.int64)), weight[inside])
    return matrix


def log_warp_matrix(config: SpectralConfig) -> np.ndarray:
    """(log_freq_bins, linear_freq_bins) float64: linear STFT bins -> log-spaced bins.

    Output row i samples normalised frequency y = (21 ** ((v + 1) / 2) - 11) / 10 with
    v = linspace(-1, 1, log_freq_bins)[i]: a log scale from DC to Nyquist.
    """
    v = np.linspace(-1.0, 1.0, config.log_freq_bins, dtype=np.float64)
    y = (21.0 ** ((v + 1.0) / 2.0) - 11.0) / 10.0
    coords = (y + 1.0) / 2.0 * (config.linear_freq_bins - 1)
    return _interpolation_matrix(coords, config.linear_freq_bins)


def inverse_log_warp_matrix(config: SpectralConfig) -> np.ndarray:
    """(linear_freq_bins, log_freq_bins) float64: log-spaced bins -> linear STFT bins.

    Row i samples y = log(v * 10 + 11) / log(21) * 2 - 1 with v = linspace(-1, 1, linear)[i].
    """
    v = np.linspace(-1.0, 1.0, config.linear_freq_bins, dtype=np.float64)
    y = np.log(v * 10.0 + 11.0) / math.log(21.0) * 2.0 - 1.0
    coords = (y + 1.0) / 2.0 * (config.log_freq_bins - 1)
    return _interpolation_matrix(coords, config.log_freq_bins)
