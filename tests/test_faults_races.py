"""Faults the tool survives: races between runs, Ray stops and live finishes.

Each test names the row of the review of issue 23's fixes it covers and the fault it
injects: an output another run finishes between a batch's plan and its claim (row 1), a
Ray job stopped after Ray's own services died, and its clean-up beside live writers (row 2),
a file that takes a live recording's name during the run, and a recording whose completion
fails (row 3), a terminal that hangs up under a live run (row 4), and the line a stopped
`--stream` says about its output (row 5).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import select
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
from clipsep_rt.jobs import batch
from clipsep_rt.jobs.batch import BatchJob
from clipsep_rt.jobs.distributed import _Item, _Pool
from clipsep_rt.jobs.outputs import OutputOptions
from clipsep_rt.jobs.run import FileTask
from clipsep_rt.runtime.live.recording import Recording
from tests.test_faults_stream import (  # noqa: F401 - jack_servers and tiny_model are fixtures
    JACK_PERIOD,
    RATE,
    _jack_env,
    _stop_signals_as_in_a_terminal,
    file_runner,
    jack_servers,
    tiny_model,
)

HERE = Path(__file__).resolve()


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob(".*"))


# ---------------------------------------------------------------------------- row 1: a batch's plan and its claim


def test_an_output_another_run_finishes_after_the_plan_is_left_to_it(tmp_path, golden, monkeypatch, capsys):
    """Row 1: another run finishes mix_violin.wav after this batch planned it (missing) and
    before it claims it. The input is left to that run, its file kept, the other input
    separated, and the run exits 0. (Before: "output already exists", the input failed, exit 1.)"""
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])
    write_wav(tmp_path / "b.wav", golden["mixture_wav"][:16000])
    np.save(tmp_path / "violin.npy", golden["query_embedding"])
    theirs = tmp_path / "out" / "mix_violin.wav"
    real_atomic_output = batch.atomic_output

    def finished_by_another_run_first(path, overwrite=False):
        if Path(path) == theirs:
            theirs.write_bytes(b"the other run's output")
        return real_atomic_output(path, overwrite)

    monkeypatch.setattr(batch, "atomic_output", finished_by_another_run_first)
    status = main(["--query-embedding", str(tmp_path / "violin.npy"), "-c", str(REFERENCE_CHECKPOINT),
                   "--precision", "fp32", str(tmp_path / "mix.wav"), str(tmp_path / "b.wav"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 0, err
    assert f"{theirs}: another process wrote it meanwhile; kept" in err, err
    assert "1 of 2 inputs separated, 1 left to another run writing them" in err, err
    assert theirs.read_bytes() == b"the other run's output"
    assert sf.info(tmp_path / "out" / "b_violin.wav").frames == 16000 and hidden(tmp_path / "out") == []


# ---------------------------------------------------------------------------- row 2: stopping a Ray job


class _RayWithoutServices:
    """What `ray` answers once a SIGTERM to the process group has stopped its services."""

    def __init__(self, services_alive: bool):
        self.services_alive = services_alive

    def kill(self, actor, no_restart=True):
        if not self.services_alive:
            raise ConnectionError("Ray's GCS is gone")

    def wait(self, refs, num_returns=1, timeout=None):
        if not self.services_alive:
            raise ConnectionError("Ray's GCS is gone")
        return refs, []


def _interrupted_pool(tmp_path: Path, services_alive: bool) -> _Pool:
    """A pool interrupted while a worker on another machine separated a.wav into out/a_violin.wav."""
    pool = object.__new__(_Pool)
    pool.ray = _RayWithoutServices(services_alive)
    pool.job = BatchJob(("violin",), np.zeros((1, 4), np.float32), OutputOptions(), tmp_path / "out")
    pool.idle, pool.starting, pool.pids, pool.died = [], {}, {}, []
    pool.running = {"separate-ref": ("remote-actor", _Item(FileTask(tmp_path / "a.wav", Path("a"))))}
    return pool


def test_a_ray_job_stopped_after_rays_services_died_still_cleans_up(tmp_path):
    """Row 2a: Ctrl-C stops a Ray job whose services a SIGTERM to the process group already
    ended: waiting for its remote worker fails too. The stop goes on, and the worker's partial
    temporary is removed. (Before: Ray's error replaced the interrupt: a traceback, exit 1,
    the temporary left.)"""
    out = tmp_path / "out"
    out.mkdir()
    partial = out / ".a_violin.0123456789ab.tmp.wav"
    partial.write_bytes(b"partial")
    _interrupted_pool(tmp_path, services_alive=False).close()
    assert hidden(out) == []


def test_a_stopped_ray_job_removes_only_its_own_dead_temporaries(tmp_path):
    """Row 2b: the stop removes the partial temporary of the interrupted input's output, but
    not one a live process holds (a concurrent run writing the same output), nor those of
    another input whose name starts alike (a_b.wav: .a_b_violin...). (Before: every file
    matching .a_*.tmp* was removed, locks or not.)"""
    out = tmp_path / "out"
    out.mkdir()
    partial = out / ".a_violin.0123456789ab.tmp.wav"
    live = out / ".a_violin.aaaaaaaaaaaa.tmp.wav"
    other_input = out / ".a_b_violin.bbbbbbbbbbbb.tmp.wav"
    for path in (partial, live, other_input):
        path.write_bytes(b"audio")
    holder = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # its writer is alive
        _interrupted_pool(tmp_path, services_alive=True).close()
    finally:
        os.close(holder)
    assert hidden(out) == sorted([live.name, other_input.name])


# ---------------------------------------------------------------------------- row 3: finishing live recordings


def test_a_recording_whose_name_was_taken_during_the_run_is_kept_beside_it(tmp_path):
    """Row 3: while a live run records take.wav, another file takes that name (and take.1.wav
    exists too). Finishing keeps the other file and the recording, as take.2.wav, and one
    line (a failure: the run exits 1) says so. (Before: the whole recording was deleted.)"""
    take = tmp_path / "take.wav"
    runner = file_runner(tmp_path, take)
    (tmp_path / "take.1.wav").write_bytes(b"an older take")
    lines = runner.lines

    def status(line: str) -> None:
        lines.append(line)
        if not take.exists():
            take.write_bytes(b"another file")

    runner.status = status
    runner.run(duration_s=1.0)
    kept_as = tmp_path / "take.2.wav"
    assert take.read_bytes() == b"another file" and (tmp_path / "take.1.wav").read_bytes() == b"an older take"
    assert sf.info(kept_as).frames == runner.worker.consumed > 0.5 * RATE
    assert runner.recording_failures == [
        f"{take}: another file took this name during the run; the recording is kept as {kept_as}"]
    assert lines[-1].startswith("live: stopped") and f"wrote {kept_as}" in lines[-1], lines
    assert hidden(tmp_path) == []


def test_a_recording_that_fails_to_complete_leaves_the_others_to_complete(tmp_path, monkeypatch):
    """Row 3: completing the first of two recordings (separated output, and the input) raises.
    The second is completed all the same, and the error reaches the caller after.
    (Before: the second was left as a temporary.)"""
    take = tmp_path / "take.wav"
    runner = file_runner(tmp_path, take, record_input=tmp_path / "input.wav")
    real_close = Recording.close

    def close(recording: Recording, keep: bool = True) -> bool:
        if recording.path == take:
            real_close(recording, keep=False)
            raise OSError(errno.EIO, "Input/output error", str(take))
        return real_close(recording, keep)

    monkeypatch.setattr(Recording, "close", close)
    with pytest.raises(OSError, match="Input/output error"):
        runner.run(duration_s=0.5)
    assert sf.info(tmp_path / "input.wav").frames == 8000
    assert not take.exists() and hidden(tmp_path) == []


# ---------------------------------------------------------------------------- row 4: a terminal that hangs up


def test_a_live_run_whose_status_output_fails_completes_its_recording(tmp_path):
    """Row 4, in the library: after a hang-up every status write fails with EIO. The run
    goes on and completes its recording. (Before: the first failing line raised out of `run`.)"""
    take = tmp_path / "take.wav"
    runner = file_runner(tmp_path, take)

    def hung_up(line: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    runner.status = hung_up
    runner.run(duration_s=0.6)
    assert sf.info(take).frames == runner.worker.consumed == round(0.6 * RATE)
    assert hidden(tmp_path) == []


def _read_until(master: int, text: str, process: subprocess.Popen, timeout_s: float = 120) -> str:
    """What the process wrote to its terminal, up to a line holding `text`."""
    seen, deadline = "", time.monotonic() + timeout_s
    while text not in seen:
        assert process.poll() is None and time.monotonic() < deadline, seen
        if select.select([master], [], [], 0.1)[0]:
            seen += os.read(master, 4096).decode(errors="replace")
    return seen


def test_cli_live_run_survives_its_terminal_hanging_up(jack_servers, tiny_model, tmp_path):
    """Row 4, as reported: `clipsep-rt --input mic -o take.wav --stats stats.json` with its
    stderr on a terminal that hangs up (the terminal closes, writes fail with EIO, then
    SIGHUP). It exits 0 with the recording and the statistics written. (Before: the summary
    line raised OSError: a traceback, exit 1, no statistics.)"""
    server = jack_servers(RATE, period=JACK_PERIOD)
    checkpoint, vector, _ = tiny_model
    take, stats = tmp_path / "take.wav", tmp_path / "stats.json"
    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "clipsep_rt.cli", "--input", "mic", "-o", str(take), "--stats", str(stats),
         "-c", str(checkpoint), "--query-embedding", str(vector), "--hop-frames", "4", "--lookahead-frames", "2"],
        stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=_jack_env(server), cwd=HERE.parent.parent,
        start_new_session=True, preexec_fn=_stop_signals_as_in_a_terminal)
    os.close(terminal)
    try:
        _read_until(master, "live ", process)  # a status line: it is recording
    finally:
        os.close(master)  # the terminal is gone: writes to it fail with EIO
    time.sleep(0.5)  # a status line or two fail before the hang-up's signal
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=120) == 0
    summary = json.loads(stats.read_text())
    assert summary["interrupted"] and summary["recording_failures"] == []
    assert sf.info(take).frames > 0.2 * RATE and hidden(tmp_path) == []


# ---------------------------------------------------------------------------- row 5: a stopped --stream


def _stream(tiny_model, tmp_path: Path, *extra: str) -> int:
    checkpoint, vector, _ = tiny_model
    write_wav(tmp_path / "song.wav", np.zeros(16000, np.float32))
    return main(["-c", str(checkpoint), "--query-embedding", str(vector), str(tmp_path / "song.wav"), "--stream",
                 "-o", str(tmp_path / "st.wav"), *extra])


def test_a_stream_stopped_before_it_wrote_says_nothing_was_written(tiny_model, tmp_path, monkeypatch, capsys):
    """Row 5: Ctrl-C before the stream has begun its output: the line says nothing was
    written to st.wav. (Before: "its unfinished output st.wav was removed", which never existed.)"""
    from clipsep_rt.jobs import file_stream

    def stopped_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(file_stream, "stream_file", stopped_at_once)
    assert _stream(tiny_model, tmp_path) == 130
    err = capsys.readouterr().err
    assert f"stopped while streaming {tmp_path / 'song.wav'}: nothing was written to {tmp_path / 'st.wav'}" in err, err
    assert "removed" not in err and not (tmp_path / "st.wav").exists()


def test_a_stopped_stream_with_overwrite_says_the_earlier_output_is_left(tiny_model, tmp_path, monkeypatch, capsys):
    """Row 5: Ctrl-C while streaming with --overwrite over an earlier st.wav: the unfinished
    output is removed and the earlier st.wav left as it was, which the line says.
    (Before: "its unfinished output st.wav was removed", while st.wav was still there.)"""
    from clipsep_rt.jobs import file_stream

    def stopped_while_writing(separator, source, destination, **kwargs):
        separator.warm_up()  # as stream_file does, just before it claims its output
        raise KeyboardInterrupt

    (tmp_path / "st.wav").write_bytes(b"earlier")
    monkeypatch.setattr(file_stream, "stream_file", stopped_while_writing)
    assert _stream(tiny_model, tmp_path, "--overwrite") == 130
    err = capsys.readouterr().err
    assert (f"its unfinished output was removed, and the earlier {tmp_path / 'st.wav'} is left as it was"
            in err), err
    assert (tmp_path / "st.wav").read_bytes() == b"earlier"
