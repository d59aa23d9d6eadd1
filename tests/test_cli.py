"""The clipsep-rt command end to end: golden outputs, options, batch failures, file safety."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import REFERENCE_CHECKPOINT, snr_db, write_wav
from media import video_packets, write_video
from tiny_clip import tiny_clip

from clipsep_rt.cli import main
from clipsep_rt.io.media import load_audio, probe

COMMON = 65280


@pytest.fixture
def workspace(tmp_path, golden):
    """A mixture, its golden query vector, and a converted checkpoint, all on disk."""
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])
    np.save(tmp_path / "violin.npy", golden["query_embedding"])
    converted = tmp_path / "model.safetensors"
    assert main(["convert", str(REFERENCE_CHECKPOINT), "-o", str(converted)]) == 0
    return tmp_path


def separate(workspace: Path, *args: str, checkpoint: str = "model.safetensors") -> int:
    base = ["--query-embedding", str(workspace / "violin.npy"), "-c", str(workspace / checkpoint),
            "--precision", "fp32", "--quiet"]
    output = [] if "-o" in args else ["-o", str(workspace / "out")]
    return main([*base, *output, *args])


def read(path: Path, expected_rate: int = 16000) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32")
    assert rate == expected_rate
    return samples


@pytest.mark.parametrize("checkpoint", ["model.safetensors", str(REFERENCE_CHECKPOINT)])
def test_cli_reproduces_golden_soft_output(workspace, golden, checkpoint):
    assert separate(workspace, str(workspace / "mix.wav"), checkpoint=checkpoint) == 0
    out = read(workspace / "out" / "mix_violin.wav")
    assert len(out) == len(golden["mixture_wav"])
    np.testing.assert_allclose(out[:COMMON], golden["separated_soft_wav"], atol=1e-3, rtol=0)


def test_cli_binary_mask(workspace, golden):
    assert separate(workspace, "--input", str(workspace / "mix.wav"), "--mask", "binary") == 0
    assert snr_db(golden["separated_binary_wav"], read(workspace / "out" / "mix_violin.wav")[:COMMON]) >= 30


def test_noise_heads_residual_and_combine(workspace, golden):
    np.save(workspace / "other.npy", -golden["query_embedding"][0])
    extra = ["--query-embedding", str(workspace / "other.npy"), "--noise-heads", "--residual", "--combine"]
    assert separate(workspace, str(workspace / "mix.wav"), *extra) == 0
    names = sorted(p.name for p in (workspace / "out").glob("*.wav"))  # beside them: the results manifest
    assert names == sorted(
        f"mix_{n}.wav" for n in ["violin", "violin_noise1", "violin_noise2", "violin_residual", "other",
                                 "other_noise1", "other_noise2", "other_residual", "combined", "combined_residual"]
    )
    mixture = golden["mixture_wav"]
    out = {p.stem[4:]: read(p) for p in (workspace / "out").glob("*.wav")}
    np.testing.assert_allclose(out["violin"] + out["violin_residual"], mixture, atol=1e-6)
    np.testing.assert_allclose(out["combined"] + out["combined_residual"], mixture, atol=1e-6)
    # The union keeps at least as much energy as either query alone.
    assert np.sum(out["combined"] ** 2) >= max(np.sum(out["violin"] ** 2), np.sum(out["other"] ** 2)) * 0.99


def test_n_queries_equal_n_runs(workspace, golden):
    rng = np.random.default_rng(5)
    np.save(workspace / "three.npy", rng.standard_normal((3, 512)).astype(np.float32))
    args = ["-c", str(workspace / "model.safetensors"), "--precision", "fp32", "--quiet", str(workspace / "mix.wav")]
    assert main([*args, "--query-embedding", str(workspace / "three.npy"), "-o", str(workspace / "together")]) == 0
    rows = np.load(workspace / "three.npy")
    for index in range(3):
        np.save(workspace / f"three_{index}.npy", rows[index])
        out_dir = workspace / f"alone{index}"
        assert main([*args, "--query-embedding", str(workspace / f"three_{index}.npy"), "-o", str(out_dir)]) == 0
        np.testing.assert_allclose(
            read(workspace / "together" / f"mix_three_{index}.wav"), read(out_dir / f"mix_three_{index}.wav"), atol=1e-6
        )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bad_and_odd_inputs(folder: Path, mixture: np.ndarray) -> tuple[dict[str, Path], dict[str, Path]]:
    """(bad inputs that must fail with a one-line error, odd ones that must be handled)."""
    folder.mkdir()
    t = np.arange(24000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    bad = {
        "missing": folder / "missing.wav",
        "corrupt": folder / "corrupt.wav",
        "empty": folder / "empty.wav",
        "NaN": folder / "nan.wav",
        "Inf": folder / "inf.wav",
        "zero bytes": folder / "zero.flac",
    }
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(256)))
    write_wav(folder / "empty.wav", np.zeros(0, dtype=np.float32))
    write_wav(folder / "nan.wav", np.where(np.arange(len(tone)) == 999, np.nan, tone).astype(np.float32))
    write_wav(folder / "inf.wav", np.where(np.arange(len(tone)) == 5, np.inf, tone).astype(np.float32))
    (folder / "zero.flac").write_bytes(b"")
    stereo = np.stack([mixture, 0.5 * mixture], axis=1)
    odd = {
        "8-bit": write_wav(folder / "u8.wav", mixture, subtype="PCM_U8"),
        "24-bit": write_wav(folder / "pcm24.wav", mixture, subtype="PCM_24"),
        "6 channels": write_wav(folder / "six.wav", np.tile(stereo, (1, 3)), subtype="PCM_16"),
        "8 kHz": write_wav(folder / "rate8k.wav", mixture[::2], rate=8000, subtype="PCM_16"),
        "96 kHz": write_wav(folder / "rate96k.wav", np.repeat(mixture, 6), rate=96000, subtype="PCM_16"),
        "silent": write_wav(folder / "silent.wav", np.zeros(40000, dtype=np.float32), subtype="PCM_16"),
        "mp3": folder / "tone.mp3",
        "ogg": write_wav(folder / "vorbis.ogg", tone, subtype="VORBIS"),
    }
    sf.write(folder / "tone.mp3", tone, 16000, format="MP3")
    return bad, odd


def test_batch_with_bad_and_odd_inputs(workspace, golden, capsys):
    bad, odd = make_bad_and_odd_inputs(workspace / "in", golden["mixture_wav"])
    before = {p: _digest(p) for p in (workspace / "in").iterdir()}
    inputs = [str(p) for p in [*bad.values(), *odd.values()]]
    assert separate(workspace, *inputs) == 1  # some failed
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("clipsep-rt: error:")]
    assert len(errors) == len(bad)
    for path in bad.values():
        assert sum(str(path) in line for line in errors) == 1, f"no one-line error naming {path}"
    out_dir = workspace / "out"
    for path in odd.values():  # every good file finished despite the failures
        rate = probe(path).rate  # outputs come at the input's own rate
        separated = read(out_dir / f"{path.stem}_violin.wav", rate)
        assert len(separated) == len(load_audio(path, sample_rate=rate).samples)
        assert np.isfinite(separated).all()
    assert not np.any(read(out_dir / "silent_violin.wav"))
    assert not any(name.startswith(".") for name in (p.name for p in out_dir.iterdir())), "temporary files left"
    assert {p: _digest(p) for p in (workspace / "in").iterdir()} == before, "an input was modified"


def test_odd_formats_are_separated_like_their_decoded_audio(workspace, golden):
    _, odd = make_bad_and_odd_inputs(workspace / "in", golden["mixture_wav"])
    write_wav(workspace / "decoded.wav", load_audio(odd["96 kHz"]).samples)
    assert separate(workspace, str(odd["96 kHz"]), str(workspace / "decoded.wav"), "--sample-rate", "16000") == 0
    np.testing.assert_allclose(
        read(workspace / "out" / "rate96k_violin.wav"), read(workspace / "out" / "decoded_violin.wav"), atol=1e-6
    )


def test_outputs_at_the_input_rate_and_exact_residual(workspace, golden):
    """44.1 kHz in: selection and residual at 44.1 kHz add up to the input, highs included."""
    rng = np.random.default_rng(7)
    t = np.arange(3 * 44100) / 44100
    hiss = 0.05 * rng.standard_normal(len(t))  # plenty of content above 8 kHz
    mixture = (0.3 * np.sin(2 * np.pi * 330 * t) + hiss).astype(np.float32)
    write_wav(workspace / "cd.wav", mixture, rate=44100)
    assert separate(workspace, str(workspace / "cd.wav"), "--residual", "--noise-heads") == 0
    selection = read(workspace / "out" / "cd_violin.wav", 44100)
    residual = read(workspace / "out" / "cd_violin_residual.wav", 44100)
    assert len(selection) == len(residual) == len(read(workspace / "out" / "cd_violin_noise1.wav", 44100)) == len(mixture)
    np.testing.assert_allclose(selection + residual, mixture, atol=1e-6)
    # The selection itself is the 16 kHz result, resampled.
    assert separate(workspace, str(workspace / "cd.wav"), "--sample-rate", "16000", "-o", str(workspace / "at16k")) == 0
    at16k = read(workspace / "at16k" / "cd_violin.wav")
    assert len(at16k) == round(len(mixture) * 16000 / 44100)
    back = soxr.resample(at16k, 16000, 44100, quality="HQ")[: len(selection)]
    assert snr_db(back[2000:-2000], selection[2000:-2000]) > 40


def test_existing_outputs_are_kept_unless_overwrite(workspace, capsys):
    mix = str(workspace / "mix.wav")
    assert separate(workspace, mix) == 0
    output = workspace / "out" / "mix_violin.wav"
    output.write_bytes(b"user data")
    assert separate(workspace, mix) == 0  # kept: a skip, not a failure
    assert "error" not in capsys.readouterr().err
    assert output.read_bytes() == b"user data"
    assert separate(workspace, mix, "--overwrite") == 0
    assert len(read(output)) == 65535


def test_outputs_never_overwrite_inputs(workspace, golden):
    # mix_violin.wav is an input and also the name mix.wav's output would get.
    write_wav(workspace / "mix_violin.wav", golden["mixture_wav"][:30000])
    before = _digest(workspace / "mix_violin.wav")
    args = ["--query-embedding", str(workspace / "violin.npy"), "-c", str(workspace / "model.safetensors"),
            "-o", str(workspace), "--quiet", "--overwrite", str(workspace / "mix.wav"), str(workspace / "mix_violin.wav")]
    assert main(args) == 1
    assert _digest(workspace / "mix_violin.wav") == before
    assert (workspace / "mix_violin_violin.wav").exists()


def test_video_in_video_out(workspace, golden):
    video = workspace / "clip.mp4"
    write_video(video, golden["mixture_wav"][:32000], audio_rate=16000, frames=24, fps=12)
    assert separate(workspace, str(video), "--video") == 0
    out = workspace / "out" / "clip_violin.mp4"
    assert video_packets(out) == video_packets(video)
    assert abs(len(load_audio(out).samples) - len(load_audio(video).samples)) <= 2048
    assert separate(workspace, str(video), "-o", str(workspace / "audio_only")) == 0
    assert (workspace / "audio_only" / "clip_violin.wav").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "model.safetensors", "--query-embedding", "violin.npy"], "no input given"),
        (["-c", "model.safetensors", "mix.wav"], "no query given"),
        (["-c", "nothing.safetensors", "mix.wav", "--query-embedding", "violin.npy"], "nothing.safetensors: no such file"),
        (["-c", "mix.wav", "mix.wav", "--query-embedding", "violin.npy"], "mix.wav: cannot be read as a PyTorch checkpoint"),
        (["-c", "model.safetensors", "mix.wav", "--query-embedding", "violin.npy", "--overlap", "300"], "overlap"),
        (["-c", "model.safetensors", "mix.wav", "--query-embedding", "violin.npy", "-d", "tpu"],
         "--device: expected cpu, cuda, cuda:N or auto, got 'tpu'"),
    ],
)
def test_usage_errors_are_one_line(workspace, capsys, monkeypatch, args, message):
    monkeypatch.chdir(workspace)
    assert main(["--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clipsep-rt: error:") and message in err[0], err


@pytest.mark.parametrize(
    ("option", "flag"),
    [("hop_frames", "--hop-frames"), ("batch_windows", "--batch-size"), ("overlap_frames", "--overlap"),
     ("mask", "--mask"), ("a_setting_without_flag", "a_setting_without_flag")],
)
def test_option_errors_name_the_users_flag(tmp_path, capsys, monkeypatch, option, flag):
    """The library names its parameter; the command line reports the flag that set it."""
    import clipsep_rt.cli.session as session
    from clipsep_rt.errors import OptionError

    def reject(args, noise_heads):
        raise OptionError(option, "must be at least 1, got 0")

    monkeypatch.setattr(session, "open_session", reject)
    assert main(["-q", "violin", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"clipsep-rt: error: {flag}: must be at least 1, got 0"


def test_help_does_not_import_torch():
    """`clipsep-rt --help` (every subcommand's parser) stays free of torch and the runtime."""
    code = ("import sys\nfrom clipsep_rt.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(name for name in ('torch', 'numpy', 'clipsep_rt.api') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_embedding_size_mismatch_is_a_clear_error(workspace, capsys):
    np.save(workspace / "small.npy", np.ones(384, dtype=np.float32))
    assert main(["-c", str(workspace / "model.safetensors"), str(workspace / "mix.wav"), "--quiet",
                 "--query-embedding", str(workspace / "small.npy")]) == 2
    err = capsys.readouterr().err
    assert "384" in err and "512" in err and "open_clip:ViT-B-32/openai" in err


def test_console_script_runs(workspace):
    exe = Path(sys.executable).with_name("clipsep-rt")
    result = subprocess.run(
        [str(exe), "--query-embedding", "violin.npy", "-c", "model.safetensors", "mix.wav", "-o", "cli_out", "--quiet"],
        cwd=workspace, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (workspace / "cli_out" / "mix_violin.wav").exists()


def test_text_queries_with_the_offline_encoder_and_the_cache(tmp_path, monkeypatch):
    """A separator trained with MiniLM text embeddings: text in, audio out; a second run of a
    known query is served from the cache without loading the encoder."""
    import torch

    import clipsep_rt.query.embedder as query
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import (
        CLIPSepSeparator,
        checkpoint_from_model,
        save_checkpoint,
    )

    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig(depth=7, ngf=4, query_dim=384))
    save_checkpoint(checkpoint_from_model(model, "minilm:all-MiniLM-L6-v2"), tmp_path / "minilm.safetensors")
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "mix.wav", (0.1 * rng.standard_normal(40000)).astype(np.float32))
    args = ["-c", str(tmp_path / "minilm.safetensors"), str(tmp_path / "mix.wav"), "--quiet",
            "-q", "dog barking", "-q", "violin", "--precision", "fp32"]
    assert main([*args, "-o", str(tmp_path / "first")]) == 0

    def no_encoder(*_, **__):
        raise AssertionError("the encoder was loaded for a cached query")

    monkeypatch.setattr(query, "build_encoder", no_encoder)
    assert main([*args, "-o", str(tmp_path / "second")]) == 0
    for name in ("mix_dog_barking.wav", "mix_violin.wav"):
        np.testing.assert_array_equal(read(tmp_path / "first" / name), read(tmp_path / "second" / name))
    assert not np.allclose(read(tmp_path / "first" / "mix_dog_barking.wav"), read(tmp_path / "first" / "mix_violin.wav"))


def test_missing_clip_weights_is_a_one_line_error(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    assert main(["-c", str(workspace / "model.safetensors"), str(workspace / "mix.wav"), "-q", "violin", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ViT-B-32" in err[0] and "--clip-weights" in err[0] and "--download-weights" in err[0], err
    assert not (workspace / "out").exists()


def test_image_queries_with_a_clip_image_tower(tmp_path, monkeypatch, capsys):
    """--query-image: a picture embedded by CLIP's image tower steers the separator; the
    embedding is cached by file content, so a second run does not load CLIP."""
    import open_clip  # the test suite installs the clip extra: a failed import is a failure
    from PIL import Image

    import clipsep_rt.query.embedder as query
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import (
        CLIPSepSeparator,
        checkpoint_from_model,
        save_checkpoint,
    )
    from clipsep_rt.query import OpenClipEncoder

    clip, tokenizer = tiny_clip(embed_dim=16)
    built = []

    def tiny_encoder(spec, device, weights=None, allow_download=False):
        built.append(spec)
        return OpenClipEncoder("tiny", "test", model=clip, tokenizer=tokenizer,
                               preprocess=open_clip.image_transform(32, is_train=False))

    monkeypatch.setattr(query, "build_encoder", tiny_encoder)
    model = CLIPSepSeparator(ModelConfig(depth=7, ngf=4, query_dim=16))
    save_checkpoint(checkpoint_from_model(model, "open_clip:tiny/test"), tmp_path / "clip16.safetensors")
    write_wav(tmp_path / "mix.wav", (0.1 * np.random.default_rng(0).standard_normal(30000)).astype(np.float32))
    for name, colour in (("red_car", (200, 20, 20)), ("green_field", (20, 200, 20))):
        Image.new("RGB", (48, 40), colour).save(tmp_path / f"{name}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    args = ["-c", str(tmp_path / "clip16.safetensors"), str(tmp_path / "mix.wav"), "--quiet", "--precision", "fp32",
            "--query-image", str(tmp_path / "red_car.png"), "--query-image", str(tmp_path / "green_field.png")]
    assert main([*args, "-o", str(tmp_path / "first")]) == 0
    assert len(built) == 1
    red, green = read(tmp_path / "first" / "mix_red_car.wav"), read(tmp_path / "first" / "mix_green_field.wav")
    assert not np.allclose(red, green)
    assert main([*args, "-o", str(tmp_path / "second")]) == 0
    assert len(built) == 1, "CLIP was loaded again for cached images"
    np.testing.assert_array_equal(read(tmp_path / "second" / "mix_red_car.wav"), red)
    capsys.readouterr()
    assert main([*args[:4], "--quiet", "--query-image", str(tmp_path / "broken.png"), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.png: not a readable image" in err[0], err


def test_an_unexpected_failure_in_one_file_does_not_lose_the_others(workspace, monkeypatch, capsys):
    from clipsep_rt.jobs import batch

    write_wav(workspace / "second.wav", np.zeros(20000, dtype=np.float32) + 0.01)
    real_probe = batch.probe

    def flaky_probe(path):
        if path.name == "mix.wav":
            raise RuntimeError("simulated\nfailure")
        return real_probe(path)

    monkeypatch.setattr(batch, "probe", flaky_probe)
    assert separate(workspace, str(workspace / "mix.wav"), str(workspace / "second.wav")) == 1
    assert "mix.wav: unexpected RuntimeError: simulated failure" in capsys.readouterr().err
    assert (workspace / "out" / "second_violin.wav").exists()


def _peak_rss_mb(args: list[str], cwd: Path) -> float:
    """Run clipsep-rt in a child process and return its peak resident memory (MB)."""
    code = (
        "import resource, sys; from clipsep_rt.cli import main; rc = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_file_length(tmp_path):
    """The whole command (decode, separate, write, residual at the input rate) on a 1-minute
    and a 10-minute file: the longer file needs no more memory."""
    import torch

    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import (
        CLIPSepSeparator,
        checkpoint_from_model,
        save_checkpoint,
    )

    torch.manual_seed(0)
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), None), tmp_path / "tiny.safetensors")
    np.save(tmp_path / "q.npy", np.ones(8, dtype=np.float32))
    rng = np.random.default_rng(0)
    peaks = {}
    for minutes in (1, 10):
        path = tmp_path / f"long{minutes}.flac"
        with sf.SoundFile(path, "w", samplerate=22050, channels=2, subtype="PCM_16") as out:
            for _ in range(minutes * 6):
                out.write(0.1 * rng.standard_normal((22050 * 10, 2)))
        peaks[minutes] = _peak_rss_mb(
            ["-c", "tiny.safetensors", "--query-embedding", "q.npy", path.name, "--residual", "--quiet", "-o", "out"],
            tmp_path,
        )
        assert sf.info(tmp_path / "out" / f"long{minutes}_q_residual.wav").frames == 22050 * 60 * minutes
    # Held whole, the 10-minute input alone is 106 MB of float32 (22.05 kHz stereo) and each
    # output 53 MB; streaming keeps the peak within a few tens of MB of the 1-minute run.
    assert peaks[10] < peaks[1] + 40, peaks


def test_embed_then_separate_equals_separating_by_text(tmp_path, capsys):
    """`clipsep-rt embed` stores what a text query would use: separating with the .npz gives
    the same audio as separating by text."""
    import torch

    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import (
        CLIPSepSeparator,
        checkpoint_from_model,
        save_checkpoint,
    )

    torch.manual_seed(1)
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=4, query_dim=384)), "minilm:all-MiniLM-L6-v2"),
                    tmp_path / "m.safetensors")
    write_wav(tmp_path / "mix.wav", (0.1 * np.random.default_rng(2).standard_normal(30000)).astype(np.float32))
    assert main(["embed", "dog barking", "rain on a roof", "-c", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "q.npz")]) == 0
    assert "minilm:all-MiniLM-L6-v2" in capsys.readouterr().out
    with np.load(tmp_path / "q.npz") as stored:
        assert sorted(stored) == ["dog barking", "rain on a roof"] and stored["dog barking"].shape == (384,)
    common = ["-c", str(tmp_path / "m.safetensors"), str(tmp_path / "mix.wav"), "--quiet", "--precision", "fp32"]
    assert main([*common, "--query-embedding", str(tmp_path / "q.npz"), "-o", str(tmp_path / "from_npz")]) == 0
    assert main([*common, "-q", "dog barking", "-q", "rain on a roof", "-o", str(tmp_path / "from_text")]) == 0
    for name in ("mix_dog_barking.wav", "mix_rain_on_a_roof.wav"):
        np.testing.assert_array_equal(read(tmp_path / "from_npz" / name), read(tmp_path / "from_text" / name))
    assert main(["embed", "x", "-c", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "q.npz")]) == 2  # exists


