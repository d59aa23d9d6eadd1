"""Faults the tool survives: streaming and live audio.

Each test names the row of issue 23 it covers and the fault it injects:

* Row 3: the disk fills up under a live recording. The recording stops there and is kept,
  complete and valid, with one line saying "disk full" and naming the file; a run that only
  records stops (exit 1), a run that plays goes on. A real full disk: a small tmpfs (the
  tests skip, saying why, where mounting one is not permitted).
* Deliverable 2 (live part): live recordings survive the failures of the process short of
  kill -9: the separation failing mid-run, and SIGHUP (the terminal closed).
* Row 8: the first network call of a stream compiles the graph (OpenVINO: 0.3-0.8 s); it
  is start-up (`startup_ms`), not an overrun, so a short file is judged by its steady state.
* Row 9: a query typed in a live run (a file played to the speakers too): the text encoder is
  loaded before the audio starts, and the switch says how long it took.
* Row 10: playback runs dry: the warning's advice names the option that sets the buffer
  (`--buffer-ms`), which exists, bounded. Deliverable 3: `--stream` keeps the input's channels.

The tests with a live audio device run PortAudio on a JACK dummy server (`tests/test_live.py`
explains how, and they skip where jackd is missing); each such scenario runs `clipsep-rt` in
a subprocess. Run as `python -m tests.test_faults_stream SCENARIO`, this file drives it.
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
import torch

from clipsep_rt.cli import main
from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.jobs.file_stream import stream_file, write_stats
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.live.recording import Recording
from clipsep_rt.runtime.live.runner import LiveRunner
from clipsep_rt.runtime.live.status import LiveSnapshot, PlaybackCounts, Warnings
from clipsep_rt.runtime.streaming import StreamingOptions, StreamingSeparator, stream_file_aligned
from tests.test_live import (  # noqa: F401 - jack_servers is a fixture
    _jack_env,
    _live_audio_missing,
    _stop_signals_as_in_a_terminal,
    _wait_or_dump,
    jack_servers,
    known_signal,
)

RATE = 16000
HERE = Path(__file__).resolve()
QUERY_DIM = 8
JACK_PERIOD = 512  # a server of this module's own: test_live's fixture, imported here, names servers by rate and period


# ---------------------------------------------------------------------------- helpers


def tiny_engine(seed: int = 0) -> TorchEngine:
    torch.manual_seed(seed)
    return TorchEngine(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=QUERY_DIM)), "cpu", "fp32")


def tiny_queries(engine, rows: int = 1):
    embeddings = np.random.default_rng(0).standard_normal((rows, QUERY_DIM)).astype(np.float32)
    return engine.prepare_queries(embeddings, noise_heads=False)


@pytest.fixture
def tiny_model(tmp_path):
    """A tiny checkpoint (query size 8), one query vector and two for it: the CLI starts in seconds."""
    from clipsep_rt.model import checkpoint_from_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=QUERY_DIM)), None),
                    tmp_path / "tiny.safetensors")
    vectors = np.random.default_rng(0).standard_normal((2, QUERY_DIM)).astype(np.float32)
    np.save(tmp_path / "q.npy", vectors[:1])
    np.save(tmp_path / "two.npy", vectors)
    return tmp_path / "tiny.safetensors", tmp_path / "q.npy", tmp_path / "two.npy"


def file_runner(tmp_path: Path, output: Path, engine=None, seconds: float = 4.0, **options) -> LiveRunner:
    """A LiveRunner fed from a `seconds` file at real-time pace, recording to `output`, no device;
    its status lines collect in `runner.lines`."""
    source = tmp_path / "source.wav"
    sf.write(source, known_signal(RATE, seconds), RATE, subtype="FLOAT")
    engine = engine or tiny_engine()
    separator = StreamingSeparator(engine, tiny_queries(engine), options=StreamingOptions(8, 4))
    lines: list[str] = []
    runner = LiveRunner(separator, output_file=output, play=False, source_file=source, status=lines.append,
                        query_names=["tiny"], status_interval_s=0.2, **options)
    runner.lines = lines
    return runner


# ---------------------------------------------------------------------------- row 3: disk full


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_recording_that_fills_its_disk_stops_and_keeps_a_valid_file(tmpfs, suffix):
    """Row 3: a live recording fills its disk (a 256 KiB tmpfs). Writing never raises: the
    recording stops while it can still complete the file, says "disk full" naming it, and the
    file is valid, holding every sample written before. (Before: libsndfile's "System error."
    reached the worker, and the recording was removed.)"""
    disk = tmpfs("disk", "256k")
    path = disk / f"take{suffix}"
    recording = Recording(path, RATE, 1, tail_samples=4863)
    block = known_signal(RATE, 0.016)
    written = []
    for _ in range(2000):  # 32 s of audio: far more than the disk holds
        recording.write(block)
        written.append(block)
    assert recording.failure is not None and "disk full" in recording.failure and str(path) in recording.failure
    assert f"stopped at {recording.seconds:.1f} s" in recording.failure and 0.5 < recording.seconds < 4
    assert recording.close() and path.exists()
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE and len(audio) == recording.frames
    np.testing.assert_allclose(audio, np.concatenate(written)[: recording.frames], atol=1e-4 if suffix == ".flac" else 0)
    assert sorted(p.name for p in disk.iterdir()) == [path.name]  # no temporary left


def test_a_write_that_fails_anyway_still_leaves_a_valid_wav(tmpfs):
    """Row 3: the disk fills under the recording's feet (no space kept in reserve, as when
    another writer takes it): libsndfile's write fails with ENOSPC. The recording stops with
    "disk full", and the .wav it keeps is valid and holds what was written."""
    disk = tmpfs("disk", "128k")
    path = disk / "take.wav"
    recording = Recording(path, RATE, 2, reserve_bytes=0)
    block = np.stack([known_signal(RATE, 0.016), -known_signal(RATE, 0.016)], axis=1)
    for _ in range(200):  # 3.2 s of stereo float: 400 KiB
        recording.write(block)
    assert recording.failure is not None and recording.failure.startswith(f"{path}: ") and "disk full" in recording.failure
    assert "the recording stopped at " in recording.failure
    assert recording.close()
    info = sf.info(path)
    assert info.channels == 2 and recording.frames <= info.frames < recording.frames + len(block)
    audio, _ = sf.read(path, dtype="float32", frames=recording.frames)
    np.testing.assert_array_equal(audio, np.concatenate([block] * (recording.frames // len(block) + 1))[: recording.frames])


def test_live_run_that_only_records_stops_on_a_full_disk_and_keeps_the_recording(tmpfs, tmp_path):
    """Row 3, the live run: a recording-only run (a file fed at real-time pace) whose disk
    fills after about 1.5 s. The run stops by itself ("the recording stopped"), run() returns,
    a warning line says "disk full" naming the file, and the file is complete up to there.
    (Before: the worker's LibsndfileError was raised and the recording lost.)"""
    disk = tmpfs("disk", "256k")
    take = disk / "take.wav"
    runner = file_runner(tmp_path, take, seconds=6.0)
    runner.run()
    assert runner.stop_reason == "the recording stopped" and len(runner.recording_failures) == 1
    failure = runner.recording_failures[0]
    assert failure.startswith(f"{take}: disk full") and f"warning: {failure}" in runner.lines
    audio, rate = sf.read(take, dtype="float32")
    assert rate == RATE and len(audio) == runner.recordings[0].frames > 0.5 * RATE and np.abs(audio).max() > 1e-3
    assert runner.summary()["recording_failures"] == [failure]
    assert runner.lines[-1].startswith("live: stopped (the recording stopped)") and "incomplete" in runner.lines[-1]
    assert sorted(p.name for p in disk.iterdir()) == ["take.wav"]


def test_cli_live_recording_on_a_full_disk_exits_1_with_the_recording_kept(jack_servers, tmpfs, tiny_model):
    """Row 3, as reported: `clipsep-rt --input mic -o full/take.wav` on a JACK dummy server
    with a 256 KiB disk. The command stops by itself when the disk is full, exits 1 with one
    error line "disk full" naming the file, and take.wav holds the recording up to there.
    (Before: a traceback after 3 s and no file.)"""
    server = jack_servers(RATE, period=JACK_PERIOD)
    disk = tmpfs("disk", "256k")
    take = disk / "take.wav"
    checkpoint, vector, _ = tiny_model
    result = subprocess.run(
        [sys.executable, "-m", "clipsep_rt.cli", "--input", "mic", "-o", str(take), "-c", str(checkpoint),
         "--query-embedding", str(vector), "--hop-frames", "4", "--lookahead-frames", "2"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_jack_env(server), cwd=HERE.parent.parent,
        timeout=120, check=False)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1 and errors[0].startswith(f"clipsep-rt: error: {take}: disk full"), result.stderr
    assert "Traceback" not in result.stderr and f"wrote {take}" in result.stderr
    info = sf.info(take)
    assert info.samplerate == RATE and info.frames > 0.5 * RATE
    assert sorted(p.name for p in disk.iterdir()) == ["take.wav"]


# ---------------------------------------------------------------------------- deliverable 2: process failures


class FailingEngine:
    """The tiny engine, failing from its `fail_at`-th network call on (a CUDA error, say)."""

    def __init__(self, fail_at: int):
        self.engine = tiny_engine()
        self.device, self.precision = self.engine.device, self.engine.precision
        self.calls = 0
        self.fail_at = fail_at

    def prepare_queries(self, embeddings, noise_heads):
        return self.engine.prepare_queries(embeddings, noise_heads)

    def probabilities(self, log_mag, queries):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("the network failed mid-run")
        return self.engine.probabilities(log_mag, queries)


def test_live_recording_survives_the_separation_failing_mid_run(tmp_path):
    """Deliverable 2 (live): the network fails after about a second of a live run. The error
    still reaches the caller, and the recording keeps what was recorded before it: a valid
    file, and a line saying so. (Before: the recording was removed.)"""
    take = tmp_path / "take.wav"
    runner = file_runner(tmp_path, take, engine=FailingEngine(fail_at=6 + 1 + 12))  # warm-up, 5 timed, then steps
    with pytest.raises(RuntimeError, match="failed mid-run"):
        runner.run()
    audio, rate = sf.read(take, dtype="float32")
    assert rate == RATE and len(audio) == runner.recordings[0].frames > 0.3 * RATE and np.isfinite(audio).all()
    assert any(line.startswith(f"kept what was recorded before the failure: {take} (") for line in runner.lines), runner.lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.wav", "take.wav"]


def test_live_recording_survives_sighup(tmp_path):
    """Deliverable 2 (live): SIGHUP (the terminal or SSH session closed) during a live
    recording stops it like Ctrl-C: the process exits 0 with the recording complete. (Before:
    SIGHUP killed the process and the recording was lost.)"""
    result = subprocess.run([sys.executable, "-m", "tests.test_faults_stream", "hangup", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, check=False, cwd=HERE.parent.parent,
                            preexec_fn=_stop_signals_as_in_a_terminal)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["stop_reason"] == "hung up" and report["interrupted"]
    assert sf.info(tmp_path / "take.wav").frames == report["consumed"] > 0.2 * RATE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.wav", "take.wav"]


# ---------------------------------------------------------------------------- row 8: start-up is no overrun


class _FakeClock:
    """time.perf_counter / time.sleep on a clock that only moves when told: timings exact."""

    now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class CompilingEngine:
    """The tiny engine, as OpenVINO runs: its first call compiles the shape (`compile_s` on the
    fake clock), every later call takes `step_s`."""

    def __init__(self, clock: _FakeClock, compile_s: float, step_s: float):
        self.engine = tiny_engine()
        self.device, self.precision = self.engine.device, self.engine.precision
        self.clock, self.compile_s, self.step_s = clock, compile_s, step_s
        self.calls = 0

    def prepare_queries(self, embeddings, noise_heads):
        return self.engine.prepare_queries(embeddings, noise_heads)

    def probabilities(self, log_mag, queries):
        self.calls += 1
        self.clock.now += self.compile_s if self.calls == 1 else self.step_s
        return self.engine.probabilities(log_mag, queries)


@pytest.mark.parametrize("realtime", [False, True])
def test_the_first_calls_compile_is_startup_not_an_overrun(tmp_path, monkeypatch, realtime):
    """Row 8: `--stream --stats` on a 1 s file with an engine whose first call compiles for
    500 ms and whose steps take 20 ms of a 192 ms hop. The statistics report the compile as
    `startup_ms`, no overrun and `"realtime": true`: the steady state. (Before: the first
    hop held the compile, so every short file had 1 overrun and `"realtime": false`.)"""
    clock = _FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    sf.write(tmp_path / "short.wav", known_signal(RATE, 1.0), RATE, subtype="FLOAT")
    engine = CompilingEngine(clock, compile_s=0.5, step_s=0.02)
    separator = StreamingSeparator(engine, tiny_queries(engine), options=StreamingOptions(12, 4))
    started = clock.now
    stream_file(separator, tmp_path / "short.wav", tmp_path / "out.wav", realtime=realtime)
    write_stats(separator, tmp_path / "s.json")
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["startup_ms"] == pytest.approx(500) and stats["overruns"] == 0 and stats["realtime"] is True
    assert stats["steps"] and all(step["compute_ms"] == pytest.approx(20) for step in stats["steps"])
    if realtime:  # paced from after the compile: the file's second of audio, plus the compile before it
        assert clock.now - started == pytest.approx(0.5 + 1.0, abs=0.05)


def test_live_runs_and_bench_report_startup_apart_too():
    """Row 8, the other drivers: a live run's step estimate and `clipsep-rt bench` leave the
    compiling first call out of their timings and report it as start-up."""
    from clipsep_rt.measure.stream_timing import BenchRow, fill_timing, stream_timed
    from clipsep_rt.runtime.live.runner import measure_step

    clock = _FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "perf_counter", clock.perf_counter)
        engine = CompilingEngine(clock, compile_s=0.5, step_s=0.02)
        queries = tiny_queries(engine)
        separator = StreamingSeparator(engine, queries, options=StreamingOptions(12, 4))
        assert measure_step(separator) == pytest.approx(0.02) and separator.stats.startup_s == pytest.approx(0.5)
        engine = CompilingEngine(clock, compile_s=0.5, step_s=0.02)
        run = stream_timed(engine, queries, separator.spectral, StreamingOptions(12, 4), known_signal(RATE, 1.0))
    row = fill_timing(BenchRow("torch", "cpu", "fp32", "balanced"), run, RATE)
    assert row.startup_ms == pytest.approx(500) and row.overruns == 0 and row.realtime


# ---------------------------------------------------------------------------- row 9: typed queries


def test_typed_query_on_a_file_played_to_the_speakers(jack_servers, tiny_model, tmp_path):
    """Row 9 (and the README's JACK recipe, `-q ... --input song.wav -o speakers` without
    --stream): a file played to the speakers, a query typed that no cache holds. The text
    encoder is loaded before the audio starts ("query encoder ready in ..."), and the switch
    says how long its embedding took before "queries now: ...". (Before: the encoder loaded
    on the first typed query, inside the audio process, and nothing said so.)"""
    server = jack_servers(RATE, period=JACK_PERIOD)
    checkpoint, vector, _ = tiny_model
    sf.write(tmp_path / "song.wav", known_signal(RATE, 30.0), RATE, subtype="FLOAT")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.test_faults_stream", "typed", str(tmp_path), "--input", str(tmp_path / "song.wav"),
         "-o", "speakers", "-c", str(checkpoint), "--query-embedding", str(vector), "--hop-frames", "4",
         "--lookahead-frames", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_jack_env(server),
        cwd=HERE.parent.parent, preexec_fn=_stop_signals_as_in_a_terminal)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        _wait_for(process, lines, lambda line: line.startswith("clipsep-rt: live "))
        process.stdin.write("dog barking\n")
        process.stdin.flush()
        _wait_for(process, lines, lambda line: "queries now: dog barking" in line)
        process.send_signal(signal.SIGINT)
        _wait_or_dump(process, 30, lines, reader)
    finally:
        process.kill()
        process.wait()
    reader.join(5)
    err = "".join(lines)
    assert process.returncode == 0, err
    ready = next(i for i, line in enumerate(lines) if line.startswith("clipsep-rt: query encoder ready in "))
    first_status = next(i for i, line in enumerate(lines) if line.startswith("clipsep-rt: live "))
    switching = next(i for i, line in enumerate(lines) if line.startswith("clipsep-rt: switching to dog barking (embedded in "))
    switched = next(i for i, line in enumerate(lines) if "queries now: dog barking" in line)
    assert ready < first_status and switching < switched, err
    assert lines[switching].rstrip().endswith("ms): the next hop crossfades to it"), err


def _wait_for(process: subprocess.Popen, lines: list[str], matches, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(matches(line) for line in lines):
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)


# ---------------------------------------------------------------------------- row 10: the playback buffer


def test_underflow_advice_names_an_option_that_exists_and_is_bounded(tiny_model, tmp_path, capsys):
    """Row 10: the playback underflow warning advises `--buffer-ms` (with a value), which the
    command line takes for live runs, bounded (0 to 2000 ms), and refuses where there is no
    live run. (Before: "a larger buffer_ms avoids it", and no option set it.)"""
    snapshot = LiveSnapshot(rate=RATE, latency={"buffer_ms": 45.0}, playback=PlaybackCounts(underflows=2))
    lines = Warnings("--buffer-ms").new(snapshot)
    assert lines == ["warning: playback ran dry 2 time(s), 2 in all (silence played): the playback buffer holds 45 ms; "
                     "a larger --buffer-ms (say 90) avoids it, at that much more latency"]
    checkpoint, vector, _ = tiny_model
    base = ["-c", str(checkpoint), "--query-embedding", str(vector), "--quiet"]
    sf.write(tmp_path / "song.wav", known_signal(RATE, 1.0), RATE)
    for extra, message in [
        (["--input", "mic", "-o", str(tmp_path / "rec.wav"), "--buffer-ms", "5000"],
         "--buffer-ms: must be 0 to 2000 ms (it adds its size to the latency), got 5000"),
        (["--input", "mic", "--buffer-ms", "-1"], "--buffer-ms: must be 0 to 2000 ms"),
        ([str(tmp_path / "song.wav"), "--stream", "-o", str(tmp_path / "s.wav"), "--buffer-ms", "100"],
         "--buffer-ms: sizes the playback buffer of a live run"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    runner = file_runner(tmp_path, tmp_path / "take.wav", seconds=1.0, buffer_ms=500)
    assert runner.plan.buffer_s == 0.5 and runner.plan.max_backlog == 0.5 * RATE + 2 * runner.plan.block


# ---------------------------------------------------------------------------- deliverable 3: channels


def test_stream_keeps_the_input_channels_as_batch_does(tiny_model, tmp_path):
    """Deliverable 3: `--stream` of a stereo file writes stereo: the masks come from the
    downmix and apply to each channel, so the channels' mean is the mono stream of the
    downmix; with two queries the file holds each query's two channels in turn; `--mono`
    downmixes first, as in batch; a 44.1 kHz input keeps its rate and length. (Before: a
    stereo input gave mono output.)"""
    checkpoint, vector, two = tiny_model
    left, right = known_signal(RATE, 1.0, seed=1), known_signal(RATE, 1.0, seed=2)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    base = [str(tmp_path / "st.wav"), "--stream", "-c", str(checkpoint), "--hop-frames", "4", "--lookahead-frames", "2",
            "--quiet"]
    assert main([*base, "--query-embedding", str(two), "-o", str(tmp_path / "two.wav")]) == 0
    assert main([*base, "--query-embedding", str(vector), "-o", str(tmp_path / "one.wav")]) == 0
    assert main([*base, "--query-embedding", str(vector), "--mono", "-o", str(tmp_path / "mono.wav")]) == 0
    one, rate = sf.read(tmp_path / "one.wav", dtype="float32", always_2d=True)
    two_out, _ = sf.read(tmp_path / "two.wav", dtype="float32", always_2d=True)
    mono, _ = sf.read(tmp_path / "mono.wav", dtype="float32", always_2d=True)
    assert rate == RATE and one.shape == (len(left), 2) and two_out.shape == (len(left), 4) and mono.shape == (len(left), 1)
    np.testing.assert_allclose(two_out[:, :2], one, atol=1e-6)  # query 1's channels, then query 2's
    np.testing.assert_allclose(one.mean(axis=1), mono[:, 0], atol=1e-4)  # the downmix's masks on each channel
    assert np.abs(one[:, 0] - one[:, 1]).max() > 1e-3  # two different channels
    native = 44100
    stereo = np.stack([known_signal(native, 1.0, seed=3), known_signal(native, 1.0, seed=4)], axis=1)
    sf.write(tmp_path / "cd.wav", stereo, native, subtype="FLOAT")
    assert main([str(tmp_path / "cd.wav"), "--stream", "-c", str(checkpoint), "--query-embedding", str(vector),
                 "-o", str(tmp_path / "cd_out.wav"), "--quiet"]) == 0
    out, rate = sf.read(tmp_path / "cd_out.wav", dtype="float32", always_2d=True)
    assert rate == native and out.shape == stereo.shape and np.isfinite(out).all()


def test_a_multichannel_stream_separates_each_channel_with_the_downmix_masks():
    """Deliverable 3, the API: `Separator.stream(..., channels=C)` takes (m, C) blocks and gives
    (rows, m, C); a signal the same in every channel gets, in each, the mono stream's output."""
    engine = tiny_engine()
    queries = tiny_queries(engine, rows=2)
    signal_ = known_signal(RATE, 1.5)
    mono = stream_file_aligned(StreamingSeparator(engine, queries, options=StreamingOptions(4, 2)),
                               [signal_[i : i + 300] for i in range(0, len(signal_), 300)])
    stereo = StreamingSeparator(engine, queries, options=StreamingOptions(4, 2), channels=2)
    blocks = [np.stack([signal_[i : i + 300]] * 2, axis=1) for i in range(0, len(signal_), 300)]
    out = stream_file_aligned(stereo, blocks)
    assert out.shape == (2, len(signal_), 2)
    np.testing.assert_allclose(out[..., 0], mono, atol=1e-6)
    np.testing.assert_allclose(out[..., 1], mono, atol=1e-6)
    with pytest.raises(ClipsepError, match=r"blocks of shape \(m, 2\)"):
        stereo.process(signal_[:100])


# ---------------------------------------------------------------------------- driver (subprocess)


def _driver_hangup(out_dir: str) -> None:
    """A live recording (a file at real-time pace) that gets SIGHUP once 0.6 s are recorded
    (not at a fixed time: on a loaded machine the run may not have started by then)."""
    folder = Path(out_dir)
    runner = file_runner(folder, folder / "take.wav", seconds=10.0)

    def hang_up_once_recording() -> None:
        deadline = time.monotonic() + 60
        while runner.worker.consumed < 0.6 * RATE and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=hang_up_once_recording, daemon=True).start()
    runner.run()
    print(json.dumps({"stop_reason": runner.stop_reason, "interrupted": runner.interrupted,
                      "consumed": runner.worker.consumed}))


def _driver_typed(out_dir: str, *cli_args: str) -> None:
    """`clipsep-rt CLI_ARGS` with a tiny open_clip text encoder (registered here, its weights in
    OUT_DIR) as --query-encoder: an encoder that loads in a second, and no cache holds."""
    import open_clip

    from tests.tiny_clip import tiny_clip

    model, _ = tiny_clip(embed_dim=QUERY_DIM)
    open_clip.factory._MODEL_CONFIGS["tiny-live"] = {
        "embed_dim": QUERY_DIM,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    weights = Path(out_dir) / "tiny-live.pt"
    torch.save(model.state_dict(), weights)
    os.environ["CLIPSEP_RT_CACHE"] = str(Path(out_dir) / "cache")
    sys.exit(main([*cli_args, "--query-encoder", "open_clip:tiny-live", "--clip-weights", str(weights)]))


if __name__ == "__main__":  # python -m tests.test_faults_stream SCENARIO ARGS, from the repository's root
    {"hangup": _driver_hangup, "typed": _driver_typed}[sys.argv[1]](*sys.argv[2:])
