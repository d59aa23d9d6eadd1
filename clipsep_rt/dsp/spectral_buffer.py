"""Buffers of the frame loops (batch and streaming separation), in global indices.

Both loops hold a stretch of a stream that grows at its end and is dropped from its start:
input samples, their STFT frames, the masked frames waiting for the iSTFT, the output
waiting to be returned. `SlidingBuffer` is one such stretch, held in an array allocated up
front; `SpectralBuffer` is a stream's samples and STFT frames together, the part both loops
share. Indices are global throughout, as in `block_spectral`: sample s, frame t centred at
t * hop, whatever has been dropped before them.

What allocates: the buffers allocate when made, and again only when a caller holds more than
their capacity at once (a block larger than the one they were sized for, a query switch to
more rows): then the storage grows to at least twice its size and stays so. Appending,
slicing and trimming allocate nothing. The transforms around them do: the STFT's segment,
windowed frames and FFT output, magnitudes, warps, masks, the iSTFT, and the copies a caller
makes of what must outlive a view (a block returned to it).
"""

from __future__ import annotations

import numpy as np

from clipsep_rt.dsp.block_spectral import BlockFrontEnd


class SlidingBuffer:
    """Elements [start, stop) of a sequence, appended at the end and trimmed from the start.

    Each element is an array of shape `element_shape`: () for a mono sample, (C,) for a
    multichannel one, (513,) for an STFT frame, (rows, 513) for the per-row masked frames.
    Views put the sequence on the last axis, as the STFT code does: (*element_shape, n).

    The storage is time-major, (capacity, *element_shape) in C order, so the held elements
    are one contiguous run of memory. When an append reaches the end of the storage, that
    run moves to the front with one in-place memmove (numpy copies an overlapping 1-D slice
    in place; a slice of more dimensions would go through a temporary copy). Only when the
    held elements and the append together exceed the capacity is the storage reallocated.

    Views (`held`, `slice`) share the storage: they are valid until the next append, trim
    or `set_rows`; copy what must outlive that.
    """

    def __init__(self, element_shape: tuple[int, ...], dtype: np.dtype | type, capacity: int, start: int = 0):
        self._storage = np.zeros((max(1, capacity), *element_shape), dtype)
        self._element_shape = tuple(element_shape)  # rows may be fewer than the storage's (set_rows)
        self._offset = 0  # storage position of element `start`
        self.start = start  # global index of the first element held
        self.stop = start  # global index after the last element held

    @property
    def storage(self) -> np.ndarray:
        """The allocated array, (capacity, *element_shape); the same one until a caller
        exceeds the capacity."""
        return self._storage

    @property
    def capacity(self) -> int:
        return self._storage.shape[0]

    @property
    def element_shape(self) -> tuple[int, ...]:
        return self._element_shape

    def __len__(self) -> int:
        return self.stop - self.start

    def held(self) -> np.ndarray:
        """Every element held, a view: (*element_shape, stop - start)."""
        return self.slice(self.start, self.stop)

    def slice(self, first: int, stop: int) -> np.ndarray:
        """Global elements [first, stop), a view: (*element_shape, stop - first)."""
        if not self.start <= first <= stop <= self.stop:
            raise IndexError(f"elements [{first}, {stop}) asked of a buffer holding [{self.start}, {self.stop})")
        return np.moveaxis(self._run(first, stop), 0, -1)

    def append(self, values: np.ndarray) -> None:
        """Append (*element_shape, m) values as elements [stop, stop + m)."""
        values = np.asarray(values)
        if values.shape[:-1] != self._element_shape:
            raise ValueError(f"expected values of shape ({', '.join(map(str, self._element_shape))}, m), got {values.shape}")
        count = values.shape[-1]
        self._make_room(count)
        self.stop += count
        self._run(self.stop - count, self.stop)[...] = np.moveaxis(values, -1, 0)

    def append_zeros(self, count: int) -> None:
        """Append `count` elements of zeros."""
        if count > 0:
            self._make_room(count)
            self.stop += count
            self._run(self.stop - count, self.stop)[...] = 0

    def extend_to(self, stop: int) -> None:
        """Append zeros up to global element `stop` (nothing if the buffer reaches it)."""
        self.append_zeros(stop - self.stop)

    def trim(self, keep_from: int) -> None:
        """Drop the elements before global index `keep_from` (nothing if none is held)."""
        if keep_from > self.stop:
            raise IndexError(f"trimming to {keep_from}, past the elements held [{self.start}, {self.stop})")
        if keep_from > self.start:
            self._offset += keep_from - self.start
            self.start = keep_from
            if self.start == self.stop:
                self._offset = 0  # empty: the next append starts at the front, no move needed

    def set_rows(self, rows: int) -> None:
        """Change the first axis of the elements (rows of outputs) to `rows`: rows beyond the
        current ones are zeros so far; rows dropped are gone. Reallocates only to hold more
        rows than ever before."""
        if not self._element_shape:
            raise ValueError("set_rows on a buffer of scalar elements")
        current = self._element_shape[0]
        if rows > self._storage.shape[1]:
            grown = np.zeros((self.capacity, rows, *self._storage.shape[2:]), self._storage.dtype)
            grown[self._offset : self._offset + len(self), :current] = self._run(self.start, self.stop)
            self._storage = grown
        elif rows > current:
            self._storage[self._offset : self._offset + len(self), current:rows] = 0
        self._element_shape = (rows, *self._element_shape[1:])

    # -- storage ---------------------------------------------------------------------------

    def _run(self, first: int, stop: int) -> np.ndarray:
        """Storage of global elements [first, stop), time-major: (stop - first, *element_shape)."""
        begin = self._offset + first - self.start
        run = self._storage[begin : begin + stop - first]
        if self._element_shape and self._element_shape[0] != self._storage.shape[1]:
            run = run[:, : self._element_shape[0]]
        return run

    def _make_room(self, count: int) -> None:
        """Make room for `count` more elements after the held ones."""
        held = len(self)
        if self._offset + held + count <= self.capacity:
            return
        if held + count <= self.capacity:  # move the held run to the front, in place
            flat = self._storage.reshape(-1)  # a view: the storage is C-contiguous
            size = int(np.prod(self._storage.shape[1:], dtype=np.int64))
            flat[: held * size] = flat[self._offset * size : (self._offset + held) * size]
        else:  # a caller holds more than the capacity at once: grow, for good
            grown = np.zeros((max(2 * self.capacity, held + count), *self._storage.shape[1:]), self._storage.dtype)
            grown[:held] = self._storage[self._offset : self._offset + held]
            self._storage = grown
        self._offset = 0


