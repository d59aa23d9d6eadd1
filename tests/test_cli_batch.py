"""Batch runs from the command line: signals, re-runs, output names, options per mode, -o.

The signal tests send real SIGTERM / SIGKILL to a real `clipsep-rt` process working on a
real long file.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REFERENCE_CHECKPOINT, write_wav

from clipsep_rt.cli import main

EXE = Path(sys.executable).with_name("clipsep-rt")


@pytest.fixture
def files(tmp_path, golden):
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])
    np.save(tmp_path / "violin.npy", golden["query_embedding"])
    return tmp_path


def separate(files: Path, *args: str) -> int:
    return main(["--query-embedding", str(files / "violin.npy"), "-c", str(REFERENCE_CHECKPOINT),
                 "--precision", "fp32", *args])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob(".*"))


# -- 1. signals ---------------------------------------------------------------------------

def _long_flac(path: Path, seconds: int) -> Path:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=44100, channels=2, subtype="PCM_16") as out:
        for _ in range(seconds // 10):
            out.write(0.1 * rng.standard_normal((441000, 2)))
    return path


def _start_batch(files: Path, *inputs: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(EXE), "--query-embedding", "violin.npy", "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32",
         *inputs, "-o", "out"],
        cwd=files, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_temporary(process: subprocess.Popen, out: Path, stem: str, timeout_s: float = 240) -> Path:
    """The temporary of out/<stem>... once it holds audio (the long file is being written)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = [p for p in out.glob(f".{stem}.*.tmp.wav") if p.stat().st_size > 1 << 20]
        if found:
            return found[0]
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no temporary for {stem} appeared in {out}")


def test_sigterm_removes_the_file_in_progress_and_reports_what_finished(files):
    _long_flac(files / "long.flac", 90)
    write_wav(files / "later.wav", np.zeros(20000, dtype=np.float32) + 0.01)
    process = _start_batch(files, "mix.wav", "long.flac", "later.wav")
    _wait_for_temporary(process, files / "out", "long_violin")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert (files / "out" / "mix_violin.wav").exists()
    assert not (files / "out" / "long_violin.wav").exists()
    assert not (files / "out" / "later_violin.wav").exists()
    assert hidden(files / "out") == [], "temporary files left after SIGTERM"
    assert "stopped while separating long.flac (its unfinished outputs were removed); 1 of 3 inputs finished: mix.wav" in err
    assert err.rstrip().endswith("clipsep-rt: terminated")


def test_a_later_run_removes_what_kill_9_left(files):
    _long_flac(files / "long.flac", 60)
    process = _start_batch(files, "long.flac")
    temporary = _wait_for_temporary(process, files / "out", "long_violin")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert temporary.exists(), "SIGKILL runs no clean-up: the temporary stays"
    assert not (files / "out" / "long_violin.wav").exists(), "the final name never holds a partial file"
    rerun = _start_batch(files, "long.flac")
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert hidden(files / "out") == [], "the stale temporary was not removed"
    assert sf.info(files / "out" / "long_violin.wav").frames == 60 * 44100


def test_a_temporary_another_process_is_writing_is_left_alone(tmp_path):
    from clipsep_rt.io.files import atomic_output, remove_stale_temporaries

    target = tmp_path / "song_violin.wav"
    with atomic_output(target) as temporary:
        temporary.write_bytes(b"in progress")
        stale = tmp_path / ".song_violin.0123456789ab.tmp.wav"
        stale.write_bytes(b"left by a killed run")
        unrelated = tmp_path / ".song_violin.notours.tmp.wav"
        unrelated.write_bytes(b"x")
        assert remove_stale_temporaries(target) == [stale]
        assert temporary.read_bytes() == b"in progress"  # locked by this writer
    assert target.read_bytes() == b"in progress" and unrelated.exists() and not temporary.exists()


# -- 2. re-runs and output names ------------------------------------------------------------

