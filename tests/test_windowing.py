"""Long inputs: window placement, crossfade, continuity, block-size and query-count invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import torch_istft

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.errors import OptionError
from clipsep_rt.model import CLIPSepSeparator
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.offline import OfflineSeparator, WindowingOptions
from clipsep_rt.dsp.windowing import crossfade_weights, window_starts
from clipsep_rt.dsp.block_spectral import BlockFrontEnd
from clipsep_rt.dsp.spectral import SpectralFrontEnd

HOP = 256


def test_window_grid():
    assert window_starts(256, 256, 192) == [0]  # 65,535 samples = exactly one window
    assert window_starts(100, 256, 192) == [0]  # short input: one zero-padded window
    assert window_starts(448, 256, 192) == [0, 192]
    assert window_starts(600, 256, 192) == [0, 192, 344]  # last window ends on the last frame
    weights = crossfade_weights(256, 64)
    # Ramps of neighbouring windows (192 frames apart) sum to one.
    assert isinstance(weights, np.ndarray) and weights.dtype == np.float32 and weights.shape == (256,)
    np.testing.assert_allclose(weights[192:] + weights[:64], 1.0)
    assert (weights[64:192] == 1).all()
    with pytest.raises(ValueError):
        crossfade_weights(256, 129)


def test_one_window_input_is_one_window(golden, fp32_engine):
    assert SpectralConfig().window_samples == len(golden["mixture_wav"]) == 65535
    vectors = fp32_engine.prepare_queries(golden["query_embedding"], noise_heads=False)
    for overlap in (0, 64, 128):  # the overlap cannot matter for a single window
        out = OfflineSeparator(fp32_engine, options=WindowingOptions(overlap_frames=overlap)).separate(golden["mixture_wav"], vectors)
        np.testing.assert_allclose(out[0, :65280], golden["separated_soft_wav"], atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def long_mixture(golden):
    """About 20 s: the golden mixture, a chirp and noise, so windows see different content."""
    rng = np.random.default_rng(1)
    t = np.arange(330_000) / 16000
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 40 * t**2))
    noise = 0.05 * rng.standard_normal(len(t))
    tiled = np.resize(golden["mixture_wav"], len(t))
    return (tiled + chirp + noise).astype(np.float32)


def _vectors(engine, count, seed=0):
    embeddings = np.random.default_rng(seed).standard_normal((count, 512)).astype(np.float32)
    return engine.prepare_queries(embeddings, noise_heads=False)


def test_matches_single_window_processing_in_the_middle_of_each_window(long_mixture, fp32_engine):
    overlap = 64
    separator = OfflineSeparator(fp32_engine, options=WindowingOptions(overlap_frames=overlap, batch_windows=3))
    vectors = _vectors(fp32_engine, 1)
    windowed = separator.separate(long_mixture, vectors)[0]
    front_end = SpectralFrontEnd()  # torch's STFT/iSTFT: an independent reference
    spec = front_end.stft(torch.from_numpy(long_mixture))
    log_mag = front_end.warped_log_magnitude(spec.abs()).numpy()
    starts = window_starts(spec.shape[-1], 256, 256 - overlap)
    assert len(starts) >= 5
    block_front_end = BlockFrontEnd()  # the masks' unwarp lives in the runtime front end only
    for index, start in enumerate(starts):
        probability = fp32_engine.probabilities(log_mag[None, None, :, start : start + 256], vectors)[0]
        mask = torch.zeros(1, 513, spec.shape[-1])
        mask[..., start : start + 256] = torch.from_numpy(block_front_end.linear_masks(probability))
        alone = torch_istft(spec * mask, len(long_mixture))[0].numpy()
        # Samples built only from frames no other window covers with weight (an STFT frame
        # spans two hops either side of its centre); the last window, moved left to end on
        # the last frame, overlaps its predecessor by more than `overlap`.
        first = 0 if index == 0 else max(start + overlap, starts[index - 1] + 256)
        last = spec.shape[-1] if index == len(starts) - 1 else min(start + 256 - overlap, starts[index + 1])
        assert last - first > 4
        middle = slice((first + 2) * HOP, min((last - 2) * HOP, len(long_mixture)))
        np.testing.assert_allclose(windowed[middle], alone[middle], atol=2e-5, rtol=0)


def test_continuous_across_window_boundaries(fp32_engine):
    """A steady tone + noise: the output's sample-to-sample steps near window seams are no
    larger than anywhere else (no clicks)."""
    rng = np.random.default_rng(3)
    t = np.arange(16000 * 16) / 16000
    mixture = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
    separator = OfflineSeparator(fp32_engine, options=WindowingOptions(overlap_frames=64))
    out = separator.separate(mixture, _vectors(fp32_engine, 1))[0]
    steps = np.abs(np.diff(out))
    seams = np.zeros(len(steps), dtype=bool)
    for start in window_starts(1 + len(mixture) // HOP, 256, 192)[1:]:
        seams[(start - 2) * HOP : (start + 66) * HOP] = True  # the whole crossfade region
    inner = steps[~seams][HOP * 4 : -HOP * 4]
    assert steps[seams].max() <= 1.05 * inner.max()


def test_any_block_size_gives_the_same_audio(long_mixture, fp32_engine):
    separator = OfflineSeparator(fp32_engine, options=WindowingOptions(batch_windows=2))
    vectors = _vectors(fp32_engine, 2)
    whole = separator.separate(long_mixture, vectors)
    for block in (997, 44_100):
        pieces = list(separator.separate_blocks((long_mixture[i : i + block] for i in range(0, len(long_mixture), block)), vectors))
        np.testing.assert_array_equal(np.concatenate([m for m, _ in pieces]), long_mixture)
        np.testing.assert_allclose(np.concatenate([o for _, o in pieces], axis=1), whole, atol=1e-6, rtol=0)


def test_memory_does_not_grow_with_length():
    """The stream emits audio while it reads: what it holds back stays under a fixed bound."""
    torch.manual_seed(0)
    engine = TorchEngine(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), "cpu", "fp32")
    vectors = engine.prepare_queries(np.ones((1, 8), dtype=np.float32), noise_heads=False)
    separator = OfflineSeparator(engine, options=WindowingOptions(batch_windows=2))
    rng = np.random.default_rng(0)
    block = 16000
    consumed = emitted = 0
    held_back = []

    def blocks():
        nonlocal consumed
        for _ in range(16000 * 120 // block):  # two minutes
            consumed += block
            yield (0.1 * rng.standard_normal(block)).astype(np.float32)

    for mixture, _ in separator.separate_blocks(blocks(), vectors):
        emitted += len(mixture)
        held_back.append(consumed - emitted)
    assert emitted == consumed == 16000 * 120
    # At most one batch of windows plus one block and the STFT context.
    assert max(held_back) <= (2 * 192 + 256 + 8) * HOP + block


def test_n_queries_in_one_run_equal_n_separate_runs(golden, fp32_engine):
    mixture = np.resize(golden["mixture_wav"], 100_000)
    separator = OfflineSeparator(fp32_engine)
    together = separator.separate(mixture, _vectors(fp32_engine, 3))
    embeddings = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    for index in range(3):
        alone = separator.separate(mixture, fp32_engine.prepare_queries(embeddings[index : index + 1], noise_heads=False))
        np.testing.assert_allclose(together[index], alone[0], atol=1e-6, rtol=0)


def test_union_row_is_the_max_of_the_query_masks(golden, fp32_engine):
    mixture = golden["mixture_wav"]
    vectors = _vectors(fp32_engine, 2)
    out = OfflineSeparator(fp32_engine).separate(mixture, vectors, union_rows=[0, 1])
    assert out.shape == (3, len(mixture))
    front_end = SpectralFrontEnd()  # torch's STFT/iSTFT: an independent reference
    spec = front_end.stft(torch.from_numpy(mixture))
    probability = fp32_engine.probabilities(front_end.warped_log_magnitude(spec.abs()).numpy()[None, None], vectors)[0]
    union = torch.from_numpy(BlockFrontEnd().linear_masks(probability).max(axis=0))
    np.testing.assert_allclose(out[2], torch_istft(spec * union, len(mixture)).numpy(), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------- channels and short inputs


def test_channels_are_masked_by_the_mono_masks(long_mixture, fp32_engine):
    """(n, C) in: the masks of the downmix are applied to each channel, over many windows and
    blocks, so each channel's selection + residual is that channel."""
    rng = np.random.default_rng(11)
    right = (0.3 * np.sin(2 * np.pi * 1200 * np.arange(len(long_mixture)) / 16000)
             + 0.02 * rng.standard_normal(len(long_mixture))).astype(np.float32)
    stereo = np.stack([long_mixture, right], axis=1)  # different content per channel
    separator = OfflineSeparator(fp32_engine, options=WindowingOptions(batch_windows=2))
    vectors = _vectors(fp32_engine, 2)
    out = separator.separate(stereo, vectors, union_rows=[0, 1])
    assert out.shape == (3, len(stereo), 2) and out.dtype == np.float32
    mono = separator.separate(stereo.mean(axis=1), vectors, union_rows=[0, 1])
    # Masking is linear in the signal: the channels' mean is the downmix's output.
    np.testing.assert_allclose(out.mean(axis=2), mono, atol=2e-6, rtol=0)
    assert np.abs(out[..., 0] - out[..., 1]).max() > 0.05  # the channels stay apart
    # One channel alone, under the masks of the downmix (computed here from the mono STFT).
    front_end, block_front_end = SpectralFrontEnd(), BlockFrontEnd()  # torch's STFT/iSTFT: an independent reference
    downmix = torch.from_numpy(stereo.mean(axis=1))
    masks_of = lambda spec, start: torch.from_numpy(block_front_end.linear_masks(  # noqa: E731
        fp32_engine.probabilities(front_end.warped_log_magnitude(spec.abs()).numpy()[None, None, :, start : start + 256],
                                  vectors)[0]))
    spec_mono, spec_right = front_end.stft(downmix), front_end.stft(torch.from_numpy(right))
    masks = masks_of(spec_mono, 0)  # the first window; its middle is that window's own output
    alone = torch_istft(spec_right[:, :256] * masks, 255 * HOP)[0].numpy()
    np.testing.assert_allclose(out[0, 2 * HOP : 150 * HOP, 1], alone[2 * HOP : 150 * HOP], atol=2e-5, rtol=0)
    # Streaming in blocks gives the same (m, C) blocks.
    pieces = list(separator.separate_blocks((stereo[i : i + 44_100] for i in range(0, len(stereo), 44_100)), vectors, [0, 1],
                                   channels=2))
    np.testing.assert_array_equal(np.concatenate([m for m, _ in pieces]), stereo)
    np.testing.assert_allclose(np.concatenate([o for _, o in pieces], axis=1), out, atol=1e-6, rtol=0)


