"""Faults the tool survives: inputs, the Python API and Ray.

Each test reproduces one fault of issue 23 (its row number opens the docstring) or one of its
README claims, on real files and real processes:

- corrupt inputs (a truncated header, random bytes named .wav/.flac/.mp3/.mp4, a zero-byte
  file, a directory named x.wav): one `error:` line each, nothing else on stderr;
- an MP3 cut short: the frames that are there, not its header's count of stale repeats;
- row 7: SIGTERM to a `--ray local` batch and its process group: exit 143, no Ray stack dump,
  no temporaries, no Ray process left;
- row 12: a WAV cut short: separated as far as it goes, with a warning naming it in the
  output, the manifest and the summary;
- row 13: a 1-sample 44.1 kHz and a 2-sample 192 kHz file: separated, not "silent" zeros;
  the API returns a sample for one;
- row 14: the API's arrays: channels first, a bad sample rate, integer PCM, NaN/Inf.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REFERENCE_CHECKPOINT, write_wav

from clipsep_rt.api import Separator
from clipsep_rt.cli import main
from clipsep_rt.errors import OptionError
from clipsep_rt.io.media import load_audio
from clipsep_rt.io.native_stderr import native_stderr_silenced
from clipsep_rt.jobs.results import MANIFEST_NAME

EXE = Path(sys.executable).with_name("clipsep-rt")


@pytest.fixture(scope="module")
def separator():
    return Separator.from_checkpoint(REFERENCE_CHECKPOINT, device="cpu", precision="fp32")


@pytest.fixture
def query(tmp_path, golden) -> Path:
    np.save(tmp_path / "violin.npy", golden["query_embedding"])
    return tmp_path / "violin.npy"


def separate(query: Path, *args: str) -> int:
    return main(["--query-embedding", str(query), "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", *args])


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def manifest(folder: Path) -> dict[str, dict]:
    lines = (folder / MANIFEST_NAME).read_text().splitlines()
    return {Path(entry["input"]).name: entry for entry in map(json.loads, lines)}


# -- corrupt inputs ------------------------------------------------------------------------

def test_every_corrupt_input_is_one_error_line(tmp_path, query, capfd):
    """README claim "corrupt input always a one-line error": each corrupt file is one
    `error:` line naming it and nothing else reaches stderr, C libraries' chatter included
    (libsndfile's MP3 decoder printed "Note: Illegal Audio-MPEG-Header ..." lines while
    probing random bytes, whatever their name)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "whole.wav", noise(1, 44100), 44100, subtype="PCM_16")
    (inputs / "header_only.wav").write_bytes((inputs / "whole.wav").read_bytes()[:30])
    garbage = np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()  # mpg123 takes it for MP3
    for suffix in ("wav", "flac", "mp3", "mp4"):
        (inputs / f"random.{suffix}").write_bytes(garbage)
    (inputs / "empty.wav").write_bytes(b"")
    (inputs / "x.wav").mkdir()
    corrupt = ["header_only.wav", "random.wav", "random.flac", "random.mp3", "random.mp4", "empty.wav", "x.wav"]
    capfd.readouterr()
    assert separate(query, *(str(inputs / name) for name in ["whole.wav", *corrupt]), "-o", str(tmp_path / "out"),
                    "--quiet") == 1
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == len(corrupt), lines
    for name in corrupt:
        [line] = [line for line in lines if f"{name}:" in line]
        assert line.startswith("clipsep-rt: error: ")
        if name.startswith("random"):
            assert "not a readable audio or video file" in line, line
    assert sorted(path.name for path in (tmp_path / "out").glob("*.wav")) == ["whole_violin.wav"]


