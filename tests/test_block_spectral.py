"""The runtime's numpy front end against torch's STFT/iSTFT and training's torch front end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import torch_istft

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.block_spectral import BlockFrontEnd, apply_real_masks
from clipsep_rt.dsp.spectral import SpectralFrontEnd

CONFIG = SpectralConfig()
HOP, HALF = CONFIG.hop_length, CONFIG.n_fft // 2


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(20_011) / CONFIG.sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)


def _frames(length: int) -> int:
    return 1 + length // HOP


def test_stft_matches_torch(signal):
    block = BlockFrontEnd(CONFIG)
    expected = SpectralFrontEnd(CONFIG).stft(torch.from_numpy(signal)).numpy()
    got = block.stft_frames(signal, 0, 0, _frames(len(signal)))
    np.testing.assert_array_equal(block.stft(signal), got)  # the whole-signal shorthand
    assert got.dtype == np.complex64 and got.shape == expected.shape == (513, _frames(len(signal)))
    np.testing.assert_allclose(got, expected, atol=2e-4 * np.abs(expected).max(), rtol=0)


def test_frames_of_a_signal_held_in_pieces_are_those_of_the_whole(signal):
    """Any frame range from a piece that holds the samples those frames reach."""
    block = BlockFrontEnd(CONFIG)
    whole = block.stft_frames(signal, 0, 0, _frames(len(signal)))
    for first, stop in ((0, 5), (7, 19), (60, _frames(len(signal)))):
        base = max(0, first * HOP - HALF)
        piece = signal[base : (stop - 1) * HOP + HALF]
        np.testing.assert_allclose(block.stft_frames(piece, base, first, stop), whole[:, first:stop], atol=1e-5, rtol=0)
    stereo = np.stack([signal, -signal])  # (C, n): channels transform alike
    both = block.stft_frames(stereo, 0, 3, 9)
    np.testing.assert_allclose(both[1], -both[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(both[0], whole[:, 3:9], atol=1e-6, rtol=0)


@pytest.mark.parametrize("length", [1, 1000, 20_011])
def test_istft_matches_torch_and_inverts_the_stft(signal, length):
    block = BlockFrontEnd(CONFIG)
    x = signal[:length]
    rng = np.random.default_rng(length)
    spec = block.stft_frames(x, 0, 0, _frames(length))
    masked = apply_real_masks(spec, rng.uniform(0, 1, spec.shape).astype(np.float32))
    expected = torch_istft(torch.from_numpy(masked), length).numpy()
    got = block.istft(masked, length)
    assert got.dtype == np.float32 and got.shape == (length,)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(block.istft(spec, length), x, atol=1e-5, rtol=0)  # perfect reconstruction


def test_istft_span_gives_the_samples_of_the_whole_inverse(signal):
    block = BlockFrontEnd(CONFIG)
    spec = block.stft_frames(signal, 0, 0, _frames(len(signal)))
    whole = block.istft(spec, len(signal))
    start, end = 5_000, 9_000
    first = block.istft_first_frame(start)
    last = -(-end // HOP) + 2  # every frame that reaches a sample before `end`
    np.testing.assert_allclose(block.istft_span(spec[:, first:last], first, start, end), whole[start:end], atol=1e-5, rtol=0)


def test_warp_and_masks_match_training_and_the_original_layout(signal):
    block, torch_front = BlockFrontEnd(CONFIG), SpectralFrontEnd(CONFIG)
    magnitude = np.abs(block.stft_frames(signal, 0, 0, 40))
    expected = torch_front.warped_log_magnitude(torch.from_numpy(magnitude)).numpy()
    np.testing.assert_allclose(block.warped_log_magnitude(magnitude), expected, atol=1e-4, rtol=0)
    probability = np.random.default_rng(2).uniform(0, 1, (3, 256, 40)).astype(np.float32)
    masks = block.linear_masks(probability, union_rows=[0, 2])
    assert masks.shape == (4, 513, 40)
    np.testing.assert_allclose(masks[3], np.maximum(masks[0], masks[2]), atol=0, rtol=0)
    binary = block.linear_masks(probability, mode="binary")
    assert set(np.unique(binary)) <= {0.0, 1.0}
    np.testing.assert_array_equal(binary, (masks[:3] > 0.5).astype(np.float32))
    with pytest.raises(ValueError, match="mask mode"):
        block.linear_masks(probability, mode="hard")


def test_real_masks_scale_real_and_imaginary_parts():
    rng = np.random.default_rng(4)
    spec = (rng.standard_normal((2, 513, 6)) + 1j * rng.standard_normal((2, 513, 6))).astype(np.complex64)
    masks = rng.uniform(0, 1, (3, 1, 513, 6)).astype(np.float32)
    got = apply_real_masks(spec, masks)
    assert got.shape == (3, 2, 513, 6) and got.dtype == np.complex64
    np.testing.assert_allclose(got, spec * masks, atol=1e-6, rtol=0)


def test_configs_it_cannot_transform_are_refused():
    with pytest.raises(ValueError, match="multiple of hop_length"):
        BlockFrontEnd(SpectralConfig(n_fft=1000, win_length=1000, hop_length=256))
