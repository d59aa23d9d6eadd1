"""The Python API: arrays in, named sources out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr
from conftest import REFERENCE_CHECKPOINT, snr_db

from clipsep_rt.api import Separator
from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.runtime.streaming import StreamingSeparator
from clipsep_rt.runtime.offline import WindowingOptions

COMMON = 65280


@pytest.fixture(scope="module")
def separator():
    return Separator.from_checkpoint(REFERENCE_CHECKPOINT, device="cpu", precision="fp32")


def test_golden_soft_output_and_noise_heads(separator, golden):
    result = separator.separate(
        golden["mixture_wav"], 16000, embeddings={"violin": golden["query_embedding"][0]}, noise_heads=True
    )
    assert result.sample_rate == 16000 and list(result.sources) == ["violin"]
    np.testing.assert_allclose(result.sources["violin"][:COMMON], golden["separated_soft_wav"], atol=1e-3, rtol=0)
    assert result.noise["violin"].shape == (2, 65535)


def test_golden_binary_output():
    binary = Separator.from_checkpoint(REFERENCE_CHECKPOINT, device="cpu", precision="fp32",
                                       windowing=WindowingOptions(mask="binary"))
    golden = np.load(REFERENCE_CHECKPOINT.with_name("official_small_nit_golden.npz"))
    out = binary.separate(golden["mixture_wav"], 16000, embeddings={"q": golden["query_embedding"]}).sources["q"]
    assert snr_db(golden["separated_binary_wav"], out[:COMMON]) >= 30


def test_other_rates_and_channels_are_resampled_and_downmixed(separator, golden):
    stereo_44k = soxr.resample(np.stack([golden["mixture_wav"]] * 2, axis=1), 16000, 44100)
    result = separator.separate(stereo_44k, 44100, embeddings={"q": golden["query_embedding"]}, mono=True)
    expected = soxr.resample(stereo_44k.mean(axis=1), 44100, 16000, quality="HQ")
    assert len(result.mixture) == len(expected)
    np.testing.assert_allclose(result.mixture, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, dtype=np.float32), "non-empty"),
        (np.array([0.0, np.nan] * 1000, dtype=np.float32), "NaN"),
        (np.zeros((2, 2, 2), dtype=np.float32), "shape"),
    ],
)
def test_bad_arrays_are_clear_errors(separator, golden, audio, message):
    with pytest.raises(ClipsepError, match=message):
        separator.separate(audio, 16000, embeddings={"q": golden["query_embedding"]})


def test_wrong_embedding_size_names_both_sizes(separator):
    with pytest.raises(ClipsepError, match="384 values .* expects 512"):
        separator.separate(np.zeros(20000, dtype=np.float32), 16000, embeddings={"q": np.ones(384)})


def test_bf16_stays_within_30_db_of_fp32(separator, golden):
    from clipsep_rt.model.device import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 / AMX); auto precision uses fp32 here")
    bf16 = Separator.from_checkpoint(REFERENCE_CHECKPOINT, device="cpu", precision="bf16")
    mixture = np.resize(golden["mixture_wav"], 150_000)
    query = {"q": golden["query_embedding"]}
    reference = separator.separate(mixture, 16000, embeddings=query).sources["q"]
    assert snr_db(reference, bf16.separate(mixture, 16000, embeddings=query).sources["q"]) >= 30


def test_stereo_in_stereo_out(separator, golden):
    """(n, 2) at 44.1 kHz: (n, 2) sources at 16 kHz, each channel under the masks of the downmix."""
    rng = np.random.default_rng(2)
    left = golden["mixture_wav"]
    right = (0.3 * np.sin(2 * np.pi * 700 * np.arange(len(left)) / 16000) + 0.02 * rng.standard_normal(len(left)))
    stereo = soxr.resample(np.stack([left, right], axis=1).astype(np.float32), 16000, 44100)
    query = {"q": golden["query_embedding"]}
    result = separator.separate(stereo, 44100, embeddings=query, noise_heads=True)
    expected = soxr.resample(stereo, 44100, 16000, quality="HQ")
    assert result.channels == 2 and result.mixture.shape == expected.shape
    np.testing.assert_allclose(result.mixture, expected, atol=1e-6)
    assert result.sources["q"].shape == expected.shape and result.noise["q"].shape == (2, *expected.shape)
    residual = result.mixture - result.sources["q"]
    assert np.abs(residual).max() > 0.01  # the residual is not the input: something was selected
    # The masks are those of the downmix: masking is linear, so the channels' mean is its output.
    of_downmix = separator.separate(result.mixture.mean(axis=1), 16000, embeddings=query).sources["q"]
    np.testing.assert_allclose(result.sources["q"].mean(axis=1), of_downmix, atol=1e-4)  # float32 rounding
    downmixed = separator.separate(stereo, 44100, embeddings=query, mono=True)  # downmixed at 44.1 kHz
    assert downmixed.channels is None and downmixed.sources["q"].shape == of_downmix.shape
    assert snr_db(of_downmix, downmixed.sources["q"]) >= 50  # only resampling rounding differs
    # A mono (n,) input keeps its mono (n,) layout, an (n, 1) input its (n, 1) layout.
    as_column = separator.separate(golden["mixture_wav"][:, None], 16000, embeddings=query)
    plain = separator.separate(golden["mixture_wav"], 16000, embeddings=query)
    np.testing.assert_allclose(as_column.sources["q"][:, 0], plain.sources["q"], atol=1e-6)


@pytest.mark.parametrize("length", [1, 160, 1023])
@pytest.mark.parametrize("channels", [None, 2])
def test_short_arrays_are_separated(separator, golden, length, channels):
    audio = golden["mixture_wav"][30_000 : 30_000 + length]
    if channels:
        audio = np.stack([audio, 0.5 * audio], axis=1)
    result = separator.separate(audio, 16000, embeddings={"q": golden["query_embedding"]}, noise_heads=True)
    assert result.sources["q"].shape == audio.shape and result.noise["q"].shape == (2, *audio.shape)
    assert np.isfinite(result.sources["q"]).all()
    # One sample at 44.1 kHz is under one at 16 kHz: one comes back, in the right layout.
    tiny = separator.separate(audio[:1], 44100, embeddings={"q": golden["query_embedding"]})
    assert tiny.sources["q"].shape == (1, *audio.shape[1:])


def test_a_stream_from_the_facade_matches_the_batch_separation(separator, golden):
    """`Separator.stream` (what app builders call): blocks in, the same audio as `separate` out,
    `latency_samples` late; `flush` returns what is left after the last block."""
    mixture = np.resize(golden["mixture_wav"], 16000 * 6).astype(np.float32)
    queries = separator.prepare_queries(["violin"], golden["query_embedding"])
    stream = separator.stream(queries, latency="quality")
    assert stream.sample_rate == 16000 and stream.query_names == ["violin"]
    out = np.concatenate([*(stream.process(mixture[i : i + 512]) for i in range(0, len(mixture), 512)), stream.flush()], axis=1)
    assert out.shape == (1, len(mixture) + stream.latency_samples)
    streamed = out[0, stream.latency_samples :]
    batch = separator.separate(mixture, 16000, queries).sources["violin"]
    middle = slice(16000, len(mixture) - 16000)
    assert snr_db(batch[middle], streamed[middle]) >= 10  # block-wise masks see less context than the batch windows
    summary = stream.summary()
    assert stream.stats.steps and summary.latency_ms == stream.latency_ms and summary.compute_p99_ms > 0


def test_a_stream_switches_queries_and_refuses_noise_heads(separator, golden):
    one = separator.prepare_queries(["violin"], golden["query_embedding"])
    two = separator.prepare_queries(["a", "b"], np.concatenate([golden["query_embedding"]] * 2))
    stream = separator.stream(one, hop_frames=4, lookahead_frames=2)
    with pytest.raises(ClipsepError, match="CLIP weights .* not in the local cache"):
        stream.set_queries(["dog barking"])  # the reference checkpoint's encoder, whose weights are not installed here
    with pytest.raises(ClipsepError, match="no query encoder"):
        StreamingSeparator(separator.pipeline.engine, one.prepared).set_queries("dog barking")
    stream.set_queries(one.prepared, names=["violin again"])  # prepared queries (the live worker's switch) and their names
    assert stream.query_names == ["violin again"]
    with pytest.raises(ClipsepError, match="n_fft = 4 x hop_length"):
        StreamingSeparator(separator.pipeline.engine, one.prepared, SpectralConfig(hop_length=128))
    assert stream.latency_samples == (4 + 2 + 3) * 256 - 1
    assert stream.process(np.zeros(4000, np.float32)).shape == (1, 4000)
    stream.set_queries(two)
    assert stream.query_names == ["a", "b"] and stream.process(np.zeros(4000, np.float32)).shape == (2, 4000)
    with_heads = separator.prepare_queries(["violin"], golden["query_embedding"], noise_heads=True)
    with pytest.raises(ClipsepError, match="noise heads"):
        separator.stream(with_heads)
    with pytest.raises(ClipsepError, match="noise heads"):
        stream.set_queries(with_heads)


def test_queries_made_once_serve_many_inputs(separator, golden):
    queries = separator.prepare_queries(["violin"], golden["query_embedding"], noise_heads=True)
    first = separator.separate(golden["mixture_wav"], 16000, queries)
    again = separator.separate(golden["mixture_wav"][:30000], 16000, queries)
    assert first.noise["violin"].shape[0] == 2 and again.sources["violin"].shape == (30000,)
    with pytest.raises(ClipsepError, match="384 values .* expects 512"):
        separator.prepare_queries(["q"], np.ones((1, 384), np.float32))


def test_the_readme_streaming_example_runs_as_written(monkeypatch, tmp_path):
    """The README's "Streaming in Python" block, run as written with the bundled model (MiniLM)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Streaming in Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("CLIPSEP_RT_CACHE", str(tmp_path))
    printed: list[tuple] = []
    namespace = {"print": lambda *values: printed.append(values)}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example itself
    stream = namespace["stream"]
    assert printed[0] == (16000, stream.latency_samples) and printed[0][1] == 4863  # the README's stated numbers
    assert namespace["out"].shape == (2, 512) and namespace["tail"].shape == (2, stream.latency_samples)
    assert printed[1][0] == ["dog barking", "rain"] and printed[1][1] > 0