def test_stereo_in_stereo_out_with_the_masks_of_the_downmix(workspace, golden):
    """Each channel is masked by the masks of the mono mixture: selection + residual is the
    input channel by channel, a dual-mono file gets the mono output in both channels, and
    --mono gives the downmix's mono output."""
    rng = np.random.default_rng(4)
    left = golden["mixture_wav"]
    right = (0.3 * np.sin(2 * np.pi * 700 * np.arange(len(left)) / 16000) + 0.02 * rng.standard_normal(len(left)))
    stereo = np.stack([left, right], axis=1).astype(np.float32)  # different content per channel
    inputs = {
        "stereo": write_wav(workspace / "stereo.wav", stereo),
        "dual": write_wav(workspace / "dual.wav", np.stack([left, left], axis=1)),
        "left": write_wav(workspace / "left.wav", left),
        "downmix": write_wav(workspace / "downmix.wav", stereo.mean(axis=1)),
    }
    assert separate(workspace, *map(str, inputs.values()), "--residual") == 0
    out = {name: read(workspace / "out" / f"{name}_violin.wav") for name in inputs}
    residual = read(workspace / "out" / "stereo_violin_residual.wav")
    assert out["stereo"].shape == residual.shape == stereo.shape
    np.testing.assert_allclose(out["stereo"] + residual, stereo, atol=1e-6)
    assert snr_db(out["stereo"][:, 0], out["stereo"][:, 1]) < 10  # two different channels, not one copied
    np.testing.assert_allclose(out["stereo"].mean(axis=1), out["downmix"], atol=1e-4)  # masking is linear
    assert out["dual"].shape == (len(left), 2)
    for channel in range(2):
        np.testing.assert_allclose(out["dual"][:, channel], out["left"], atol=1e-6)
    np.testing.assert_allclose(out["left"][:COMMON], golden["separated_soft_wav"], atol=1e-3, rtol=0)
    # --mono: today's downmixed output.
    assert separate(workspace, str(inputs["stereo"]), "--mono", "-o", str(workspace / "mono")) == 0
    mono = read(workspace / "mono" / "stereo_violin.wav")
    assert mono.shape == (len(left),)
    np.testing.assert_allclose(mono, out["downmix"], atol=1e-6)


