"""Faults the tool survives: disks, files and concurrent runs.

Each test is one fault of issue 23 (its row number first in the docstring), done for real
where it can be: a full disk is a small tmpfs, a read-only folder a read-only tmpfs (both
need the right to mount: the tests skip with the reason where it is missing), a concurrent
run a second `clipsep-rt` process, a stop a real signal. What every test checks is the
principle: an OS error while writing reaches the user as one line naming the path and
saying what happened in words, temporaries are removed, the exit status is not 0, and
nothing bad (NaN/Inf, a partial file) is ever written under an output's name.
"""

from __future__ import annotations

import errno
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

from clipsep_rt.cli import main
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io import audio_writer
from clipsep_rt.io.files import OutputClaimed, atomic_output
from clipsep_rt.io.media import write_audio_atomic
from tests.test_live import _stop_signals_as_in_a_terminal

EXE = Path(sys.executable).with_name("clipsep-rt")
DISK_FULL = "disk full; free some space or choose another output folder"
READ_ONLY = "read-only file system; choose another output folder"


@pytest.fixture
def files(tmp_path, golden):
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])  # 4.1 s at 16 kHz
    np.save(tmp_path / "violin.npy", golden["query_embedding"])
    return tmp_path


def separate(files: Path, *args: str) -> int:
    return main(["--query-embedding", str(files / "violin.npy"), "-c", str(REFERENCE_CHECKPOINT),
                 "--precision", "fp32", "--quiet", *args])


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob(".*"))


# -- full and read-only disks ------------------------------------------------------------------

def test_a_stream_to_a_full_disk_is_one_line_and_leaves_nothing(files, tmpfs, capsys):
    """Row 3: `--stream -o full/s.wav` on a full disk: one line "disk full" naming the file, no
    temporary left (it was a LibsndfileError traceback)."""
    full = tmpfs("full", "128k")  # the 4.1 s float output needs 260 kB
    assert separate(files, str(files / "mix.wav"), "--stream", "-o", str(full / "s.wav")) == 2
    assert error_lines(capsys) == [f"clipsep-rt: error: {full / 's.wav'}: cannot write it: {DISK_FULL}"]
    assert list(full.iterdir()) == []


def test_a_batch_to_a_full_disk_names_the_file_that_did_not_fit_and_keeps_the_others(files, tmpfs, capsys):
    """Row 4: a batch of 3 to a full disk: the input whose output does not fit fails with "disk
    full" naming that output; the two others are written (it was "unexpected LibsndfileError:
    System error.")."""
    mixture = sf.read(files / "mix.wav", dtype="float32")[0]
    write_wav(files / "a.wav", mixture[:16000])  # 64 kB of output each
    write_wav(files / "big.wav", np.tile(mixture, 3))  # 790 kB: does not fit
    write_wav(files / "c.wav", mixture[:16000])
    out = tmpfs("full", "512k")
    inputs = [str(files / name) for name in ("a.wav", "big.wav", "c.wav")]
    assert separate(files, *inputs, "-o", str(out)) == 1
    assert error_lines(capsys) == [f"clipsep-rt: error: {out / 'big_violin.wav'}: cannot write it: {DISK_FULL}"]
    assert sorted(path.name for path in out.glob("*.wav")) == ["a_violin.wav", "c_violin.wav"]
    assert sf.info(out / "c_violin.wav").frames == 16000
    assert hidden(out) == [], "a temporary was left on the full disk"


