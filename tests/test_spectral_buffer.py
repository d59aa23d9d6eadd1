"""The frame loops' buffers (dsp.spectral_buffer): global indices, append / slice / trim across
the capacity, growth only past it, and a streaming separator that allocates none per hop."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.block_spectral import BlockFrontEnd
from clipsep_rt.dsp.spectral_buffer import SlidingBuffer, SpectralBuffer, shift_in
from clipsep_rt.runtime.streaming import BLOCK_ROOM_SAMPLES, StreamingOptions, StreamingSeparator


def sequence(first: int, stop: int, element_shape: tuple[int, ...] = ()) -> np.ndarray:
    """Elements [first, stop) of a test sequence whose element t is all t (+ its position):
    (*element_shape, stop - first) float32."""
    offsets = np.arange(int(np.prod(element_shape)), dtype=np.float32).reshape(*element_shape, 1) / 1000
    return np.arange(first, stop, dtype=np.float32) + offsets


def test_append_slice_trim_keep_global_indices_across_the_capacity():
    buffer = SlidingBuffer((2, 3), np.float32, capacity=10)
    storage = buffer.storage
    stop = 0
    for size in [3, 4, 1, 5, 2, 6, 3, 3, 6] * 5:  # never more than 10 held: wraps to the front, never grows
        buffer.append(sequence(stop, stop + size, (2, 3)))
        stop += size
        buffer.trim(max(0, stop - 4))
        assert (buffer.start, buffer.stop) == (max(0, stop - 4), stop)
        np.testing.assert_array_equal(buffer.held(), sequence(buffer.start, stop, (2, 3)))
        np.testing.assert_array_equal(buffer.slice(stop - 2, stop - 1), sequence(stop - 2, stop - 1, (2, 3)))
    assert buffer.storage is storage and buffer.capacity == 10
    assert buffer.held().shape == (2, 3, 4) and len(buffer) == 4


def test_it_grows_only_when_a_caller_holds_more_than_the_capacity():
    buffer = SlidingBuffer((), np.float32, capacity=8, start=-3)  # global indices may start anywhere
    buffer.append(sequence(-3, 3))
    storage = buffer.storage
    buffer.append(sequence(3, 20))  # 23 held at once: more than 8
    assert buffer.storage is not storage and buffer.capacity >= 23
    np.testing.assert_array_equal(buffer.held(), sequence(-3, 20))
    grown = buffer.storage
    for stop in range(20, 500, 7):  # then it stays
        buffer.trim(stop - 10)
        buffer.append(sequence(stop, stop + 7))
    assert buffer.storage is grown
    np.testing.assert_array_equal(buffer.held(), sequence(stop - 10, stop + 7))


def test_slices_outside_what_is_held_are_refused():
    buffer = SlidingBuffer((), np.float32, capacity=8)
    buffer.append(sequence(0, 6))
    buffer.trim(2)
    with pytest.raises(IndexError):
        buffer.slice(1, 4)  # dropped
    with pytest.raises(IndexError):
        buffer.slice(4, 7)  # not yet there
    with pytest.raises(IndexError):
        buffer.trim(7)
    with pytest.raises(ValueError):
        buffer.append(np.zeros((2, 3), np.float32))  # elements are scalars
    buffer.trim(1)  # before the start: nothing to drop
    assert (buffer.start, buffer.stop) == (2, 6)


def test_zeros_and_rows():
    buffer = SlidingBuffer((2,), np.float32, capacity=16)
    buffer.append(sequence(0, 5, (2,)) + 1)
    buffer.extend_to(8)
    np.testing.assert_array_equal(buffer.slice(5, 8), np.zeros((2, 3)))
    buffer.extend_to(6)  # already there
    assert buffer.stop == 8
    buffer.set_rows(1)
    assert buffer.held().shape == (1, 8)
    buffer.set_rows(2)  # the row dropped comes back silent, not with its old samples
    np.testing.assert_array_equal(buffer.held()[1], np.zeros(8))
    np.testing.assert_array_equal(buffer.held()[0, :5], sequence(0, 5, (2,))[0] + 1)
    buffer.set_rows(4)  # more rows than the storage has: reallocated
    assert buffer.held().shape == (4, 8) and not buffer.held()[1:].any()
    buffer.append(np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(buffer.slice(8, 11), np.ones((4, 3)))


def test_moving_to_the_front_and_shifting_in_allocate_nothing():
    """The held run moves with one memmove, not through a temporary copy of its data."""
    buffer = SlidingBuffer((4, 513), np.complex64, capacity=64)
    frames = np.ones((4, 513, 12), np.complex64)
    window, columns = np.zeros((256, 256), np.float32), np.ones((256, 12), np.float32)
    held_bytes = 40 * 4 * 513 * 8
    tracemalloc.start()
    try:
        for _ in range(50):  # moves to the front every other hop or so: 40 held, 12 more
            buffer.append(frames)
            buffer.trim(buffer.stop - 40)
            shift_in(window, columns)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < held_bytes // 10


def test_shift_in_slides_the_window():
    rng = np.random.default_rng(0)
    window = rng.standard_normal((3, 10)).astype(np.float32)
    for count in (1, 4, 10):
        columns = rng.standard_normal((3, count)).astype(np.float32)
        expected = np.concatenate([window, columns], axis=1)[:, -10:]
        shift_in(window, columns)
        np.testing.assert_array_equal(window, expected)


def test_spectral_buffer_frames_are_those_of_the_whole_signal():
    front_end = BlockFrontEnd(SpectralConfig())
    signal = np.random.default_rng(1).standard_normal((2, 16000)).astype(np.float32)
    whole = front_end.stft(signal)  # (2, 513, 63)
    buffer = SpectralBuffer(front_end, (2,), sample_capacity=3000, frame_capacity=16)
    hop, computed = 256, 0
    for start in range(0, 16000, 1000):
        buffer.push(signal[:, start : start + 1000])
        ready = (buffer.received - 512) // hop + 1  # frames whose samples have all come
        if ready > computed:
            new = buffer.compute_frames(computed, ready)  # (2, 513, ready - computed)
            np.testing.assert_allclose(new, whole[..., computed:ready], atol=1e-4)
            computed = ready
        buffer.trim(keep_sample=computed * hop - 512, keep_frame=computed - 3)
        np.testing.assert_array_equal(buffer.frames.held(), buffer.frames.slice(max(0, computed - 3), computed))
        np.testing.assert_allclose(buffer.frames.held(), whole[..., max(0, computed - 3) : computed], atol=1e-4)
    assert buffer.samples.capacity == 3000 and buffer.frames.capacity == 16  # it never grew


@dataclass
class _Rows:
    rows: int


class _PassThroughEngine:
    """Masks of one everywhere, for every row, in numpy: the output is the input, delayed."""

    device, precision = "cpu", "fp32"

    def prepare_queries(self, embeddings, noise_heads):
        return _Rows(len(embeddings))

    def probabilities(self, log_mag, queries):
        return np.ones((log_mag.shape[0], queries.rows, *log_mag.shape[2:]), np.float32)


@pytest.mark.parametrize(("hop", "lookahead"), [(2, 1), (12, 4), (16, 32)])  # the presets
def test_a_streaming_separator_keeps_its_buffers_from_hop_to_hop(hop, lookahead):
    engine = _PassThroughEngine()
    separator = StreamingSeparator(engine, engine.prepare_queries(np.ones((2, 8)), False),
                                   options=StreamingOptions(hop, lookahead))
    storages = {name: buffer.storage for name, buffer in separator.buffers.items()}
    signal = np.random.default_rng(2).standard_normal(16000 * 4).astype(np.float32) * 0.1
    out = np.concatenate([separator.process(signal[i : i + 256]) for i in range(0, len(signal), 256)], axis=1)
    assert len(separator.stats.steps) >= 4 * 16000 // (hop * 256) - 4  # many hops
    assert all(buffer.storage is storages[name] for name, buffer in separator.buffers.items())  # the same arrays
    latency = separator.latency_samples
    assert out.shape == (2, len(signal))
    np.testing.assert_allclose(out[:, latency:], np.stack([signal[:-latency]] * 2), atol=1e-5)
    assert not out[:, :latency].any()


def test_a_huge_block_grows_the_buffers_once():
    engine = _PassThroughEngine()
    separator = StreamingSeparator(engine, engine.prepare_queries(np.ones((1, 8)), False))
    signal = np.random.default_rng(3).standard_normal(16000 * 3).astype(np.float32) * 0.1
    first = separator.process(signal[: 4 * BLOCK_ROOM_SAMPLES])  # bigger than the buffers were sized for
    grown = {name: buffer.storage for name, buffer in separator.buffers.items()}
    rest = [separator.process(signal[i : i + 256]) for i in range(4 * BLOCK_ROOM_SAMPLES, len(signal), 256)]
    assert all(buffer.storage is grown[name] for name, buffer in separator.buffers.items())
    out = np.concatenate([first, *rest], axis=1)[0]
    latency = separator.latency_samples
    np.testing.assert_allclose(out[latency:], signal[:-latency], atol=1e-5)


def test_summary_reports_what_the_separator_streamed():
    engine = _PassThroughEngine()
    separator = StreamingSeparator(engine, engine.prepare_queries(np.ones((1, 8)), False))
    assert separator.summary().compute_p99_ms is None  # no network step yet
    separator.process(np.zeros(16000, np.float32))
    summary = separator.summary()
    assert (summary.hop_frames, summary.lookahead_frames) == (12, 4)
    assert summary.latency_ms == pytest.approx(separator.latency_ms)
    assert len(summary.steps) == len(separator.stats.steps) > 0 and summary.compute_p99_ms >= summary.compute_p50_ms
