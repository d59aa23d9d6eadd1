"""Presence of a queried sound, from its mask and the mixture: a score per frame and per
second, and a gate that fades a query's output to silence where the score says "absent".

Score: the fraction of the mixture's energy that a query's mask passes,

    passed[k, t] = sum_f (mask[k, f, t] * |X[f, t]|)^2,   total[t] = sum_f |X[f, t]|^2,

the energy of the masked frame over that of the mixture frame (X: the mono mixture's STFT,
the masks on the linear grid). Per second it is sum(passed) / sum(total) over the frames
centred in that second, so loud frames count more than quiet ones; a silent second (below
`SILENT_FRAME_ENERGY` per frame on average) scores 0.

Gate (`PresenceGate`, causal, frame by frame, so batch and streaming run the same code): the
score over the last `window_ms` (the same energy-weighted ratio) against `threshold`; a
frame above it holds the gate open for `hangover_ms`; the gain moves linearly towards 1
(open) or 0 (closed) by 1 / ramp frames per frame, so a fade lasts `ramp_ms`. The gains
multiply the masks frame by frame before the iSTFT, whose overlapping Hann windows smooth
them further: no step, no click. A stream starts closed.

Memory is bounded: the gate keeps `window_ms` of per-frame energies, the timeline one score
per query per second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import OptionError

# The threshold on the score (the fraction of the mixture's energy the mask passes). Picked
# by `python benchmarks/presence_calibration.py` (2026-12-07; bundled model v3 step 14,500,
# onnxruntime, CPU; the 120 even dev-set mixtures pick it, the 120 odd ones score it): Youden's
# J best at 0.08. On the others, per second: AUC 0.68, precision 0.74, recall 0.83, false alarms
# 0.51; with the gate, absent seconds of an unrelated query fell from -10.9 to -31.3 dB (mean;
# median -9.5, 22 % of trials 30 dB down) and the present target's SDRi from 4.24 to 3.95 dB.
# The model tells present from absent weakly: the gate is off by default.
PRESENCE_THRESHOLD = 0.08
SILENT_FRAME_ENERGY = 1e-6  # sum_f |X|^2 of a frame (1024-point Hann STFT) below about -75 dBFS


@dataclass(frozen=True)
class GateOptions:
    """The presence gate's settings (see the module docstring)."""

    threshold: float = PRESENCE_THRESHOLD
    window_ms: float = 250.0  # the score the gate decides on: energy-weighted over this much, causal
    hangover_ms: float = 250.0  # the gate stays open this long after the last frame above the threshold
    ramp_ms: float = 64.0  # a fade in or out lasts this long

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise OptionError("gate_threshold", f"must be at least 0 and below 1 (a fraction of the mixture's energy), "
                                                f"got {self.threshold}")
        for name in ("window_ms", "hangover_ms", "ramp_ms"):
            if not 0.0 <= getattr(self, name) <= 10_000.0:
                raise OptionError(name, f"must be 0 to 10000 ms, got {getattr(self, name)}")