def test_multichannel_at_the_input_rate_with_exact_residuals(workspace):
    """3 channels at 44.1 kHz: every output has 3 channels at 44.1 kHz and the input's length;
    selection + residual is each channel, highs included; --sample-rate resamples each channel."""
    rng = np.random.default_rng(8)
    t = np.arange(2 * 44100) / 44100
    channels = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 2500 * t), np.zeros_like(t)], axis=1)
    channels = (channels + 0.05 * rng.standard_normal(channels.shape)).astype(np.float32)  # hiss above 8 kHz too
    write_wav(workspace / "three.wav", channels, rate=44100)
    assert separate(workspace, str(workspace / "three.wav"), "--residual", "--noise-heads") == 0
    selection = read(workspace / "out" / "three_violin.wav", 44100)
    residual = read(workspace / "out" / "three_violin_residual.wav", 44100)
    assert selection.shape == residual.shape == read(workspace / "out" / "three_violin_noise1.wav", 44100).shape == channels.shape
    np.testing.assert_allclose(selection + residual, channels, atol=1e-6)
    assert separate(workspace, str(workspace / "three.wav"), "--sample-rate", "16000", "-o", str(workspace / "at16k")) == 0
    at16k = read(workspace / "at16k" / "three_violin.wav")
    assert at16k.shape == (round(len(channels) * 16000 / 44100), 3)
    back = soxr.resample(at16k, 16000, 44100, quality="HQ")[: len(selection)]
    for channel in range(2):
        assert snr_db(back[2000:-2000, channel], selection[2000:-2000, channel]) > 40