def test_a_read_only_output_folder_is_refused_by_name_before_any_work(files, tmpfs, capsys):
    """Row 15: a read-only output folder: one line naming the folder and saying "read-only file
    system", exit 2, for a batch into it or below it and for a stream into it (it was
    "unexpected OSError: [Errno 30]" and a traceback)."""
    read_only = tmpfs("ro", "1m", read_only=True)
    mix = str(files / "mix.wav")
    assert separate(files, mix, "-o", str(read_only)) == 2
    assert error_lines(capsys) == [f"clipsep-rt: error: {read_only}: cannot write there: {READ_ONLY}"]
    assert separate(files, mix, "-o", str(read_only / "sub")) == 2
    assert error_lines(capsys) == [f"clipsep-rt: error: {read_only / 'sub'}: cannot write there: {READ_ONLY}"]
    assert separate(files, mix, "--stream", "-o", str(read_only / "s.wav")) == 2
    assert error_lines(capsys) == [f"clipsep-rt: error: {read_only}: cannot write s.wav there: {READ_ONLY}"]


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (errno.EDQUOT, "{path}: cannot write it: disk quota exceeded; free some space or choose another output folder"),
        (errno.EACCES, "{folder}: cannot write out.wav there: permission denied; choose another output folder"),
        (errno.EIO, "{path}: cannot write it: input/output error (a failing or removed disk?); check the disk"),
        (errno.ENOSPC, "{path}: cannot write it: " + DISK_FULL),
    ],
    ids=["quota", "permission", "failing-disk", "disk-full"],
)
def test_every_os_error_while_writing_audio_is_one_line_in_words(tmp_path, monkeypatch, number, expected):
    """Deliverable 2: the OS errors a test cannot cause for real (quota, permission as root, a
    failing disk) reach the user the same way: the one audio writer words each, naming the file."""

    def failing_write(descriptor, data):
        raise OSError(number, "as the OS says it")

    monkeypatch.setattr(audio_writer, "_write", failing_write)
    path = tmp_path / "out.wav"
    with pytest.raises(ClipsepError) as raised:
        write_audio_atomic(path, np.zeros(48000, np.float32), 48000)
    assert str(raised.value) == expected.format(path=path, folder=tmp_path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [], "the temporary was left"


def test_an_interrupt_inside_libsndfiles_write_callback_stops_the_write(tmp_path, monkeypatch, capfd):
    """Review of row 7: Ctrl-C or SIGTERM while libsndfile writes: the signal handler raises
    inside the writer's callback (called through cffi), where it was printed as "From cffi
    callback ... Traceback" and dropped, so the run went on. It comes out of `AudioWriter.write`
    and `write_audio_atomic` as the KeyboardInterrupt it is, leaving no temporary."""

    def interrupted_write(descriptor, data):
        if len(data) > 1000:  # the samples, not the header
            raise KeyboardInterrupt
        return os.write(descriptor, data)

    monkeypatch.setattr(audio_writer, "_write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        write_audio_atomic(tmp_path / "out.wav", np.zeros(48000, np.float32), 48000)
    assert list(tmp_path.iterdir()) == [], "the temporary was left"
    with audio_writer.AudioWriter(tmp_path / "direct.wav", 48000, 1, "FLOAT", "WAV") as writer:
        with pytest.raises(KeyboardInterrupt):
            writer.write(np.zeros(48000, np.float32))
    assert "cffi" not in capfd.readouterr().err


def test_nan_output_is_never_written_and_the_run_fails_naming_the_file(files, monkeypatch, capsys):
    """Deliverable 2: a separation that gives NaN (damaged weights, a numeric fault) is never
    written as a file after a run that reports success: the input fails naming its output."""
    from clipsep_rt.api import Separator

    separate_blocks = Separator.separate_blocks

    def poisoned(self, *args, **kwargs):
        for mixture, outputs in separate_blocks(self, *args, **kwargs):
            yield mixture, outputs * np.float32("nan")

    monkeypatch.setattr(Separator, "separate_blocks", poisoned)
    assert separate(files, str(files / "mix.wav"), "-o", str(files / "out")) == 1
    output = files / "out" / "mix_violin.wav"
    assert error_lines(capsys) == [f"clipsep-rt: error: {output}: refusing to write NaN or infinite samples "
                                   "(the model's weights may be damaged: check the checkpoint)"]
    assert not output.exists() and hidden(files / "out") == []


# -- concurrent runs ---------------------------------------------------------------------------

def _batch(files: Path, *inputs: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(EXE), "--query-embedding", "violin.npy", "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32",
         *inputs, "-o", "out"],
        cwd=files, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_temporary(process: subprocess.Popen, out: Path, stem: str, min_bytes: int,
                        timeout_s: float = 240) -> Path:
    """The temporary of out/<stem>... once it holds `min_bytes` (the output is being written)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = [path for path in out.glob(f".{stem}.*.tmp.wav") if path.stat().st_size >= min_bytes]
        if found:
            return found[0]
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no temporary of {stem} appeared in {out}")


def test_a_second_identical_batch_leaves_what_the_first_is_writing_to_it(files):
    """Row 11: two identical batch runs on one folder: the second finds the first writing an
    output, leaves that input to it and does the rest; both succeed (the second used to
    separate it too, and one of them then failed with "output already exists").

    The first run is paused (SIGSTOP) while it writes, so the overlap does not depend on timing."""
    mixture = sf.read(files / "mix.wav", dtype="float32")[0]
    write_wav(files / "long.wav", np.tile(mixture, 8), rate=16000)  # 33 s
    write_wav(files / "b.wav", mixture[:16000])
    write_wav(files / "c.wav", mixture[:16000])
    inputs = ("long.wav", "b.wav", "c.wav")
    first = _batch(files, *inputs)
    try:
        temporary = _wait_for_temporary(first, files / "out", "long_violin", min_bytes=1 << 16)
        first.send_signal(signal.SIGSTOP)
        assert temporary.exists(), "the first run finished the long file before it was paused"
        second = _batch(files, *inputs)
        _, second_err = second.communicate(timeout=240)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=240)
    assert second.returncode == 0, second_err
    assert first.returncode == 0, first_err
    assert "long_violin.wav: another process is writing it; left to that process" in second_err
    assert "2 of 3 inputs separated, 1 left to another run writing them; 2 files written" in second_err, second_err
    assert "1 of 3 inputs separated, 2 skipped (outputs exist); 1 files written" in first_err, first_err
    assert sorted(path.name for path in (files / "out").glob("*.wav")) == [
        "b_violin.wav", "c_violin.wav", "long_violin.wav"]
    assert sf.info(files / "out" / "long_violin.wav").frames == 8 * len(mixture)
    assert hidden(files / "out") == []


def test_writers_of_one_output_at_the_same_instant_leave_it_to_one(tmp_path):
    """Row 11, at the library's level: writers that claim one output at the same instant (four
    threads behind a barrier) leave it to exactly one; the others are refused before writing."""
    path, writers = tmp_path / "song_violin.wav", 4
    start, refused = threading.Barrier(writers), []
    all_refused = threading.Event()
    wrote: list[int] = []

    def write(index: int) -> None:
        start.wait(timeout=30)
        try:
            with atomic_output(path) as temporary:
                temporary.write_bytes(b"%d" % index)
                all_refused.wait(timeout=30)  # hold the output while the others try
                wrote.append(index)
        except OutputClaimed:
            refused.append(index)
            if len(refused) == writers - 1:
                all_refused.set()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(wrote) == 1 and len(refused) == writers - 1
    assert path.read_bytes() == b"%d" % wrote[0] and hidden(tmp_path) == []


# -- stopping a stream to a file -----------------------------------------------------------------

@pytest.mark.parametrize(("stop", "status", "last_line"),
                         [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_stopped_stream_says_its_unfinished_output_was_removed(files, stop, status, last_line):
    """Row 17: SIGINT/SIGTERM during `--stream -o st.wav --stats st.json`: the partial output is
    removed (a streamed file is written whole or not at all, as a batch output), and one line
    says so, naming the file and the statistics not written; exit 130/143 (it said only
    "interrupted")."""
    write_wav(files / "long.wav", np.tile(sf.read(files / "mix.wav", dtype="float32")[0], 5))  # 20 s
    process = subprocess.Popen(
        [str(EXE), "--query-embedding", "violin.npy", "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32",
         "long.wav", "--stream", "--realtime", "-o", "st.wav", "--stats", "st.json"],
        cwd=files, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_stop_signals_as_in_a_terminal,
    )
    _wait_for_temporary(process, files, "st", min_bytes=1 << 12)
    process.send_signal(stop)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    lines = err.strip().splitlines()
    assert lines[-2:] == ["clipsep-rt: stopped while streaming long.wav: its unfinished output st.wav was removed, "
                          "and no statistics were written to st.json", f"clipsep-rt: {last_line}"], err
    assert not (files / "st.wav").exists() and not (files / "st.json").exists() and hidden(files) == []
