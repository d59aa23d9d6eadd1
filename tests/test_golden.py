"""The original CLIPSep-NIT pipeline's outputs, reproduced within the reference README's tolerances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import snr_db, torch_istft

from clipsep_rt.runtime.offline import OfflineSeparator, WindowingOptions
from clipsep_rt.dsp.block_spectral import BlockFrontEnd
from clipsep_rt.dsp.spectral import SpectralFrontEnd

COMMON = 65280  # the original iSTFT returns (frames - 1) * hop samples


def _torch_magnitude_and_warp(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training's front end (torch)."""
    front_end = SpectralFrontEnd()
    magnitude = front_end.stft(torch.from_numpy(wav)).abs()
    return magnitude.numpy(), front_end.warped_log_magnitude(magnitude).numpy()


def _block_magnitude_and_warp(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's front end (numpy): the full centred STFT is frames [0, 1 + n // hop)."""
    front_end = BlockFrontEnd()
    magnitude = np.abs(front_end.stft(wav))
    return magnitude, front_end.warped_log_magnitude(magnitude)


@pytest.mark.parametrize("front_end", [_torch_magnitude_and_warp, _block_magnitude_and_warp], ids=["torch", "block"])
def test_stft_and_log_warp(golden, front_end):
    magnitude, warped = front_end(golden["mixture_wav"])
    assert magnitude.shape == golden["stft_mag"].shape and warped.dtype == np.float32
    np.testing.assert_allclose(magnitude, golden["stft_mag"], atol=1e-4, rtol=0)
    error = np.abs(warped - golden["warped_log_mag"])
    assert error.max() < 5e-3
    assert np.quantile(error, 0.99) < 1e-4


def test_network_logits(golden, reference_checkpoint):
    model = reference_checkpoint.build()
    with torch.no_grad():
        logits = model(torch.from_numpy(golden["warped_log_mag"])[None, None], torch.from_numpy(golden["query_embedding"]))
    np.testing.assert_allclose(logits.query[0, 0].numpy(), golden["query_mask_logits"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(logits.noise[0, 0].numpy(), golden["noise_mask_logits"], atol=1e-3, rtol=0)


def test_linear_masks(golden):
    front_end = BlockFrontEnd()
    logits = torch.from_numpy(np.concatenate([golden["query_mask_logits"][None], golden["noise_mask_logits"]]))
    masks = front_end.linear_masks(torch.sigmoid(logits).numpy())
    np.testing.assert_allclose(masks[0], golden["query_mask_linear"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(masks[1:], golden["noise_masks_linear"], atol=1e-3, rtol=0)


def test_separation_soft_and_binary_through_the_api(golden, fp32_engine):
    vectors = fp32_engine.prepare_queries(golden["query_embedding"], noise_heads=True)
    mixture = golden["mixture_wav"]
    soft = OfflineSeparator(fp32_engine).separate(mixture, vectors)
    assert soft.shape == (3, len(mixture))  # exactly the input length
    np.testing.assert_allclose(np.clip(soft[0, :COMMON], -1, 1), golden["separated_soft_wav"], atol=1e-3, rtol=0)
    binary = OfflineSeparator(fp32_engine, options=WindowingOptions(mask="binary")).separate(mixture, vectors)
    assert snr_db(golden["separated_binary_wav"], np.clip(binary[0, :COMMON], -1, 1)) >= 30


def test_noise_heads_follow_the_golden_noise_masks(golden, fp32_engine):
    vectors = fp32_engine.prepare_queries(golden["query_embedding"], noise_heads=True)
    outputs = OfflineSeparator(fp32_engine).separate(golden["mixture_wav"], vectors)
    front_end = SpectralFrontEnd()
    spec = front_end.stft(torch.from_numpy(golden["mixture_wav"]))
    for head in range(2):
        mask = torch.from_numpy(golden["noise_masks_linear"][head])
        expected = torch_istft(spec * mask, len(golden["mixture_wav"])).numpy()
        np.testing.assert_allclose(outputs[1 + head], expected, atol=1e-3, rtol=0)