def frame_energies(masks: np.ndarray, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 513, T) linear-grid masks and the mixture's complex (513, T) STFT (or its
    magnitude) -> (passed (K, T), total (T,)) float64 energies per frame."""
    power = np.abs(mixture).astype(np.float64) ** 2  # (513, T)
    total = power.sum(axis=0)
    passed = np.einsum("kft,ft->kt", np.asarray(masks, np.float64) ** 2, power)
    return passed, total


def frame_scores(passed: np.ndarray, total: np.ndarray) -> np.ndarray:
    """(K, T), (T,) -> (K, T) per-frame scores in [0, 1]; 0 for silent frames."""
    loud = total > SILENT_FRAME_ENERGY
    return np.where(loud, passed / np.where(loud, total, 1.0), 0.0)


class PresenceTimeline:
    """Per-second scores of named queries, accumulated frame by frame (any chunking gives the
    same result). A query named later (a stream's switch) has no score (None) before it."""

    def __init__(self, spectral: SpectralConfig = SpectralConfig()):
        self.frame_s = spectral.hop_length / spectral.sample_rate
        self._seconds: dict[str, list[float | None]] = {}  # name -> scores of the seconds closed
        self._closed = 0  # seconds closed so far
        # The open second, per query active in it: [passed energy, mixture energy, frames] over the
        # frames it was active in (a query switched in or out mid-second is scored on its part).
        self._open: dict[str, list[float]] = {}
        self._frames = 0  # frames in the open second

    def _second_of(self, frame: int) -> int:
        """The second a frame's centre falls in; a centre on a boundary counts to the second
        before it (a file of whole seconds has no extra one-frame second at its end)."""
        return max(0, int(math.floor(frame * self.frame_s - 1e-9)))

    def add(self, first_frame: int, passed: np.ndarray, total: np.ndarray, names: Sequence[str]) -> None:
        """Frames [first_frame, first_frame + T) in order: (Q, T) passed energies of the queries
        `names` (Q), (T,) mixture energies."""
        count = total.shape[0]
        frame = first_frame
        while frame < first_frame + count:
            second = self._second_of(frame)
            while second > self._closed:
                self._close(names)
            stop = first_frame + count
            end = min(stop, int(math.floor((second + 1) / self.frame_s + 1e-9)) + 1)  # first frame of the next second
            part = slice(frame - first_frame, end - first_frame)
            mixture = float(total[part].sum())
            for name, row in zip(names, passed):
                sums = self._open.setdefault(name, [0.0, 0.0, 0])
                sums[0] += float(row[part].sum())
                sums[1] += mixture
                sums[2] += end - frame
            self._frames += end - frame
            frame = end

    def _close(self, names: Sequence[str]) -> None:
        for name in dict.fromkeys([*self._seconds, *self._open, *names]):
            history = self._seconds.setdefault(name, [None] * self._closed)
            history.append(self._score(name) if name in self._open else None)
        self._closed += 1
        self._open, self._frames = {}, 0

    def _score(self, name: str) -> float:
        passed, total, frames = self._open[name]
        if total <= SILENT_FRAME_ENERGY * max(1, frames):
            return 0.0
        return passed / total

    def scores(self) -> dict[str, list[float | None]]:
        """name -> one score per second so far (the last, open second included)."""
        seconds = self._closed + (1 if self._frames else 0)
        out = {}
        for name in dict.fromkeys([*self._seconds, *self._open]):
            closed = self._seconds.get(name, [None] * self._closed)
            closed = closed + [None] * (self._closed - len(closed))
            out[name] = closed + ([self._score(name) if name in self._open else None] if self._frames else [])
            out[name] += [None] * (seconds - len(out[name]))
        return out

    def to_json(self, threshold: float = PRESENCE_THRESHOLD) -> dict:
        """The timeline as `--stats` writes it (`presence_json`)."""
        return presence_json(self.scores(), threshold)


def presence_json(scores: dict[str, list[float | None]], threshold: float = PRESENCE_THRESHOLD) -> dict:
    """Per-second scores (name -> one score or None per second) as `--stats` writes them: per
    query, the scores and the verdicts against `threshold` (None where the query was not active)."""
    return {
        "second_s": 1.0,
        "threshold": threshold,
        "score": "fraction of the mixture's energy the query's mask passes (energy-weighted over each second)",
        "queries": {name: {"scores": [None if s is None else round(s, 4) for s in values],
                           "present": [None if s is None else s >= threshold for s in values]}
                    for name, values in scores.items()},
    }


class PresenceGate:
    """Per-row gains (0 to 1) from per-frame energies, frame by frame and causal (see the
    module docstring). Feed frames once each, in order."""

    def __init__(self, options: GateOptions, rows: int, spectral: SpectralConfig = SpectralConfig()):
        frame_ms = 1000 * spectral.hop_length / spectral.sample_rate
        self.options = options
        self.window = max(1, round(options.window_ms / frame_ms))
        self.hangover = round(options.hangover_ms / frame_ms)
        self.step = 1.0 / max(1, round(options.ramp_ms / frame_ms))  # gain change per frame
        self._passed = np.zeros((rows, self.window))  # ring buffers of the last `window` frames
        self._total = np.zeros(self.window)
        self._position = 0
        self._hold = np.zeros(rows, np.int64)  # frames the gate stays open for
        self._gain = np.zeros(rows)

    @property
    def rows(self) -> int:
        return self._gain.shape[0]

    def set_rows(self, rows: int) -> None:
        """Rows kept keep their state; new rows start closed."""
        keep = min(rows, self.rows)
        passed = np.zeros((rows, self.window))
        passed[:keep] = self._passed[:keep]
        hold, gain = np.zeros(rows, np.int64), np.zeros(rows)
        hold[:keep], gain[:keep] = self._hold[:keep], self._gain[:keep]
        self._passed, self._hold, self._gain = passed, hold, gain

    def reset(self, rows: Sequence[int]) -> None:
        """These rows hold new queries (a stream's switch): their evidence starts over (no hangover,
        no energy passed yet); their gain goes on from where it is, so it fades, never steps."""
        rows = list(rows)
        self._passed[rows], self._hold[rows] = 0.0, 0

    def gains(self, passed: np.ndarray, total: np.ndarray) -> np.ndarray:
        """(rows, T) passed energies, (T,) mixture energies of the next T frames -> (rows, T) float32 gains."""
        out = np.empty(passed.shape, np.float32)
        threshold, floor = self.options.threshold, SILENT_FRAME_ENERGY * self.window
        for t in range(total.shape[0]):
            self._passed[:, self._position] = passed[:, t]
            self._total[self._position] = total[t]
            self._position = (self._position + 1) % self.window
            window_total = self._total.sum()
            score = self._passed.sum(axis=1) / window_total if window_total > floor else np.zeros(self.rows)
            self._hold = np.where(score >= threshold, self.hangover + 1, np.maximum(self._hold - 1, 0))
            target = (self._hold > 0).astype(np.float64)
            self._gain = np.clip(target, self._gain - self.step, self._gain + self.step)
            out[:, t] = self._gain
        return out