def test_a_rerun_keeps_existing_outputs_and_succeeds(files, capsys):
    mix = str(files / "mix.wav")
    out = files / "out"
    assert separate(files, mix, "-o", str(out)) == 0
    before = digest(out / "mix_violin.wav")
    capsys.readouterr()
    assert separate(files, mix, "-o", str(out)) == 0
    err = capsys.readouterr().err
    assert "error" not in err and "failed" not in err, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("clipsep-rt: 0 of 1 inputs separated, 1 skipped (outputs exist); 0 files written"), summary
    assert f"model: {REFERENCE_CHECKPOINT}" in summary
    assert digest(out / "mix_violin.wav") == before
    # Asking for more outputs writes only the missing ones.
    assert separate(files, mix, "-o", str(out), "--residual", "--quiet") == 0
    assert digest(out / "mix_violin.wav") == before
    assert sorted(p.name for p in out.glob("*.wav")) == ["mix_violin.wav", "mix_violin_residual.wav"]
    np.testing.assert_allclose(sf.read(out / "mix_violin.wav")[0] + sf.read(out / "mix_violin_residual.wav")[0],
                               sf.read(files / "mix.wav")[0], atol=1e-6)


def test_output_names_do_not_depend_on_the_other_inputs(files, capsys):
    alone, together = files / "alone", files / "together"
    write_wav(files / "mix.flac", sf.read(files / "mix.wav")[0], subtype="PCM_24")
    assert separate(files, str(files / "mix.wav"), "-o", str(alone), "--quiet") == 0
    assert separate(files, str(files / "mix.wav"), str(files / "mix.flac"), "-o", str(together), "--quiet") == 1
    assert [p.name for p in alone.glob("*.wav")] == [p.name for p in together.glob("*.wav")] == ["mix_violin.wav"]
    np.testing.assert_array_equal(sf.read(alone / "mix_violin.wav")[0], sf.read(together / "mix_violin.wav")[0])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"clipsep-rt: error: {files / 'mix.flac'}: its output {together / 'mix_violin.wav'} has the name of "
                   f"{files / 'mix.wav'}'s: rename one of them, or separate them into different output directories"]


def test_inputs_found_in_folders_keep_their_subfolders(files):
    mixture = sf.read(files / "mix.wav")[0][:30000]
    for part in ("drums", "bass"):
        (files / "session" / part).mkdir(parents=True)
        write_wav(files / "session" / part / "take1.wav", mixture)
    write_wav(files / "session" / "room.wav", mixture)
    assert separate(files, str(files / "session"), "-o", str(files / "out"), "--quiet") == 0
    assert sorted(str(p.relative_to(files / "out")) for p in (files / "out").rglob("*.wav")) == [
        "bass/take1_violin.wav", "drums/take1_violin.wav", "room_violin.wav"]
    assert separate(files, str(files / "session" / "*" / "take1.wav"), "-o", str(files / "globbed"), "--quiet") == 0
    assert sorted(str(p.relative_to(files / "globbed")) for p in (files / "globbed").rglob("*.wav")) == [
        "bass/take1_violin.wav", "drums/take1_violin.wav"]