def test_an_mp3_cut_short_gives_the_frames_it_holds(tmp_path):
    """An MP3 cut to a third: the frames decoded, not the header's 5 s count made up of the
    last block's buffer repeated (soundfile's `blocks` does that where a file ends early)."""
    whole = tmp_path / "whole.mp3"
    sf.write(whole, noise(5, 44100), 44100, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    decoded = load_audio(cut, 44100, min_samples=1).samples
    assert sf.info(cut).frames == 5 * 44100  # what the header promises
    assert 0 < len(decoded) < 0.4 * 5 * 44100


def test_stderr_is_not_silenced_while_an_mp3_is_decoded(tmp_path, monkeypatch, capfd):
    """Review of the corrupt-input fix: file descriptor 2 went to /dev/null around every MP3
    block read, so what other threads printed meanwhile (a live run's status, a warning, a
    traceback) was lost. Only the opening of a file is silenced now."""
    path = tmp_path / "noise.mp3"
    sf.write(path, noise(3, 44100), 44100, format="MP3")
    read = sf.SoundFile.read

    def read_beside_a_thread_that_prints(self, *args, **kwargs):
        os.write(2, b"printed meanwhile\n")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", read_beside_a_thread_that_prints)
    assert len(load_audio(path, 44100, min_samples=1).samples) > 0
    assert "printed meanwhile" in capfd.readouterr().err


def test_a_stop_signal_waits_until_stderr_is_back(capfd):
    """Review of the corrupt-input fix: a SIGINT while file descriptor 2 was on /dev/null
    raised KeyboardInterrupt there, in the middle of the switch; it now waits until stderr
    is restored, and comes then."""
    finished = False
    # Python's own Ctrl-C handler, as in a terminal (a suite started in the background inherits SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with native_stderr_silenced():
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                os.write(2, b"silenced\n")
                finished = True
    finally:
        signal.signal(signal.SIGINT, previous)
    os.write(2, b"restored\n")
    assert finished, "the interrupt came while stderr was silenced"
    assert capfd.readouterr().err == "restored\n"


# -- row 7: SIGTERM during --ray local ------------------------------------------------------

def _session_processes(session: int) -> list[str]:
    """The command lines of the processes in `session` (the command's and what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[3]) == session:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_sigterm_to_a_ray_batch_exits_143_and_leaves_nothing(tmp_path, query):
    """Row 7: SIGTERM to a `--ray local` batch and its process group (as `timeout` sends
    it) while a worker writes a long file: exit 143 and one line saying what stopped; no
    Ray stack dump (Ray's handlers had replaced ours: exit 1, 15 or 134); no temporary
    left; no process of Ray left."""
    pytest.importorskip("ray", reason="Ray is the optional extra clipsep-rt[distributed]")
    with sf.SoundFile(tmp_path / "long.flac", "w", samplerate=44100, channels=2, subtype="PCM_16") as out:
        for seed in range(9):
            out.write(np.stack([noise(10, 44100, seed)] * 2, axis=1))
    write_wav(tmp_path / "later.wav", noise(1, 16000))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [str(EXE), "--query-embedding", str(query), "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32",
         "long.flac", "later.wav", "-o", "out", "--ray", "local", "--ray-workers", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240  # Ray's start on a busy 2-core machine, then the model's load
        while not [path for path in out.glob(".long_violin.*.tmp.wav") if path.stat().st_size > 1 << 20]:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no worker was seen writing long.flac's output"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, stderr
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr, stderr
    assert "stopped while separating long.flac" in stderr and stderr.rstrip().endswith("clipsep-rt: terminated")
    assert not [path.name for path in out.rglob(".*")]  # no temporary
    assert not (out / "long_violin.wav").exists()
    deadline = time.monotonic() + 30  # a killed process may take a moment to be reaped
    while (left := _session_processes(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left

def test_a_killed_worker_counts_as_running_until_its_last_thread_is_gone():
    """Row 7 (CI flake): a multi-threaded process whose main thread has ended shows it as a
    zombie while its other threads still run and hold its files (a killed Ray worker's lock on
    its temporary): the clean-up waits for all of them, not for the main thread only."""
    from clipsep_rt.jobs.distributed import _running

    code = ("import ctypes, threading, time\n"
            "threading.Thread(target=time.sleep, args=(60,)).start()\n"
            "print('ready', flush=True)\n"
            "ctypes.CDLL(None).pthread_exit(None)\n")  # the main thread ends; the sleeper goes on
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while (Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert _running(process.pid)  # the main thread is a zombie, the sleeper still runs
        process.kill()
        process.wait(timeout=10)
        assert not _running(process.pid)
    finally:
        process.kill()
        process.wait(timeout=10)


# -- row 12: a WAV cut short -----------------------------------------------------------------

def test_a_wav_cut_short_is_separated_with_a_warning_naming_it(tmp_path, query, capsys):
    """Row 12: a WAV whose header says 291,060 frames, of which 7,489 are there: its output
    is as long as what is there (exit 0: the other inputs count as they are), and the
    warning says so on stderr, in the manifest and in the summary (was: not a word)."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, noise(291060 / 44100, 44100), 44100, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 7489 * 2])
    assert separate(query, str(cut), str(whole), "-o", str(tmp_path / "out")) == 0
    err = capsys.readouterr().err
    expected = "cut.wav: ends early: header says 291,060 frames, 7,489 decoded"
    [warning] = [line for line in err.splitlines() if "ends early" in line]
    assert warning.startswith("clipsep-rt: warning: ") and expected in warning
    assert "2 of 2 inputs separated, 1 with warnings" in err.splitlines()[-1]
    entries = manifest(tmp_path / "out")
    assert entries["cut.wav"]["error"] is None and expected in entries["cut.wav"]["warnings"][0]
    assert entries["whole.wav"]["warnings"] == []
    assert sf.info(tmp_path / "out" / "cut_violin.wav").frames == 7489


def test_a_wav_cut_short_streamed_to_a_file_is_warned_of_once_in_the_cli_s_words(tmp_path, query, capsys):
    """Row 12 under `--stream -o`: the warning reached the user only through `logging`'s
    fallback (no `clipsep-rt:` prefix, deaf to --quiet's rules); now one CLI warning line."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, noise(4.0, 16000), 16000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 16000 * 2])
    assert separate(query, str(cut), "--stream", "-o", str(tmp_path / "s.wav")) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "ends early" in line]
    assert len(warnings) == 1 and warnings[0].startswith("clipsep-rt: warning: "), warnings
    assert "cut.wav: ends early: header says 64,000 frames, 16,000 decoded" in warnings[0]


def test_a_wav_with_an_unstated_length_is_not_cut_short(tmp_path):
    """Row 12's check trusts only a stated length: a streaming writer's data size of 0 or
    0xFFFFFFFF (unknown when the header was written) warns of nothing."""
    path = write_wav(tmp_path / "streamed.wav", noise(0.5, 16000), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # the data chunk's size (a plain 44-byte header)
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    assert len(load_audio(path, 16000, on_warning=warnings.append).samples) == 8000
    assert warnings == []


# -- row 13: inputs shorter than one model-rate sample ---------------------------------------

@pytest.mark.parametrize(("samples", "rate"), [([0.5], 44100), ([0.5, -0.5], 192000)], ids=["1@44.1k", "2@192k"])
def test_a_file_of_one_or_two_samples_is_separated(tmp_path, query, capsys, samples, rate):
    """Row 13: a file too short for one sample at 16 kHz (soxr rounded it to none): it is
    separated, as long as the input, without the false "input is silent" and its zeros."""
    path = write_wav(tmp_path / "tiny.wav", np.array(samples, dtype=np.float32), rate=rate)
    assert separate(query, str(path), "-o", str(tmp_path / "out")) == 0
    assert "silent" not in capsys.readouterr().err
    separated, out_rate = sf.read(tmp_path / "out" / "tiny_violin.wav", dtype="float32")
    assert out_rate == rate and len(separated) == len(samples) and np.abs(separated).max() > 0


def test_the_api_returns_a_sample_for_a_one_sample_input(separator, golden):
    """Row 13: one sample at 44.1 kHz gave (0,) arrays; at 16 kHz n samples give n."""
    embeddings = {"q": golden["query_embedding"][0]}
    result = separator.separate(np.array([0.5], np.float32), 44100, embeddings=embeddings)
    assert result.mixture.shape == result.sources["q"].shape == (1,) and result.mixture[0] != 0
    for n in (1, 2, 3):
        assert separator.separate(np.full(n, 0.5, np.float32), 16000, embeddings=embeddings).sources["q"].shape == (n,)


# -- row 14: the API's arrays ------------------------------------------------------------------

@pytest.mark.parametrize(("audio", "rate", "option", "message"), [
    (np.zeros((2, 44100), np.float32), 44100, "audio", "more channels than samples"),
    (np.zeros((44100, 2), np.float32), 0, "sample_rate", "got 0"),
    (np.zeros((44100, 2), np.float32), -44100, "sample_rate", "got -44100"),
    (np.zeros((44100, 2), np.float32), float("nan"), "sample_rate", "got nan"),
    (np.array([0, 1, 2] * 1000), 16000, "audio", "dtype int64"),
    (np.array([0.0, np.nan, np.inf] * 1000, np.float32), 16000, "audio", "2000 NaN or infinite"),
], ids=["channels-first", "rate-0", "rate-negative", "rate-nan", "int64", "nan-inf"])
def test_bad_api_arrays_are_option_errors(separator, golden, audio, rate, option, message):
    """Row 14: a channels-first (2, n) array, a sample rate of 0, negative or NaN (soxr's
    raw ValueError before), int64 (a list of Python ints, whose scale nobody means),
    NaN/Inf samples: an OptionError naming the parameter."""
    with pytest.raises(OptionError, match=message) as refused:
        separator.separate(audio, rate, embeddings={"q": golden["query_embedding"][0]})
    assert refused.value.option == option


def test_integer_pcm_is_scaled_as_soundfile_reads_it(separator, golden, tmp_path):
    """Row 14: int16 (and int32) arrays are scaled to [-1, 1) as soundfile reads such a
    file (int16 was used as is: a peak of thousands)."""
    pcm = (golden["mixture_wav"][:16000] * 20000).astype(np.int16)
    path = write_wav(tmp_path / "pcm.wav", pcm, subtype="PCM_16")
    as_read = sf.read(path, dtype="float32")[0]
    embeddings = {"q": golden["query_embedding"][0]}
    ints = separator.separate(pcm, 16000, embeddings=embeddings)
    floats = separator.separate(as_read, 16000, embeddings=embeddings)
    np.testing.assert_array_equal(ints.mixture, as_read)
    np.testing.assert_allclose(ints.sources["q"], floats.sources["q"], atol=1e-6)
    wide = separator.separate(pcm.astype(np.int32) << 16, 16000, embeddings=embeddings)
    np.testing.assert_array_equal(wide.mixture, as_read)


def test_streams_and_blocks_refuse_what_separate_refuses(separator, golden):
    """Row 14 for `Stream.process` (it flattened a (2, m) block into one interleaved signal)
    and `separate_blocks` (NaN blocks reached the network)."""
    queries = separator.prepare_queries(["q"], golden["query_embedding"])
    stream = separator.stream(queries)
    with pytest.raises(OptionError, match=r"shape \(m,\), got \(2, 512\)"):
        stream.process(np.zeros((2, 512), np.float32))
    with pytest.raises(OptionError, match="NaN or infinite"):
        stream.process(np.full(256, np.inf, np.float32))
    pcm = (golden["mixture_wav"][:4096] * 20000).astype(np.int16)
    np.testing.assert_allclose(separator.stream(queries).process(pcm),
                               separator.stream(queries).process(pcm / np.float32(32768)), atol=1e-6)
    with pytest.raises(OptionError, match="blocks: holds 1 NaN"):
        list(separator.separate_blocks([np.array([0.0, np.nan] + [0.0] * 998, np.float32)], queries))
