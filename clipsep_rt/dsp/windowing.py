"""Where the trained-size network windows go on a long signal, and how they are blended.

Windows of W frames start every H = W - overlap frames; the last one is moved left so that
it ends exactly at the last frame (no padding), and a signal shorter than one window is
zero-padded to one window (as the original does for its fixed-size clips). Each window's
masks are weighted by a trapezoid that ramps over `overlap` frames at both ends and the
weighted masks are normalised by the summed weights: in the middle of each window (away
from the ramps) the result is exactly that window's own output.
"""

from __future__ import annotations

import numpy as np


def window_starts(total_frames: int, window: int, hop: int) -> list[int]:
    """All window starts for a signal of `total_frames` frames (padded to >= `window`)."""
    total_frames = max(total_frames, window)
    starts = list(range(0, total_frames - window + 1, hop))  # k * hop, fitting entirely
    if starts[-1] + window < total_frames:
        starts.append(total_frames - window)
    return starts


def crossfade_weights(window: int, overlap: int) -> np.ndarray:
    """(window,) float32 trapezoid: (i + 0.5) / overlap rising over `overlap` frames, flat 1, falling.

    Rising and falling ramps of neighbouring windows (offset by window - overlap) sum to 1.
    """
    if not 0 <= overlap <= window // 2:
        raise ValueError(f"overlap must be between 0 and {window // 2} frames, got {overlap}")
    weights = np.ones(window, dtype=np.float32)
    if overlap:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        weights[:overlap] = ramp
        weights[window - overlap:] = ramp[::-1]
    return weights
