"""Audio/video I/O: decoding odd formats, rejecting bad input, atomic writes, video remux, input expansion."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from media import video_packets, write_aac, write_video

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io import media as audio_io
from clipsep_rt.io.inputs import expand_inputs
from clipsep_rt.io.media import (
    iter_audio_blocks,
    load_audio,
    write_audio_atomic,
    write_video_with_audio_atomic,
)

TARGET = 16000
FREQ = 440.0
AMP = 0.5
# Lossy codecs add encoder delay / padding of up to a few codec frames.
LOSSY_LENGTH_TOLERANCE = 1200  # samples at 16 kHz (75 ms)


def tone(rate: int, seconds: float = 1.0, freq: float = FREQ, amp: float = AMP) -> np.ndarray:
    """float32 sine of shape (n,)."""
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def assert_one_line_naming(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    return message


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    paths = {"with_audio": folder / "clip.mp4", "silent_track": folder / "noaudio.mp4"}
    write_video(paths["with_audio"], tone(44100))
    write_video(paths["silent_track"], None)
    return paths


# ---------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("subtype", "rate", "channels", "amp_tol"),
    [
        ("PCM_U8", 8000, 1, 0.02),
        ("PCM_16", 44100, 2, 0.005),
        ("PCM_24", 96000, 1, 0.005),
        ("FLOAT", 16000, 1, 1e-6),
        ("PCM_16", 44100, 6, 0.005),
    ],
)
def test_pcm_wav_variants_decode_scaled_and_resampled(tmp_path, subtype, rate, channels, amp_tol):
    path = tmp_path / f"tone_{subtype}_{rate}_{channels}.wav"
    sf.write(path, np.repeat(tone(rate)[:, None], channels, axis=1), rate, subtype=subtype)

    audio = load_audio(path)

    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(len(audio.samples) - TARGET) <= 1
    assert audio.sample_rate == TARGET and audio.source_rate == rate and audio.source_channels == channels
    assert audio.duration_s == pytest.approx(1.0, abs=1e-3)
    assert audio.path == path and not audio.is_video
    assert np.abs(audio.samples).max() == pytest.approx(AMP, abs=amp_tol)
    assert peak_frequency(audio.samples, TARGET) == pytest.approx(FREQ, abs=2)


def test_flac_decodes(tmp_path):
    path = tmp_path / "tone.flac"
    sf.write(path, tone(44100), 44100, subtype="PCM_24")
    audio = load_audio(path)
    assert abs(len(audio.samples) - TARGET) <= 1
    assert np.abs(audio.samples).max() == pytest.approx(AMP, abs=0.005)


def test_downmix_is_channel_mean(tmp_path):
    channels = np.stack([tone(TARGET, amp=0.1 * (c + 1), freq=200.0 * (c + 1)) for c in range(6)], axis=1)
    path = tmp_path / "six.wav"
    sf.write(path, channels, TARGET, subtype="FLOAT")

    audio = load_audio(path)

    assert audio.source_channels == 6
    np.testing.assert_allclose(audio.samples, channels.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "rate", "writer"),
    [
        ("tone.ogg", 44100, lambda p, x, r: sf.write(p, x, r, format="OGG", subtype="VORBIS")),
        ("tone.opus", 48000, lambda p, x, r: sf.write(p, x, r, format="OGG", subtype="OPUS")),
        ("tone.mp3", 44100, lambda p, x, r: sf.write(p, x, r, format="MP3", subtype="MPEG_LAYER_III")),
        ("tone.m4a", 44100, write_aac),
        ("tone.aac", 22050, write_aac),  # raw ADTS stream
    ],
)
def test_lossy_formats_decode(tmp_path, name, rate, writer):
    path = tmp_path / name
    writer(path, tone(rate), rate)

    audio = load_audio(path)

    assert audio.source_rate == rate and audio.source_channels == 1 and not audio.is_video
    assert abs(len(audio.samples) - TARGET) <= LOSSY_LENGTH_TOLERANCE
    middle = audio.samples[TARGET // 10 : -TARGET // 10]  # the abrupt start/end rings in lossy codecs
    assert np.abs(middle).max() == pytest.approx(AMP, abs=0.03)
    assert peak_frequency(audio.samples, TARGET) == pytest.approx(FREQ, abs=2)


def test_video_audio_track_decodes(videos):
    audio = load_audio(videos["with_audio"])
    assert audio.is_video and audio.source_rate == 44100
    assert abs(len(audio.samples) - TARGET) <= LOSSY_LENGTH_TOLERANCE
    assert peak_frequency(audio.samples, TARGET) == pytest.approx(FREQ, abs=2)


def test_silent_file_loads_as_zeros(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(44100, dtype=np.float32), 44100)
    audio = load_audio(path)
    assert abs(len(audio.samples) - TARGET) <= 1
    assert not audio.samples.any()


# ---------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(ClipsepError) as error:
        load_audio(path)
    assert "no such file" in assert_one_line_naming(error, path)


def test_directory(tmp_path):
    with pytest.raises(ClipsepError) as error:
        load_audio(tmp_path)
    assert "directory" in assert_one_line_naming(error, tmp_path)


def test_unreadable_file_chmod(tmp_path):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(TARGET), TARGET)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running with privileges (e.g. root) that read files despite mode 000")
        with pytest.raises(ClipsepError) as error:
            load_audio(path)
        assert "permission denied" in assert_one_line_naming(error, path)
    finally:
        path.chmod(0o644)


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    """The permission check without relying on chmod, which root ignores."""
    path = tmp_path / "locked.wav"
    sf.write(path, tone(TARGET), TARGET)

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(audio_io, "open", denied, raising=False)  # shadows the builtin in the module
    with pytest.raises(ClipsepError) as error:
        load_audio(path)
    assert "permission denied" in assert_one_line_naming(error, path)


def test_corrupt_files(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    fake_video = tmp_path / "garbage.mp4"
    fake_video.write_bytes(garbage.read_bytes())
    good = tmp_path / "good.wav"
    sf.write(good, tone(TARGET), TARGET)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    for path in (garbage, fake_video, truncated):
        with pytest.raises(ClipsepError) as error:
            load_audio(path)
        assert_one_line_naming(error, path)


def test_video_without_audio(videos):
    with pytest.raises(ClipsepError) as error:
        load_audio(videos["silent_track"])
    assert "no audio stream" in assert_one_line_naming(error, videos["silent_track"])


def test_empty_files(tmp_path):
    no_frames = tmp_path / "no_frames.wav"
    sf.write(no_frames, np.zeros((0, 1), dtype=np.float32), TARGET)
    zero_bytes = tmp_path / "zero_bytes.wav"
    zero_bytes.touch()
    with pytest.raises(ClipsepError) as error:
        load_audio(no_frames)
    assert "no audio samples" in assert_one_line_naming(error, no_frames)
    with pytest.raises(ClipsepError) as error:
        load_audio(zero_bytes)
    assert "empty" in assert_one_line_naming(error, zero_bytes)


def test_too_short(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, tone(TARGET, seconds=500 / TARGET), TARGET)
    with pytest.raises(ClipsepError) as error:
        load_audio(path, min_samples=1024)
    message = assert_one_line_naming(error, path)
    assert "31.2 ms" in message and "64.0 ms" in message
    assert len(load_audio(path, min_samples=500).samples) == 500


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    samples = tone(TARGET)
    samples[1234] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, samples, TARGET, subtype="FLOAT")
    with pytest.raises(ClipsepError) as error:
        load_audio(path)
    assert "NaN or infinite" in assert_one_line_naming(error, path)
    with pytest.raises(ClipsepError):
        list(iter_audio_blocks(path, 4096))


# ---------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("name", ["long.wav", "long.m4a"])
def test_iter_audio_blocks_matches_load_audio(tmp_path, name):
    path = tmp_path / name
    samples = np.stack([tone(44100, 3.0), tone(44100, 3.0, freq=1000)], axis=1)
    if name.endswith(".wav"):
        sf.write(path, samples, 44100, subtype="PCM_16")
    else:
        write_aac(path, samples.mean(axis=1), 44100)

    blocks = list(iter_audio_blocks(path, 5000))

    assert all(len(block) == 5000 for block in blocks[:-1]) and 0 < len(blocks[-1]) <= 5000
    assert all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path).samples)


def test_iter_audio_blocks_validates(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, tone(TARGET, seconds=0.01), TARGET)
    with pytest.raises(ClipsepError, match="too short"):
        list(iter_audio_blocks(short, 4096))
    with pytest.raises(ClipsepError, match="no such file"):
        list(iter_audio_blocks(tmp_path / "missing.wav", 4096))


# ---------------------------------------------------------------------------- writing


def test_write_audio_float_wav_round_trip_keeps_overshoot(tmp_path):
    path = tmp_path / "out.wav"
    samples = np.stack([tone(TARGET, amp=1.5), tone(TARGET, amp=0.25)], axis=1)
    write_audio_atomic(path, samples, TARGET)
    data, rate = sf.read(path, dtype="float32")
    assert rate == TARGET and sf.info(path).subtype == "FLOAT"
    np.testing.assert_array_equal(data, samples)


def test_write_audio_pcm_and_flac_clip(tmp_path):
    samples = tone(TARGET, amp=1.5)
    for name, subtype in [("out16.wav", "PCM_16"), ("out.flac", None)]:
        path = tmp_path / name
        write_audio_atomic(path, samples, TARGET, subtype=subtype)
        data, _ = sf.read(path, dtype="float32")
        assert data.max() == pytest.approx(1.0, abs=1e-3) and data.min() == pytest.approx(-1.0, abs=1e-3)
    assert sf.info(tmp_path / "out.flac").subtype == "PCM_24"


def test_write_audio_refuses_existing_unless_overwrite(tmp_path):
    path = tmp_path / "out.wav"
    write_audio_atomic(path, tone(TARGET), TARGET)
    with pytest.raises(ClipsepError) as error:
        write_audio_atomic(path, np.zeros(10, dtype=np.float32), TARGET)
    assert "already exists" in assert_one_line_naming(error, path)
    assert np.abs(sf.read(path)[0]).max() > 0.4  # untouched

    write_audio_atomic(path, np.zeros(10, dtype=np.float32), TARGET, overwrite=True)
    assert len(sf.read(path)[0]) == 10
    assert os.listdir(tmp_path) == ["out.wav"]


def test_write_audio_failure_leaves_nothing(tmp_path, monkeypatch):
    def broken_write(sound_file, data):  # after the header: a partial file
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sf.SoundFile, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_audio_atomic(tmp_path / "out.wav", tone(TARGET), TARGET)
    assert os.listdir(tmp_path) == []


def test_write_audio_rejects_bad_shape_and_extension(tmp_path):
    with pytest.raises(ValueError):
        write_audio_atomic(tmp_path / "out.wav", np.zeros((2, 3, 4), dtype=np.float32), TARGET)
    with pytest.raises(ClipsepError):
        write_audio_atomic(tmp_path / "out.mp3", tone(TARGET), TARGET)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- video remux


def test_video_remux_copies_video_and_replaces_audio(tmp_path, videos):
    source = videos["with_audio"]
    out = tmp_path / "separated.mp4"
    new_audio = tone(TARGET, freq=1000.0, amp=0.3)

    write_video_with_audio_atomic(source, out, new_audio, TARGET)

    assert video_packets(out) == video_packets(source)  # same count, byte-identical: copied
    with av.open(str(out)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert container.streams.audio[0].codec_context.name == "aac"
    decoded = load_audio(out)
    assert decoded.is_video and abs(len(decoded.samples) - len(new_audio)) <= 1024
    assert peak_frequency(decoded.samples, TARGET) == pytest.approx(1000.0, abs=2)
    assert os.listdir(tmp_path) == ["separated.mp4"]


def test_video_remux_to_webm_uses_opus(tmp_path):
    source = tmp_path / "clip.webm"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libvpx", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    out = tmp_path / "separated.webm"

    write_video_with_audio_atomic(source, out, np.stack([tone(TARGET, 0.5)] * 2, axis=1), TARGET)

    assert video_packets(out) == video_packets(source)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
        assert container.streams.audio[0].codec_context.channels == 2


def test_video_remux_refuses_existing_and_cleans_up(tmp_path, videos, monkeypatch):
    out = tmp_path / "separated.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(ClipsepError, match="already exists"):
        write_video_with_audio_atomic(videos["with_audio"], out, tone(TARGET), TARGET)
    assert out.read_bytes() == b"keep me"

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(audio_io, "_interleave", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_video_with_audio_atomic(videos["with_audio"], out, tone(TARGET), TARGET, overwrite=True)
    assert os.listdir(tmp_path) == ["separated.mp4"] and out.read_bytes() == b"keep me"


def test_video_remux_needs_a_video_stream(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(TARGET), TARGET)
    with pytest.raises(ClipsepError) as error:
        write_video_with_audio_atomic(wav, tmp_path / "out.mp4", tone(TARGET), TARGET)
    assert "no video stream" in assert_one_line_naming(error, wav)
    assert os.listdir(tmp_path) == ["a.wav"]


# ---------------------------------------------------------------------------- expand_inputs


def test_expand_inputs(tmp_path):
    names = ["b.wav", "a.flac", "sub/c.mp4", "sub/deeper/d.MP3", "notes.txt", ".hidden.wav", ".cache/e.wav"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    root = str(tmp_path)

    files, errors = expand_inputs([root])
    assert files == [tmp_path / name for name in ["a.flac", "b.wav", "sub/c.mp4", "sub/deeper/d.MP3"]]
    assert errors == []

    files, errors = expand_inputs(
        [f"{root}/*.wav", f"{root}/**/*.mp4", f"{root}/b.wav", f"{root}/notes.txt", f"{root}/missing.wav",
         f"{root}/*.ogg", f"{root}/empty"]
    )
    assert files == [tmp_path / "b.wav", tmp_path / "sub/c.mp4", tmp_path / "notes.txt"]
    assert len(errors) == 3
    assert f"{root}/missing.wav" in errors[0] and "no such file" in errors[0]
    assert f"{root}/*.ogg" in errors[1] and f"{root}/empty" in errors[2]


def test_expand_inputs_takes_existing_paths_literally(tmp_path):
    bracketed = tmp_path / "song [live].wav"
    bracketed.write_bytes(b"")
    assert expand_inputs([str(bracketed)]) == ([bracketed], [])


# ---------------------------------------------------------------------------- channels kept, short files


def test_channels_are_kept_with_mono_false(tmp_path):
    """mono=False: (n, C), each channel decoded and resampled as if it were its own mono file."""
    rate = 44100
    channels = np.stack([tone(rate, 2.0, freq=300.0), tone(rate, 2.0, freq=2000.0, amp=0.2), tone(rate, 2.0, freq=5000.0)],
                        axis=1)
    path = tmp_path / "three.wav"
    sf.write(path, channels, rate, subtype="FLOAT")

    audio = load_audio(path, mono=False)

    assert audio.samples.shape == (len(load_audio(path).samples), 3) and audio.samples.dtype == np.float32
    assert audio.source_channels == 3
    for channel in range(3):
        alone = tmp_path / f"channel{channel}.wav"
        sf.write(alone, channels[:, channel], rate, subtype="FLOAT")
        np.testing.assert_allclose(audio.samples[:, channel], load_audio(alone).samples, atol=1e-6)
    np.testing.assert_allclose(audio.samples.mean(axis=1), load_audio(path).samples, atol=1e-6)
    blocks = list(iter_audio_blocks(path, 5000, mono=False))
    assert all(block.shape == (5000, 3) for block in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), audio.samples)


def test_stereo_video_audio_keeps_its_channels(tmp_path):
    path = tmp_path / "stereo.mp4"
    write_video(path, np.stack([tone(44100), tone(44100, freq=1000.0, amp=0.2)], axis=1))
    audio = load_audio(path, mono=False)
    assert audio.is_video and audio.samples.shape[1] == 2
    assert peak_frequency(audio.samples[:, 0], TARGET) == pytest.approx(FREQ, abs=2)
    assert peak_frequency(audio.samples[:, 1], TARGET) == pytest.approx(1000.0, abs=2)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_one_sample_file_decodes_with_min_samples_0(tmp_path, channels):
    path = tmp_path / "one.wav"
    sf.write(path, np.full((1, channels), 0.25, dtype=np.float32), TARGET, subtype="FLOAT")
    assert load_audio(path, min_samples=0, mono=False).samples.shape == (1, channels)
    at_44k = tmp_path / "one_44k.wav"
    sf.write(at_44k, np.full((1, channels), 0.25, dtype=np.float32), 44100, subtype="FLOAT")
    # Under one sample at 16 kHz (soxr rounds it to none): one, not nothing (issue 23, row 13).
    assert load_audio(at_44k, min_samples=0, mono=False).samples.shape == (1, channels)
    assert [block.shape for block in iter_audio_blocks(at_44k, 4096, min_samples=0)] == [(1,)]
    empty = tmp_path / "none.wav"
    sf.write(empty, np.zeros((0, channels), dtype=np.float32), TARGET)
    with pytest.raises(ClipsepError, match="no audio samples"):  # only an empty file is an error
        load_audio(empty, min_samples=0, mono=False)