def test_the_same_signal_in_every_channel_gets_its_mono_output(golden, fp32_engine):
    mixture = np.resize(golden["mixture_wav"], 90_000)
    separator = OfflineSeparator(fp32_engine)
    vectors = _vectors(fp32_engine, 1)
    mono = separator.separate(mixture, vectors)
    out = separator.separate(np.stack([mixture] * 3, axis=1), vectors)
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], mono, atol=1e-6, rtol=0)
    with pytest.raises(OptionError, match=r"\(m, 2\)"):
        list(separator.separate_blocks([np.stack([mixture] * 3, axis=1)], vectors, channels=2))


@pytest.mark.parametrize("length", [1, 160, 1023])
@pytest.mark.parametrize("channels", [None, 2])
def test_short_inputs_are_the_start_of_their_zero_padded_separation(golden, fp32_engine, length, channels):
    """Shorter than an STFT frame or a window: zero-padded to one window, trimmed back."""
    signal = golden["mixture_wav"][20_000 : 20_000 + length]
    if channels:
        signal = np.stack([signal, -0.5 * signal[::-1]], axis=1)
    padded = np.zeros((SpectralConfig().window_samples, *signal.shape[1:]), dtype=np.float32)
    padded[:length] = signal
    separator = OfflineSeparator(fp32_engine)
    vectors = fp32_engine.prepare_queries(golden["query_embedding"], noise_heads=True)
    out = separator.separate(signal, vectors)
    assert out.shape == (3, *signal.shape)
    np.testing.assert_allclose(out, separator.separate(padded, vectors)[:, :length], atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [None, 2])
def test_an_empty_stream_yields_one_empty_block(fp32_engine, channels):
    separator = OfflineSeparator(fp32_engine)
    (mixture, outputs), = separator.separate_blocks([], _vectors(fp32_engine, 2), union_rows=[0, 1], channels=channels)
    assert mixture.shape == ((0,) if channels is None else (0, 2)) and outputs.shape == (3, *mixture.shape)