def test_stereo_video_keeps_its_channels(workspace, golden):
    video = workspace / "stereo.mp4"
    clip = golden["mixture_wav"][:32000]
    write_video(video, np.stack([clip, 0.5 * clip[::-1]], axis=1), audio_rate=16000, frames=24, fps=12)
    assert probe(video).channels == 2
    assert separate(workspace, str(video), "--video") == 0
    out = workspace / "out" / "stereo_violin.mp4"
    assert video_packets(out) == video_packets(video)
    assert probe(out).channels == 2
    assert load_audio(out, mono=False).samples.shape[1] == 2
    assert separate(workspace, str(video), "--video", "--mono", "-o", str(workspace / "mono")) == 0
    assert probe(workspace / "mono" / "stereo_violin.mp4").channels == 1


def test_short_files_are_separated_to_their_length(workspace, golden, capsys):
    """1, 160 (10 ms) and 1023 samples, mono and stereo, 16 and 44.1 kHz: separated, outputs of
    the input's length and channels; only the empty file fails, with one line naming it."""
    folder = workspace / "short"
    folder.mkdir()
    signal = golden["mixture_wav"][20_000:]
    inputs = {}
    for length in (1, 160, 1023):
        for channels, rate in ((1, 16000), (2, 16000), (2, 44100)):
            samples = np.stack([signal[:length], -signal[:length]], axis=1) if channels == 2 else signal[:length]
            inputs[(length, channels, rate)] = write_wav(folder / f"n{length}_c{channels}_{rate}.wav", samples, rate=rate)
    empty = write_wav(folder / "empty.wav", np.zeros((0, 2), dtype=np.float32))
    assert separate(workspace, *map(str, inputs.values()), str(empty), "--residual") == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("clipsep-rt: error:")]
    assert len(errors) == 1 and str(empty) in errors[0] and "no audio samples" in errors[0]
    for (length, channels, rate), path in inputs.items():
        original = read(path, rate)
        selection = read(workspace / "out" / f"{path.stem}_violin.wav", rate)
        residual = read(workspace / "out" / f"{path.stem}_violin_residual.wav", rate)
        assert selection.shape == residual.shape == original.shape == ((length,) if channels == 1 else (length, 2))
        assert np.isfinite(selection).all()
        np.testing.assert_allclose(selection + residual, original, atol=1e-6)


