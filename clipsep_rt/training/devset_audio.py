"""The dev set's signal steps: trimming silence, filling a window with a clip's sound (a crop
or a loop), setting the levels of a pair, and the ideal-binary-mask SDRi of a mixture."""

from __future__ import annotations

import math

import numpy as np

from clipsep_rt.dsp.levels import active_mask, active_rms, active_samples, frame_energies

SAMPLE_RATE = 16000
FRAME = 320  # 20 ms at 16 kHz
ACTIVE_DB = 40.0  # a frame is active within this many dB of the loudest frame
CROP_GATE_DB = 25.0  # stricter gate used only to rank crops of long clips
CROP_CANDIDATES = 48
CROSSFADE = 160  # 10 ms
MAX_GAP = int(0.2 * SAMPLE_RATE)
LEVEL_DBFS = -26.0
PEAK_LIMIT = 0.99


def trim_silence(x: np.ndarray, gate_db: float = ACTIVE_DB) -> np.ndarray:
    """`x` without leading and trailing 20 ms frames more than `gate_db` below the loudest."""
    x = np.asarray(x, dtype=np.float32)
    if not np.any(x):
        return x[:0]
    idx = np.flatnonzero(active_mask(frame_energies(x, FRAME)[0], gate_db))
    return x[idx[0] * FRAME : min(len(x), (idx[-1] + 1) * FRAME)]


def _is_sustained(x: np.ndarray) -> bool:
    """A sound whose ends are about as loud as its body (a loop): repeats join by crossfade."""
    edge = min(len(x) // 4, 800)
    if edge < FRAME:
        return False
    body = active_rms(x)
    ends = [np.sqrt(np.mean(np.asarray(seg, np.float64) ** 2)) for seg in (x[:edge], x[-edge:])]
    return body > 0 and min(ends) > body * 10 ** (-12 / 20)


def fill_window(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A window of exactly `n` samples filled with the sound of clip `x` (trimmed): a random
    high-activity crop of a long clip, or a short clip looped from a random offset. Returns
    (window, how) where how is "crop", "loop-crossfade" or "loop-gaps"."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= n:
        span = len(x) - n
        starts = np.unique(np.concatenate([[0, span], rng.integers(0, span + 1, CROP_CANDIDATES)]))
        strict = active_samples(x, FRAME, CROP_GATE_DB).astype(np.float64)
        csum = np.concatenate([[0.0], np.cumsum(strict)])
        fractions = (csum[starts + n] - csum[starts]) / n
        good = starts[fractions >= fractions.max() * 0.95]
        start = int(rng.choice(good))
        return x[start : start + n].copy(), "crop"
    sustained = _is_sustained(x) and len(x) > 4 * CROSSFADE
    pieces: list[np.ndarray] = []
    total = 0
    need = n + len(x) + MAX_GAP
    if sustained:
        fade_in = np.sin(np.linspace(0, np.pi / 2, CROSSFADE, dtype=np.float64)) ** 2
        out = np.asarray(x, np.float64).copy()
        while len(out) < need:
            head = out[:-CROSSFADE]
            joint = out[-CROSSFADE:] * (1 - fade_in) + x[:CROSSFADE] * fade_in
            out = np.concatenate([head, joint, x[CROSSFADE:]])
        period = len(x) - CROSSFADE
        offset = int(rng.integers(0, period))
        return out[offset : offset + n].astype(np.float32), "loop-crossfade"
    while total < need:
        pieces.append(x)
        gap = np.zeros(int(rng.integers(0, MAX_GAP + 1)), dtype=np.float32)
        pieces.append(gap)
        total += len(x) + len(gap)
    out = np.concatenate(pieces)
    offset = int(rng.integers(0, len(x) + len(pieces[1])))
    return out[offset : offset + n].copy(), "loop-gaps"


def scale_pair(target: np.ndarray, interference: np.ndarray, tir_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Both at LEVEL_DBFS active RMS, interference then at `tir_db` below the target, both
    scaled together so no peak (target, interference, mixture) reaches PEAK_LIMIT."""
    level = 10 ** (LEVEL_DBFS / 20)
    t = np.asarray(target, np.float64) * (level / active_rms(target))
    i = np.asarray(interference, np.float64) * (level / active_rms(interference) * 10 ** (-tir_db / 20))
    peak = max(np.abs(t).max(), np.abs(i).max(), np.abs(t + i).max())
    if peak >= PEAK_LIMIT:
        gain = PEAK_LIMIT * 0.999 / peak
        t, i = t * gain, i * gain
    return t.astype(np.float32), i.astype(np.float32)


def tir_db(target: np.ndarray, interference: np.ndarray) -> float:
    """Target-to-interference ratio (dB) on active-frame RMS."""
    return 20 * math.log10(active_rms(target) / active_rms(interference))


def oracle_ibm_sdri(target: np.ndarray, interference: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """SDRi (BSS Eval v4) of the ideal binary mask |T| > 0.5 |M| on a Hann STFT."""
    from scipy.signal import istft, stft

    from clipsep_rt.dsp.metrics import separation_metrics

    t = np.asarray(target, np.float64)
    i = np.asarray(interference, np.float64)
    mix = t + i
    kwargs = dict(fs=SAMPLE_RATE, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    _, _, T = stft(t, **kwargs)
    _, _, M = stft(mix, **kwargs)
    mask = np.abs(T) > 0.5 * np.abs(M)
    _, est = istft(M * mask, **kwargs)
    est = est[: len(t)]
    if len(est) < len(t):
        est = np.pad(est, (0, len(t) - len(est)))
    return float(separation_metrics(est, t, i, mix).sdri)
