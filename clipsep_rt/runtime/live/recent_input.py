"""The last seconds of a live run's input, kept for "this, from now on" (`/this` typed live).

`RecentInput` is a ring buffer of model-rate samples, allocated once: the worker thread writes
each block it hands the separator (and the input it drops) with two slice copies under a lock,
and the stdin thread takes a copy of the last seconds (`example`) to fit a query to them
(`runtime.query_fitting`): the last `seconds` are the example, what was heard before them the
other sounds, as `--query-span` does with a file.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from clipsep_rt.errors import ClipsepError, OptionError

RECENT_INPUT_S = 60.0  # kept: the longest example (/this 30) and as much heard before it


@dataclass(frozen=True)
class RecentExample:
    """The input held when `/this` was typed: the example is its last seconds, from `start`."""

    audio: np.ndarray  # (n,) float32 at `rate`: everything held, oldest first
    rate: int
    start: int  # the example is audio[start:]
    heard_s: float  # input heard since the run began (dropped input included) when it was taken

    @property
    def example(self) -> np.ndarray:
        return self.audio[self.start :]

    @property
    def start_s(self) -> float:
        return self.start / self.rate

    @property
    def end_s(self) -> float:
        return len(self.audio) / self.rate


class RecentInput:
    """The last `seconds` of input at `rate`, preallocated. `write` (one thread) and `last` /
    `example` (any other) may run at the same time: both hold the lock only to copy."""

    def __init__(self, seconds: float, rate: int):
        capacity = int(round(seconds * rate))
        if capacity < 1:
            raise OptionError("seconds", f"must hold at least one sample, got {seconds:g} s at {rate} Hz")
        self.rate = rate
        self._ring = np.zeros(capacity, np.float32)  # (capacity,): sample i of the input at i % capacity
        self._written = 0  # samples written since the start
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return len(self._ring)

    @property
    def heard(self) -> int:
        """Samples written since the start (more than are held, once the ring has wrapped)."""
        return self._written

    @property
    def held(self) -> int:
        return min(self._written, self.capacity)

    def write(self, samples: np.ndarray) -> None:
        """Append (m,) samples (the oldest held are overwritten); copies, allocates nothing."""
        count = len(samples)
        skip = max(0, count - self.capacity)  # more than the ring holds: only the last capacity samples
        with self._lock:
            start = (self._written + skip) % self.capacity
            first = min(count - skip, self.capacity - start)
            self._ring[start : start + first] = samples[skip : skip + first]
            self._ring[: count - skip - first] = samples[skip + first :]
            self._written += count

    def last(self, count: int | None = None) -> np.ndarray:
        """A copy of the last `count` samples (default: all held), oldest first: (count,) float32."""
        return self._snapshot(count)[0]

    def example(self, seconds: float) -> RecentExample:
        """Everything held, with its last `seconds` as the example; ClipsepError when fewer
        seconds have been heard, or more are asked for than the ring holds."""
        wanted = int(round(seconds * self.rate))
        if wanted > self.capacity:
            raise ClipsepError(f"{seconds:g} s: only the last {self.capacity / self.rate:g} s of input are kept")
        audio, written = self._snapshot(None)  # one snapshot: the example and what came before it
        if wanted > len(audio):
            raise ClipsepError(f"only {len(audio) / self.rate:.1f} s of input heard so far, {seconds:g} s asked for: "
                               "wait, or ask for fewer seconds")
        return RecentExample(audio, self.rate, len(audio) - wanted, written / self.rate)

    def _snapshot(self, count: int | None) -> tuple[np.ndarray, int]:
        """(the last `count` samples (default: all held) as a (count,) copy, oldest first; samples
        written until then)."""
        with self._lock:
            held = min(self._written, self.capacity)
            count = held if count is None else count
            if not 0 <= count <= held:
                raise ValueError(f"{count} samples asked for, {held} held")
            out = np.empty(count, np.float32)
            end = self._written % self.capacity
            first = min(count, end)  # the newest part: ring[end - first : end]
            out[count - first :] = self._ring[end - first : end]
            out[: count - first] = self._ring[self.capacity - (count - first) :]
            return out, self._written