def test_the_bundled_model_is_named_in_the_summary(files, capsys):
    np.save(files / "q384.npy", np.ones(384, dtype=np.float32))
    assert main(["--query-embedding", str(files / "q384.npy"), str(files / "mix.wav"), "-o", str(files / "out")]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.endswith("model: the bundled default clipsep-minilm-w16-v3 (see its MODEL_CARD.md)"), summary


# -- 3. options without effect, and -o per mode ----------------------------------------------

@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["mix.wav", "--latency", "low"], "--latency: streaming options: add --stream"),
        (["mix.wav", "--latency", "balanced", "--stats", "s.json"], "--latency: streaming options"),  # --stats: batch too
        (["mix.wav", "--realtime"], "--realtime: streaming options"),
        (["mix.wav", "--hop-frames", "4", "--input-device", "1"], "--hop-frames, --input-device: streaming options"),
        (["mix.wav", "--stream", "-o", "s.wav", "--residual", "--format", "wav"],
         "--residual, --format: batch options, not used when streaming"),
        (["mix.wav", "--stream", "-o", "s.wav", "--report", "r"], "--report: batch options"),
        (["mix.wav", "--stream", "-o", "s.wav", "--overlap", "32", "--batch-size", "2"], "--overlap, --batch-size: batch"),
        (["--input", "mic", "--noise-heads"], "--noise-heads: batch options"),
        (["--input", "mic", "--realtime"], "--realtime: paces a file streamed to a .wav file"),
        (["mix.wav", "--stream", "-o", "speakers", "--realtime"], "--realtime: paces a file"),
        (["mix.wav", "--stream", "-o", "s.wav", "--input-device", "1"], "--input-device: needs --input mic"),
        (["mix.wav", "--stream", "-o", "s.wav", "--output-device", "1"], "--output-device: needs -o speakers"),
        (["--input", "mic", "--overwrite"], "--overwrite: nothing is recorded to a file"),
        (["mix.wav", "--prompt", "a {}"], "--prompt: acts on --query TEXT queries, and none is given"),
        (["mix.wav", "--no-cache"], "--no-cache: acts on --query TEXT or --query-image FILE queries"),
        (["mix.wav", "--compile", "-b", "onnxruntime"], "--compile: compiles the torch backend only"),
        (["mix.wav", "-o", "speakers", "--overlap", "32"], "--overlap: batch options, not used when streaming"),  # -o speakers streams
        (["mix.wav", "-o", "single.mp3"], "-o/--output single.mp3: a batch writes .wav or .flac files"),
        (["mix.wav", "-o", "single.wav", "--format", "flac"], "--format flac: -o single.wav already names a wav file"),
        (["mix.wav", "-o", "single.wav", "--video"], "--video: videos are written into an output directory"),
        (["mix.wav", "-o", "a", "-o", "b"], "-o/--output: batch separation writes to one output directory"),
        (["--list-devices", "--latency", "low"], "--list-devices lists the audio devices and exits"),
    ],
)
def test_options_without_effect_are_refused(files, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(files)
    assert separate(files, "--quiet", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clipsep-rt: error: ") and message in err[0], err
    assert sorted(p.name for p in files.iterdir()) == ["mix.wav", "violin.npy"], "something was written"


def test_output_file_for_one_input_and_one_output(files, capsys):
    assert separate(files, str(files / "mix.wav"), "-o", str(files / "violin.flac"), "--quiet") == 0
    assert sf.info(files / "violin.flac").format == "FLAC" and (files / "violin.flac").is_file()
    assert separate(files, str(files / "mix.wav"), "-o", str(files / "violin.flac"), "--quiet") == 0  # kept
    capsys.readouterr()
    assert separate(files, str(files / "mix.wav"), "-o", str(files / "two.wav"), "--residual", "--quiet") == 2
    assert capsys.readouterr().err.strip() == (f"clipsep-rt: error: -o/--output: {files / 'two.wav'} names one file, "
                                               "but each input gets 2 outputs: give an output directory")
    write_wav(files / "other.wav", np.zeros(20000, dtype=np.float32))
    assert separate(files, str(files / "mix.wav"), str(files / "other.wav"), "-o", str(files / "x.wav"), "--quiet") == 2
    assert "x.wav names one file, but 2 inputs were given" in capsys.readouterr().err
    assert not (files / "two.wav").exists() and not (files / "x.wav").exists()


def test_threads_sets_the_network_threads_and_refuses_zero(files, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert separate(files, str(files / "mix.wav"), "-o", str(files / "one"), "--threads", "1", "--quiet",
                        "--no-engine-cache") == 0  # the checkpoint on torch
        assert torch.get_num_threads() == 1
        assert (files / "one" / "mix_violin.wav").is_file()
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    assert separate(files, str(files / "mix.wav"), "-o", str(files / "zero"), "--threads", "0") == 2
    assert "--threads: must be at least 1, got 0" in capsys.readouterr().err
    assert not (files / "zero").exists()
