"""Loudness of a sound where it sounds: RMS over its active frames.

A clip's plain RMS depends on how much silence it holds (a dog's two barks in four seconds
read 10 dB quieter than one continuous bark). Mixing at a chosen target-to-interference
ratio needs the level of the sound itself: the RMS over the 20 ms frames within
`ACTIVE_RANGE_DB` of the loudest frame. Training mixtures and the dev set both use it.
"""

from __future__ import annotations

import numpy as np

FRAME_SAMPLES = 320  # 20 ms at 16 kHz
ACTIVE_RANGE_DB = 40.0


def frame_energies(x: np.ndarray, frame: int = FRAME_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """(mean square, sample count) of each consecutive `frame`-sample frame of mono `x` (n,),
    a last partial frame included: two (ceil(n / frame),) float64 arrays."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    count = -(-len(x) // frame)
    padded = np.zeros(count * frame)
    padded[: len(x)] = x
    sizes = np.full(count, float(frame))
    if count:
        sizes[-1] = len(x) - (count - 1) * frame
    return (padded.reshape(count, frame) ** 2).sum(axis=1) / np.maximum(sizes, 1.0), sizes


def active_mask(energies: np.ndarray, range_db: float = ACTIVE_RANGE_DB) -> np.ndarray:
    """Frames within `range_db` of the loudest, digital silence excluded (all False for silence)."""
    peak = float(np.max(energies, initial=0.0))
    if peak <= 0.0:
        return np.zeros(len(energies), dtype=bool)
    return (energies >= peak * 10 ** (-range_db / 10)) & (energies > 0.0)


def active_samples(x: np.ndarray, frame: int = FRAME_SAMPLES, range_db: float = ACTIVE_RANGE_DB) -> np.ndarray:
    """(n,) bool: the samples of `x` in its active frames."""
    energies, _ = frame_energies(x, frame)
    return np.repeat(active_mask(energies, range_db), frame)[: len(np.asarray(x).reshape(-1))]


def active_rms(x: np.ndarray, frame: int = FRAME_SAMPLES, range_db: float = ACTIVE_RANGE_DB) -> float:
    """RMS of mono `x` over the samples of its active frames; 0.0 for silence."""
    energies, sizes = frame_energies(x, frame)
    active = active_mask(energies, range_db)
    if not active.any():
        return 0.0
    return float(np.sqrt(np.sum(energies[active] * sizes[active]) / np.sum(sizes[active])))


def active_fraction(x: np.ndarray, frame: int = FRAME_SAMPLES, floor_db: float = -50.0) -> float:
    """Share of `x`'s frames louder than `floor_db` dBFS (mean square): how much of it sounds."""
    energies, _ = frame_energies(x, frame)
    return float(np.mean(energies > 10 ** (floor_db / 10))) if len(energies) else 0.0