def test_a_list_of_inputs_without_ray(workspace, golden, capsys):
    """A .txt list (entries relative to its folder, comments skipped) and a .csv list work locally."""
    (workspace / "in" / "sub").mkdir(parents=True)
    write_wav(workspace / "in" / "a.wav", golden["mixture_wav"][:20000])
    write_wav(workspace / "in" / "sub" / "b.wav", golden["mixture_wav"][:24000])
    (workspace / "in" / "list.txt").write_text("# the takes\na.wav\n\nsub\nmissing.wav\n")
    assert separate(workspace, str(workspace / "in" / "list.txt")) == 1  # missing.wav
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error:" in line] == [
        f"clipsep-rt: error: {workspace / 'in' / 'missing.wav'}: no such file or directory"]
    assert sorted(str(p.relative_to(workspace / "out")) for p in (workspace / "out").rglob("*.wav")) == [
        "a_violin.wav", "b_violin.wav"]  # sub/ was named in the list: a root, like a folder on the command line
    (workspace / "list.csv").write_text(f"id,path\n1,{workspace / 'in' / 'sub' / 'b.wav'}\n")
    assert separate(workspace, str(workspace / "list.csv"), "-o", str(workspace / "csv")) == 0
    assert [p.name for p in (workspace / "csv").glob("*.wav")] == ["b_violin.wav"]


