"""The corpus's clip checks: trimming silence, and finding copies of a clip under another name
(an exact 8-bit hash, then a coarse spectral fingerprint for re-encoded or resampled copies)."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from clipsep_rt.training.corpus_sources import SAMPLE_RATE


def trim_silence(x: np.ndarray, frame: int = 320, floor_db: float = -50.0) -> np.ndarray:
    """Drop leading/trailing 20 ms frames quieter than floor_db below the loudest (or ~silent)."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x) // frame
    if n == 0:
        return x[:0] if np.max(np.abs(x), initial=0.0) < 1e-4 else x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    threshold = max(float(rms.max()) * 10 ** (floor_db / 20), 1e-4)
    loud = np.flatnonzero(rms > threshold)
    if len(loud) == 0:
        return x[:0]
    end = (loud[-1] + 1) * frame if loud[-1] < n - 1 else len(x)
    return x[loud[0] * frame : end]


def audio_hash(x: np.ndarray) -> str:
    """Hash of the audio quantised to 8 bits: identical sounds under two names collide."""
    q = np.clip(np.round(np.asarray(x, dtype=np.float32) * 127), -127, 127).astype(np.int8)
    return hashlib.sha1(q.tobytes()).hexdigest()


def fingerprint(x: np.ndarray, bands: int = 32, frames: int = 24) -> np.ndarray:
    """Unit vector of log band energies on a fixed time grid: re-encoded or resampled copies
    of one recording have near-identical fingerprints (cosine > 0.99), other sounds do not."""
    x = np.asarray(x, dtype=np.float32)
    n_fft = 1024
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    hop = max(1, (len(x) - n_fft) // (frames - 1)) if len(x) > n_fft else 1
    starts = np.minimum(np.arange(frames) * hop, len(x) - n_fft)
    spec = np.abs(np.fft.rfft(np.stack([x[s : s + n_fft] for s in starts]) * np.hanning(n_fft), axis=1)) ** 2
    edges = np.unique(np.geomspace(8, spec.shape[1], bands + 1).astype(int))
    energy = np.stack([spec[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    v = np.log10(energy + 1e-3 * float(energy.max()) + 1e-12).ravel()  # floor 30 dB under the peak
    v = v - v.mean()
    return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)


class Deduplicator:
    """Exact (hash) and near (fingerprint within 3 % duration) duplicate detection."""

    def __init__(self, threshold: float = 0.995):
        self.threshold = threshold
        self.hashes: dict[str, str] = {}
        self.buckets: dict[int, list[tuple[float, np.ndarray, str]]] = defaultdict(list)

    def seen(self, x: np.ndarray, source: str) -> str | None:
        """The source `x` duplicates, or None (and `x` is remembered)."""
        digest = audio_hash(x)
        if digest in self.hashes:
            return self.hashes[digest]
        seconds = len(x) / SAMPLE_RATE
        bucket = int(np.log(max(seconds, 0.05)) / 0.03)
        fp = fingerprint(x)
        for b in (bucket - 1, bucket, bucket + 1):
            for other_s, other_fp, other in self.buckets.get(b, ()):
                if abs(other_s - seconds) <= 0.03 * max(seconds, other_s) and float(other_fp @ fp) >= self.threshold:
                    return other
        self.hashes[digest] = source
        self.buckets[bucket].append((seconds, fp, source))
        return None