class SpectralBuffer:
    """A stream's input samples and their centred STFT frames, in global indices.

    samples: (*channels, n) float32, global samples [samples.start, samples.stop).
    frames: (*channels, 513, T) complex64, global frames [frames.start, frames.stop).
    channels is () for mono streams, (C,) for multichannel ones. Frames are computed from
    the samples held (those outside count as zeros, as `BlockFrontEnd.stft_frames` says)
    and kept for as long as the frame loop needs them.
    """

    def __init__(self, front_end: BlockFrontEnd, channels: tuple[int, ...], sample_capacity: int, frame_capacity: int):
        self.front_end = front_end
        self.samples = SlidingBuffer(channels, np.float32, sample_capacity)
        self.frames = SlidingBuffer((*channels, front_end.config.linear_freq_bins), np.complex64, frame_capacity)

    @property
    def received(self) -> int:
        """Samples pushed so far: the global index of the next one."""
        return self.samples.stop

    def push(self, block: np.ndarray) -> None:
        """Append a (*channels, m) block of samples."""
        self.samples.append(block)

    def compute_frames(self, first: int, stop: int) -> np.ndarray:
        """STFT frames [first, stop) of the samples held: complex64 (*channels, 513, stop - first),
        a new array. Those not yet in `frames` (from frames.stop on) are appended to it; the
        frames must follow on from it (first <= frames.stop)."""
        if first > self.frames.stop:
            raise IndexError(f"frames from {first} would leave a gap after the frames held (up to {self.frames.stop})")
        spec = self.front_end.stft_frames(self.samples.held(), self.samples.start, first, stop)
        if stop > self.frames.stop:
            self.frames.append(spec[..., self.frames.stop - first :])
        return spec

    def trim(self, keep_sample: int, keep_frame: int) -> None:
        """Drop the samples before global sample `keep_sample` and frames before `keep_frame`."""
        self.samples.trim(keep_sample)
        self.frames.trim(keep_frame)


def shift_in(window: np.ndarray, columns: np.ndarray) -> None:
    """Slide a fixed window of the newest columns on by n new ones, in place, allocating nothing.

    window: C-contiguous (..., W); columns: (..., n), n <= W. Afterwards window[..., :W - n]
    holds what was window[..., n:] and window[..., W - n:] the new columns. (The network's
    input: the log magnitudes of the last W frames.) One memmove of the flattened window
    shifts every row left by n; the last n places of each row, which took the start of the
    next row, are then overwritten by the new columns.
    """
    count = columns.shape[-1]
    if not window.flags.c_contiguous or count > window.shape[-1]:
        raise ValueError(f"shift_in needs a C-contiguous window of at least {count} columns")
    flat = window.reshape(-1)  # a view
    if count < window.shape[-1]:
        flat[:-count] = flat[count:]
    window[..., window.shape[-1] - count :] = columns