def test_a_local_rerun_resumes_from_the_manifest(workspace, golden, capsys):
    """The results manifest is written by local runs; a re-run skips the inputs it lists as done
    (their outputs still there) and says so, redoes the rest, and a new query is not "done"."""
    import json

    write_wav(workspace / "second.wav", golden["mixture_wav"][:30000])
    inputs = [str(workspace / "mix.wav"), str(workspace / "second.wav")]
    base = ["--query-embedding", str(workspace / "violin.npy"), "-c", str(workspace / "model.safetensors"),
            "--precision", "fp32", "-o", str(workspace / "out")]
    assert main([*base, *inputs]) == 0
    manifest = workspace / "out" / "clipsep-rt-manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [Path(entry["input"]).name for entry in entries] == ["mix.wav", "second.wav"]
    assert all(entry["error"] is None and len(entry["outputs"]) == 1 and entry["seconds"] > 0 for entry in entries)
    assert entries[0]["audio_seconds"] == pytest.approx(65535 / 16000, abs=0.01)
    stamp = (workspace / "out" / "mix_violin.wav").stat().st_mtime_ns
    (workspace / "out" / "second_violin.wav").unlink()
    capsys.readouterr()
    assert main([*base, *inputs]) == 0
    err = capsys.readouterr().err.splitlines()
    assert f"clipsep-rt: {workspace / 'mix.wav'}: already done per {manifest} (--overwrite separates it again)" in err
    summary = err[-1]
    assert summary.startswith("clipsep-rt: 1 of 2 inputs separated, 1 skipped (outputs exist); 1 files written"), summary
    assert f"1 already done per {manifest}" in summary
    assert (workspace / "out" / "mix_violin.wav").stat().st_mtime_ns == stamp
    assert (workspace / "out" / "second_violin.wav").is_file()
    assert len(manifest.read_text().splitlines()) == 3
    np.save(workspace / "other.npy", -golden["query_embedding"][0])  # another query: its outputs are not done yet
    assert main([*base, *inputs, "--query-embedding", str(workspace / "other.npy"), "--quiet"]) == 0
    assert sorted(p.name for p in (workspace / "out").glob("*.wav")) == [
        "mix_other.wav", "mix_violin.wav", "second_other.wav", "second_violin.wav"]
    assert (workspace / "out" / "mix_violin.wav").stat().st_mtime_ns == stamp  # kept
