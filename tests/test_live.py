"""Live audio (clipsep_rt.runtime.live).

Without an audio device: the playback buffer, the worker (alignment, drops with a slow
engine, query switches), the runner fed from a file (stop event, Ctrl-C, stats), device
lookup against a fake sounddevice module.

With real PortAudio streams on a JACK dummy server (jackd2 + libportaudio2 + sounddevice):
each scenario runs this file as a script in a subprocess, so that JACK_DEFAULT_SERVER is set
before PortAudio initialises. One PortAudio stream in that process plays a known signal into
the runner's input port and records the runner's output port (ports joined with jack_connect).
"""

from __future__ import annotations

import ctypes.util
import faulthandler
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.live.buffers import PlaybackBuffer
from clipsep_rt.runtime.live.devices import find_audio_device
from clipsep_rt.runtime.live.runner import LiveRunner
from clipsep_rt.runtime.live.stdin import read_queries_from_stdin
from clipsep_rt.runtime.live.worker import LiveWorker
from clipsep_rt.runtime.streaming import (
    StreamingOptions,
    StreamingSeparator,
    stream_file_aligned,
)

RATE = 16000
BLOCK = 256
HERE = Path(__file__).resolve()


# ---------------------------------------------------------------------------- helpers


def tiny_engine(seed: int = 0) -> TorchEngine:
    torch.manual_seed(seed)
    return TorchEngine(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), "cpu", "fp32")


def tiny_queries(engine, seed: int = 0):
    embedding = np.random.default_rng(seed).standard_normal((1, 8)).astype(np.float32)
    return engine.prepare_queries(embedding, noise_heads=False)


class _Rows:
    def __init__(self, rows: int):
        self.rows = rows


class IdentityEngine:
    """Masks of one everywhere (the output is the input, `latency` later); `slow` seconds per call."""

    device = "cpu"
    precision = "fp32"

    def __init__(self, slow: float = 0.0):
        self.slow = slow
        self.calls = 0

    def prepare_queries(self, embeddings, noise_heads):
        return _Rows(1)

    def probabilities(self, log_mag, queries):
        self.calls += 1
        if self.slow:
            time.sleep(self.slow)
        return np.ones((log_mag.shape[0], queries.rows, *log_mag.shape[2:]), np.float32)


class Sink:
    """Collects what a SoundFile would be given."""

    def __init__(self):
        self.parts = []

    def write(self, samples):
        self.parts.append(np.array(samples, dtype=np.float32))

    @property
    def samples(self) -> np.ndarray:
        """(n,) for a mono recording, else (n, channels)."""
        samples = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        return samples[:, 0] if samples.ndim == 2 and samples.shape[1] == 1 else samples


def known_signal(rate: int, seconds: float, seed: int = 1) -> np.ndarray:
    """Band-limited noise (below 4 kHz) with a slow envelope: no two stretches alike, so a
    cross-correlation has one clear peak."""
    n = round(rate * seconds)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / rate) > 4000] = 0
    noise = np.fft.irfft(spectrum, n)
    noise *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * np.arange(n) / rate)
    return (0.3 * noise / np.abs(noise).max()).astype(np.float32)


def lag_of(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(lag, normalised correlation) with a[n] ~ b[n - lag], found by FFT cross-correlation."""
    size = len(a) + len(b)
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    index = int(np.argmax(corr))
    lag = index if index < len(a) else index - size
    if lag >= 0:
        x, y = a[lag:], b[: len(a) - lag]
    else:
        x, y = a, b[-lag:]
    m = min(len(x), len(y))
    x, y = x[:m], y[:m]
    return lag, float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y) + 1e-30))


# ---------------------------------------------------------------------------- no device


def test_playback_buffer_underflow_plays_silence_without_growing_latency():
    buffer = PlaybackBuffer(target=4, high_water=8)
    assert not buffer.pull(3).any() and not buffer.primed  # silence until the target is reached
    buffer.push(np.arange(1, 5, dtype=np.float32))
    played = [buffer.pull(2), buffer.pull(4)]  # the second runs dry
    assert buffer.underflows == 1 and buffer.deficit == 2
    buffer.push(np.arange(5, 11, dtype=np.float32))  # 5 and 6 are late: discarded
    played.append(buffer.pull(4))
    np.testing.assert_array_equal(np.concatenate(played), [1, 2, 3, 4, 0, 0, 7, 8, 9, 10])  # sample k at k - 1
    assert buffer.late_samples == 2
    buffer.push(np.arange(20, dtype=np.float32))  # far above the high water mark: trimmed to the target
    assert buffer.level == 4 and buffer.trimmed_samples == 16
    np.testing.assert_array_equal(buffer.pull(4), [16, 17, 18, 19])


@pytest.mark.parametrize("input_rate", [16000, 48000])
def test_worker_recording_matches_the_file_stream(input_rate):
    """Random-size device blocks (resampled when not at 16 kHz) through the worker: the recording
    is aligned with the recorded input, as long, and equal to stream_file_aligned of that input."""
    engine = tiny_engine()
    queries = tiny_queries(engine)
    options = StreamingOptions(2, 1)
    separator = StreamingSeparator(engine, queries, options=options)
    record, record_input = Sink(), Sink()
    worker = LiveWorker(separator, BLOCK, input_rate=input_rate, record=record, record_input=record_input,
                        max_backlog=10**9)
    signal = known_signal(input_rate, 2.0)
    rng = np.random.default_rng(3)
    position = 0
    while position < len(signal):
        size = int(rng.integers(1, 1500))
        worker.put(signal[position : position + size])
        position += size
        worker.pump()
    worker.finish()
    fed, out = record_input.samples, record.samples
    assert abs(len(fed) - len(signal) * RATE // input_rate) <= 1
    assert len(out) == len(fed) == worker.consumed
    offline = stream_file_aligned(StreamingSeparator(engine, queries, options=options),
                                  (fed[i : i + 1000] for i in range(0, len(fed), 1000)))[0]
    np.testing.assert_allclose(out, offline, atol=1e-5, rtol=0)
    assert np.sqrt(np.mean(out**2)) > 1e-3 and worker.drops == 0


def test_worker_that_falls_behind_drops_the_oldest_input_and_keeps_its_latency():
    """Ten blocks waiting at once (the worker was stalled): the oldest nine are dropped, one
    overrun is counted, the output stays as long as the input and, once the separator's window
    is past the gap, everything is where a gapless stream puts it."""
    separator = StreamingSeparator(IdentityEngine(), _Rows(1), options=StreamingOptions(2, 1))
    playback, record = PlaybackBuffer(target=0, high_water=10**9), Sink()
    worker = LiveWorker(separator, BLOCK, playback=playback, record=record, max_backlog=4 * BLOCK)
    signal = known_signal(RATE, 50 * BLOCK / RATE)
    B, L = BLOCK, separator.latency_samples

    def feed(first, last):
        for b in range(first, last):
            worker.put(signal[b * B : (b + 1) * B])

    for b in range(12):  # in time
        feed(b, b + 1)
        worker.pump()
    feed(12, 22)  # ten input callbacks while the network was busy
    worker.pump()
    assert worker.drops == 1 and worker.dropped_samples == 9 * B
    for b in range(22, 50):  # in time again
        feed(b, b + 1)
        worker.pump()
    worker.finish()
    recorded = record.samples
    played = playback.pull(playback.level)
    assert len(played) == len(recorded) == len(signal) == worker.consumed  # one output sample per input sample
    close = {"atol": 1e-5, "rtol": 0}
    np.testing.assert_allclose(recorded[: 12 * B - L], signal[: 12 * B - L], **close)  # aligned before the gap
    assert not recorded[12 * B - L : 21 * B - L].any()  # the dropped input (and the latency before it): silence
    np.testing.assert_allclose(recorded[21 * B - L : 21 * B], signal[12 * B - L : 12 * B], **close)  # then the rest of it
    np.testing.assert_allclose(recorded[21 * B :], signal[21 * B :], **close)  # aligned again after the gap
    assert not played[:L].any()  # playback: the same stream, `latency` later
    np.testing.assert_array_equal(played[L:], recorded[:-L])


def test_worker_thread_with_a_slow_engine_drops_and_recovers_in_real_time():
    """A device clock thread puts one 16 ms block in and pulls one out every 16 ms; the engine
    takes 80 ms per 32 ms hop for a while. The worker must drop input (counted), never grow its
    backlog beyond the limit, and play every click that survives with the same latency (each
    click has its own height, so each played click names its input)."""
    engine = IdentityEngine()
    separator = StreamingSeparator(engine, _Rows(1), options=StreamingOptions(2, 1))
    target = 3 * BLOCK
    playback, record = PlaybackBuffer(target, high_water=target + 3 * BLOCK), Sink()
    worker = LiveWorker(separator, BLOCK, playback=playback, record=record, max_backlog=target + 2 * BLOCK)
    blocks = 100  # 1.6 s
    clicks = np.zeros(blocks * BLOCK, dtype=np.float32)
    positions = np.arange(50, len(clicks), 613)
    heights = np.linspace(0.3, 1.0, len(positions))
    clicks[positions] = heights
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,))
    thread.start()
    played = []
    backlog = []
    started = time.perf_counter()
    for b in range(blocks):
        engine.slow = 0.08 if 30 <= b < 55 else 0.0  # behind real time between 0.5 s and 0.9 s
        worker.put(clicks[b * BLOCK : (b + 1) * BLOCK])
        played.append(playback.pull(BLOCK))
        backlog.append(worker.consumed)
        time.sleep(max(0.0, (b + 1) * BLOCK / RATE - (time.perf_counter() - started)))
    stop.set()
    thread.join()
    worker.finish()
    played = np.concatenate(played)
    assert separator.stats.overruns >= 1 and worker.drops >= 1 and worker.dropped_samples > 0
    assert worker.consumed == len(clicks) and len(record.samples) == len(clicks)
    # the worker's backlog never exceeded its limit by more than what arrives during one slow step
    assert worker.max_backlog_seen <= worker.max_backlog + round(0.08 * RATE) + 2 * BLOCK
    lag_behind = [b * BLOCK + BLOCK - consumed for b, consumed in enumerate(backlog)]
    assert max(lag_behind[-20:]) <= worker.max_backlog  # caught up by the end: no growing delay
    found = np.flatnonzero(played > 0.2)
    which = [int(np.argmin(np.abs(heights - played[f]))) for f in found]
    assert all(abs(heights[k] - played[f]) < 1e-4 for f, k in zip(found, which))
    delays = [f - positions[k] for f, k in zip(found, which)]
    early = [d for f, d in zip(found, delays) if f < 25 * BLOCK]
    late = [d for f, d in zip(found, delays) if f > 75 * BLOCK]
    assert len(early) >= 3 and len(late) >= 3 and len(set(early + late)) == 1, (early, late)  # one latency throughout
    assert separator.latency_samples <= early[0] <= separator.latency_samples + target + 2 * BLOCK


def test_switch_queries_happens_between_blocks_on_the_worker():
    engine = tiny_engine()
    first, second = tiny_queries(engine, 0), tiny_queries(engine, 1)
    separator = StreamingSeparator(engine, first, options=StreamingOptions(2, 1))
    worker = LiveWorker(separator, BLOCK)
    done = []
    worker.switch_queries(second, then=lambda: done.append(threading.current_thread()))
    assert separator.queries is first and not done  # nothing happens until the next block
    worker.put(np.zeros(BLOCK, dtype=np.float32))
    worker.pump()
    worker.put(np.zeros(4 * BLOCK, dtype=np.float32))
    worker.pump()
    assert done == [threading.current_thread()]  # here the caller of pump() is the worker
    assert separator.queries is second  # the separator has crossfaded to it within a hop
    two = engine.prepare_queries(np.ones((2, 8), np.float32), noise_heads=False)
    worker.switch_queries(two)  # more queries: allowed (see the next test)
    with pytest.raises(ClipsepError, match="playback is query 2: a switch needs at least 2 queries, got 1"):
        LiveWorker(StreamingSeparator(engine, two, options=StreamingOptions(2, 1)), BLOCK, row=1).switch_queries(first)


def test_a_switch_to_more_or_fewer_queries_keeps_playback_and_the_recording_channels():
    """Two queries at the start: a 2-channel recording. Switched to one query, then to three:
    playback stays the first query's output throughout; the recording keeps 2 channels (the
    second silent while there is one query, the third query not recorded); it stays aligned
    and as long as the input, and each channel is what a stream of its query makes of it."""
    engine = tiny_engine()
    two = engine.prepare_queries(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32), noise_heads=False)
    one = engine.prepare_queries(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)[:1], noise_heads=False)
    three_embeddings = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    three_embeddings[2] = np.random.default_rng(5).standard_normal(8)  # the first two as at the start, one more
    three = engine.prepare_queries(three_embeddings, noise_heads=False)
    options = StreamingOptions(2, 1)
    separator = StreamingSeparator(engine, two, options=options)
    playback, record = PlaybackBuffer(target=0, high_water=10**9), Sink()
    worker = LiveWorker(separator, BLOCK, playback=playback, record=record, max_backlog=10**9)
    signal = known_signal(RATE, 3.0)[: 187 * BLOCK]
    switches = {RATE // BLOCK: one, 2 * RATE // BLOCK: three}  # at 1 s and 2 s
    for b in range(len(signal) // BLOCK):
        if b in switches:
            worker.switch_queries(switches[b])
        worker.put(signal[b * BLOCK : (b + 1) * BLOCK])
        worker.pump()
    worker.finish()
    recorded = record.samples
    assert recorded.shape == (len(signal), 2) and worker.record_channels == 2
    reference = {name: stream_file_aligned(StreamingSeparator(engine, queries, options=options), [signal])
                 for name, queries in (("two", two), ("three", three))}
    settle = separator.latency_samples + 4 * options.hop_frames * 256  # the crossfade and the iSTFT's reach
    close = {"atol": 1e-5, "rtol": 0}
    before = RATE - separator.latency_samples - BLOCK  # what the switch hop cannot reach
    np.testing.assert_allclose(recorded[:before], reference["two"][:, :before].T, **close)  # before the switch
    np.testing.assert_allclose(recorded[RATE + settle : 2 * RATE, 0], reference["two"][0, RATE + settle : 2 * RATE], **close)
    assert not recorded[RATE + settle : RATE + before, 1].any()  # one query: the second channel is silent
    np.testing.assert_allclose(recorded[2 * RATE + settle :], reference["three"][:2, 2 * RATE + settle : len(recorded)].T, **close)
    assert np.abs(recorded[2 * RATE + settle :, 1]).max() > 1e-3  # the second channel is back
    assert np.abs(np.diff(recorded[:, 1])).max() <= 1.05 * np.abs(np.diff(reference["two"][1])).max()  # faded: no click
    played = playback.pull(playback.level)
    assert len(played) == len(recorded)
    np.testing.assert_allclose(played[separator.latency_samples :], recorded[: -separator.latency_samples, 0], **close)


def test_read_queries_from_stdin_calls_back_for_each_line():
    seen, errors = [], []

    def callback(text):
        if text == "bad":
            raise ClipsepError("no such query")
        seen.append(text)

    thread = read_queries_from_stdin(callback, io.StringIO("dog barking\n\n  bad \n violin \n"), on_error=errors.append)
    thread.join(5)
    assert seen == ["dog barking", "violin"] and errors == ["no such query"] and thread.daemon


@pytest.fixture
def file_runner(tmp_path):
    """A LiveRunner fed from a 3 s file at real-time pace, recording only: no PortAudio needed."""
    source = tmp_path / "source.wav"
    sf.write(source, known_signal(RATE, 3.0), RATE, subtype="FLOAT")
    engine = tiny_engine()
    separator = StreamingSeparator(engine, tiny_queries(engine), options=StreamingOptions(8, 4))
    lines = []
    runner = LiveRunner(separator, output_file=tmp_path / "out.wav", play=False, source_file=source, status=lines.append,
                        record_input=tmp_path / "in.wav", query_names=["tiny"], status_interval_s=0.2)
    runner.lines = lines
    return runner


def test_stop_event_ends_the_run_with_a_complete_aligned_file(file_runner, tmp_path):
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    started = time.perf_counter()
    file_runner.run(stop_event=stop)
    assert 0.7 < time.perf_counter() - started < 2.0
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    fed, _ = sf.read(tmp_path / "in.wav", dtype="float32")
    assert rate == RATE and len(out) == len(fed) == file_runner.worker.consumed
    assert 0.3 * RATE < len(out) < 1.3 * RATE and np.isfinite(out).all() and np.abs(out).max() > 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav", "source.wav"]  # no temporaries left
    assert file_runner.stop_reason == "stopped"
    assert any(line.startswith("live ") and "query: tiny" in line and "RTF" in line for line in file_runner.lines)
    assert file_runner.lines[-1].startswith("live: stopped (stopped)")


def test_ctrl_c_still_writes_a_valid_file_and_the_stats(file_runner, tmp_path):
    calls = []

    def status(line):  # Ctrl-C arrives while the runner's thread is in its loop
        calls.append(line)
        if len(calls) == 3:
            raise KeyboardInterrupt

    file_runner.status = status
    file_runner.run(duration_s=10)
    assert file_runner.interrupted and file_runner.stop_reason == "interrupted"
    info = sf.info(tmp_path / "out.wav")
    assert info.samplerate == RATE and info.frames == file_runner.worker.consumed > 0.3 * RATE
    file_runner.write_stats(tmp_path / "stats.json")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["interrupted"] and stats["drops"] == 0 and stats["queries"] == ["tiny"]
    slower = [step["compute_ms"] for step in stats["steps"] if step["compute_ms"] > stats["hop_ms"]]
    assert stats["overruns"] == len(slower), slower  # overruns: the steps slower than real time
    assert stats["latency_ms"] == pytest.approx(file_runner.separator.latency_ms)
    assert stats["steps"] and {"stream_time_s", "compute_ms"} <= set(stats["steps"][0])
    assert stats["compute_p99_ms"] >= stats["compute_p50_ms"] > 0 and stats["rtf_p50"] > 0


def test_duration_stops_a_file_source_exactly(file_runner, tmp_path):
    file_runner.run(duration_s=0.5)
    assert sf.info(tmp_path / "out.wav").frames == 8000 and file_runner.stop_reason == "duration reached"


def test_existing_output_is_refused_and_bad_settings_are_reported(file_runner, tmp_path):
    (tmp_path / "out.wav").write_bytes(b"keep")
    with pytest.raises(ClipsepError, match="already exists"):
        file_runner.run(duration_s=0.2)
    assert (tmp_path / "out.wav").read_bytes() == b"keep"
    separator = file_runner.separator
    with pytest.raises(ClipsepError, match="somewhere to go"):
        LiveRunner(separator, play=False, source_file=tmp_path / "source.wav")
    with pytest.raises(ClipsepError, match=".wav or .flac"):
        LiveRunner(separator, output_file=tmp_path / "x.mp3", play=False, source_file=tmp_path / "source.wav")
    with pytest.raises(ClipsepError, match="output row 3"):
        LiveRunner(separator, output_file=tmp_path / "y.wav", play=False, source_file=tmp_path / "source.wav", row=3)


def test_missing_sounddevice_says_how_to_install_it(monkeypatch, tmp_path):
    from clipsep_rt.runtime.live.devices import list_devices

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    with pytest.raises(ClipsepError, match="pip install sounddevice; apt install libportaudio2"):
        list_devices()
    engine = tiny_engine()
    separator = StreamingSeparator(engine, tiny_queries(engine))
    with pytest.raises(ClipsepError, match="libportaudio2"):
        LiveRunner(separator, play=True)


def _fake_sounddevice() -> types.ModuleType:
    devices = [
        {"name": "USB Mic", "hostapi": 0, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 48000.0},
        {"name": "HDA Intel: ALC (hw:0,0)", "hostapi": 0, "max_input_channels": 2, "max_output_channels": 2,
         "default_samplerate": 44100.0},
        {"name": "USB Mic Pro", "hostapi": 1, "max_input_channels": 2, "max_output_channels": 0, "default_samplerate": 96000.0},
        {"name": "pulse", "hostapi": 0, "max_input_channels": 32, "max_output_channels": 32, "default_samplerate": 44100.0},
    ]
    for index, device in enumerate(devices):
        device["index"] = index
    module = types.ModuleType("sounddevice")

    def query_devices(device=None, kind=None):
        if kind is not None:
            return devices[{"input": 3, "output": 1}[kind]]
        return devices if device is None else devices[device]

    module.query_devices = query_devices
    module.query_hostapis = lambda: [{"name": "ALSA"}, {"name": "JACK Audio Connection Kit"}]
    module.default = types.SimpleNamespace(device=[3, 1])
    return module


def test_resolve_device_by_id_name_or_default_and_its_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice())
    assert find_audio_device(None, "input") == (3, "pulse", 44100)
    assert find_audio_device(None, "output") == (1, "HDA Intel: ALC (hw:0,0)", 44100)
    assert find_audio_device(2, "input") == (2, "USB Mic Pro", 96000)
    assert find_audio_device("2", "input")[0] == 2
    assert find_audio_device("usb mic", "input") == (0, "USB Mic", 48000)  # an exact name wins over a longer one
    assert find_audio_device("PRO", "input")[0] == 2
    assert find_audio_device("jack", "input")[0] == 2  # the host API name also counts
    assert find_audio_device("hda", "output")[0] == 1
    with pytest.raises(ClipsepError, match=r"'usb' is ambiguous, it fits 0: USB Mic \(ALSA\); 2: USB Mic Pro"):
        find_audio_device("usb", "input")
    with pytest.raises(ClipsepError, match=r"'speaker': no output device .*output devices: 1: HDA Intel"):
        find_audio_device("speaker", "output")
    with pytest.raises(ClipsepError, match="device 9: no such device"):
        find_audio_device(9, "input")
    with pytest.raises(ClipsepError, match="USB Mic .* has no output channels"):
        find_audio_device(0, "output")


# ---------------------------------------------------------------------------- JACK + PortAudio


def _live_audio_missing() -> str | None:
    missing = [tool for tool in ("jackd", "jack_lsp", "jack_connect") if shutil.which(tool) is None]
    if ctypes.util.find_library("portaudio") is None:
        missing.append("libportaudio2")
    if importlib.util.find_spec("sounddevice") is None:
        missing.append("the sounddevice Python package")
    if missing:
        return f"jackd2/libportaudio2 not installed ({', '.join(missing)} missing): make test installs them"
    return None


def _jack_env(name: str) -> dict[str, str]:
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", PYTHONFAULTHANDLER="1")  # stacks on SIGABRT
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="session")
def jack_servers(tmp_path_factory):
    """start(rate, period=256) -> the name of a running JACK dummy server at `rate` with
    `period`-frame cycles, one per (rate, period), all stopped at the end of the session."""
    reason = _live_audio_missing()
    if reason:
        pytest.skip(reason)
    servers: dict[tuple[int, int], tuple[str, subprocess.Popen]] = {}
    logs = tmp_path_factory.mktemp("jackd")

    def start(rate: int, period: int = 256) -> str:
        if (rate, period) in servers:
            return servers[rate, period][0]
        name = f"clipsep-test-{os.getpid()}-{rate}" + (f"-p{period}" if period != 256 else "")
        # The server's log goes to a file: into an unread pipe, its xrun messages fill the pipe
        # and jackd blocks writing them, stalling every client (PortAudio's stop then never returns).
        log = logs / f"{name}.log"
        with open(log, "w") as handle:
            process = subprocess.Popen(
                ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(rate), "-p", str(period)],
                stdout=handle, stderr=subprocess.STDOUT, env=_jack_env(name),
            )
        servers[rate, period] = (name, process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.skip(f"jackd could not start: {log.read_text()[-500:]}")
            ports = subprocess.run(["jack_lsp"], check=False, capture_output=True, text=True, env=_jack_env(name))
            if ports.returncode == 0 and "system:capture_1" in ports.stdout:
                return name
            time.sleep(0.1)
        pytest.skip(f"jackd did not come up within 10 s (server {name})")

    yield start
    for _, process in servers.values():
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _drive(server: str, *args: str, timeout: float = 60) -> dict:
    """Run a scenario of this file as a script against `server`; its last stdout line is JSON."""
    result = subprocess.run([sys.executable, str(HERE), *args], check=False, capture_output=True, text=True,
                            env=_jack_env(server), timeout=timeout, cwd=HERE.parent.parent)
    assert result.returncode == 0, f"driver failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_devices_on_jack(jack_servers):
    report = _drive(jack_servers(RATE), "devices")
    table = report["table"]
    assert "system" in table and "JACK Audio Connection Kit" in table and "in+out" in table
    assert report["default_input"] == [0, "system", RATE]
    assert report["by_name"] == report["by_host_api"] == report["by_id"] == [0, "system", RATE]
    assert "no output device has that in its name" in report["unknown"] and "system" in report["unknown"]
    assert "no such device" in report["bad_id"]


def test_readme_recipe_for_a_machine_without_a_sound_card():
    """The README's commands for live mode without a sound card, run as written (the server
    renamed so that it cannot meet another one): a JACK dummy server, `clipsep-rt
    --list-devices` against it, the server stopped."""
    reason = _live_audio_missing()
    if reason:
        pytest.skip(reason)
    readme = (HERE.parent.parent / "README.md").read_text()
    recipe = readme[readme.index("*Without a sound card*") :]
    recipe = recipe[recipe.index("```sh") + 5 : recipe.index("```", recipe.index("```sh") + 5)]
    commands = [line.split("#")[0].strip() for line in recipe.strip().splitlines()]
    server_line = next(c for c in commands if c.startswith("jackd "))
    export_line = next(c for c in commands if c.startswith("export "))
    assert server_line.endswith(" &") and "clipsep-rt --list-devices" in commands and "kill %1" in commands
    name = f"clipsep-readme-{os.getpid()}"
    server = server_line[:-2].replace("-n clipsep ", f"-n {name} ").split()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for assignment in export_line.split()[1:]:
        key, value = assignment.split("=")
        env[key] = name if value == "clipsep" else value
    assert env["JACK_DEFAULT_SERVER"] == name
    jackd = subprocess.Popen(server, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 10
        while "system:capture_1" not in subprocess.run(["jack_lsp"], capture_output=True, text=True, env=env).stdout:
            assert jackd.poll() is None and time.monotonic() < deadline, "the README's jackd did not start"
            time.sleep(0.1)
        clipsep = Path(sys.executable).with_name("clipsep-rt")
        listing = subprocess.run([str(clipsep), "--list-devices"], capture_output=True, text=True, env=env, timeout=60)
        assert listing.returncode == 0, listing.stderr
        row = next(line for line in listing.stdout.splitlines() if " system " in line)
        assert row.split()[-5:] == ["Connection", "Kit", "2", "2", "48000"] and row.startswith("in+out"), listing.stdout
    finally:
        jackd.terminate()  # the README's `kill %1`
        jackd.wait(10)


def _least_correlation(summary: dict, rate: int, seconds: float) -> float:
    """The correlation a stretch of `seconds` must reach: 0.99, less what the device's xruns and
    the playback's underflows (counted in `summary`) can have zeroed. A fraction f of one
    signal zeroed gives a normalised correlation of sqrt(1 - f); each device xrun counts as a
    whole 256-frame period lost. On a busy machine the JACK dummy server xruns (--no-realtime)."""
    lost_s = 256 / rate * (summary["device_input_overflows"] + summary["device_output_underflows"])
    lost_s += summary["playback"]["underflow_ms"] / 1000
    return 0.99 * math.sqrt(max(0.0, 1.0 - min(1.0, lost_s / seconds)))


@pytest.mark.parametrize("rate", [16000, 48000])
def test_live_separation_through_jack(jack_servers, tmp_path, rate):
    """2 s through real PortAudio streams: a known signal in, the separated row out to a port
    (recorded by the same client) and to a file. The file equals stream_file_aligned of the input
    the runner recorded; the input is the known signal; the played output is the file, delayed by
    the reported latency within a device period or two, and that delay is the same at the start
    and at the end of the run."""
    server = jack_servers(rate)
    report = _drive(server, "live", str(tmp_path), str(rate), "2.0")
    summary = report["summary"]
    assert summary["drops"] == 0, f"the tiny model fell behind real time on this machine: {summary}"
    out, out_rate = sf.read(tmp_path / "sep.wav", dtype="float32")
    fed, _ = sf.read(tmp_path / "in.wav", dtype="float32")
    assert out_rate == RATE and len(out) == len(fed) == summary["input_samples"]
    assert abs(len(out) - 2.0 * RATE) <= 2  # the duration counts device frames: 2 s, give or take the resampler
    assert np.isfinite(out).all() and np.sqrt(np.mean(out[RATE:] ** 2)) > 1e-2
    # 1) exactly what the streaming separator makes of the recorded input
    np.testing.assert_allclose(out, np.load(tmp_path / "offline.npy"), atol=1e-5, rtol=0)
    # 2) the recorded input is the known signal (from when the ports were joined)
    source = np.load(tmp_path / "source.npy")
    monitor = np.load(tmp_path / "monitor.npy")
    fed_up = soxr.resample(fed, RATE, rate) if rate != RATE else fed
    shift_in, corr_in = lag_of(source, fed_up[rate // 2 :])  # skip the start (before the ports were joined)
    assert corr_in > _least_correlation(summary, rate, 1.5), (corr_in, summary)
    # 3) the played output is the recording, delayed by the reported latency. The report adds up
    #    parts; the resamplers' share varies with soxr's block processing and playback starts up
    #    to a device period above its target: measured within 2 periods + 8 ms (seen: exact at
    #    16 kHz, 7 ms high at 48 kHz). The output stream stops with the input, so the last
    #    (latency) of the recording is never played.
    out_up = soxr.resample(out, RATE, rate) if rate != RATE else out
    start, middle, end = round(0.4 * rate), round(0.9 * rate), round(1.4 * rate)
    shift_out, corr_out = lag_of(monitor, out_up[start:end])
    assert corr_out > _least_correlation(summary, rate, 1.0), (corr_out, summary)
    measured_ms = 1000 * ((shift_out - start) - (shift_in - rate // 2)) / rate
    reported_ms = summary["end_to_end_latency_ms"]["total_ms"]
    period_ms = 1000 * 256 / rate
    assert abs(measured_ms - reported_ms) <= 2 * period_ms + 8, (measured_ms, reported_ms)
    # 4) fixed latency: two stretches of playback, 0.5 s apart, line up with the same delay
    first, _ = lag_of(monitor, out_up[start:middle])
    last, corr_last = lag_of(monitor, out_up[middle:end])
    assert corr_last > _least_correlation(summary, rate, 0.5) and (last - middle) == (first - start), (corr_last, summary)
    # the stats file and the status lines
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["steps"] and stats["drops"] == 0 and stats["input"]["rate"] == stats["output"]["rate"] == rate
    assert any("latency" in line and "RTF" in line and "query: tiny" in line for line in report["lines"])
    assert report["lines"][-1].startswith("live: stopped (duration reached) after 2.0 s")


def test_ctrl_c_on_a_live_stream_writes_a_valid_file(jack_servers, tmp_path):
    server = jack_servers(RATE)
    process = subprocess.Popen([sys.executable, str(HERE), "interrupt", str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_jack_env(server), cwd=HERE.parent.parent)
    try:
        assert process.stdout.readline().strip() == "READY", process.stderr.read()
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the driver dumps every thread's stack to stderr
            time.sleep(1.0)
            process.kill()
            pytest.fail(f"the live stream did not stop within 30 s of Ctrl-C; its threads:\n{process.communicate()[1]}")
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["interrupted"]
    info = sf.info(tmp_path / "sep.wav")
    assert info.samplerate == RATE and info.frames == report["consumed"]
    assert 0.6 * RATE < info.frames < 3 * RATE
    out, _ = sf.read(tmp_path / "sep.wav", dtype="float32")
    assert np.isfinite(out).all() and np.abs(out).max() > 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["sep.wav"]


def test_switching_to_more_and_fewer_queries_on_jack(jack_servers, tmp_path):
    """A one-query live run through real PortAudio streams, switched to two queries and back
    (as typing `cow mooing; car engine` does): the run goes on, the speakers keep playing,
    the recording keeps its one channel, complete, and the status notes say where each
    query goes."""
    report = _drive(jack_servers(RATE), "switch", str(tmp_path))
    assert report["error"] is None and report["stop_reason"] == "duration reached"
    info = sf.info(tmp_path / "sep.wav")
    assert info.channels == 1 and info.frames == report["consumed"] and abs(info.frames - 2.4 * RATE) <= 2
    assert ("queries now: tiny, other (speakers play tiny; not recorded: other (the recording keeps its 1 channel(s)))"
            in report["lines"]), report["lines"]
    assert "queries now: other" in report["lines"]
    played = np.asarray(report["played_rms"])  # per 0.4 s of the monitored speaker output
    assert (played[1:] > 1e-3).all(), played  # sound throughout, before and after each switch
    out, _ = sf.read(tmp_path / "sep.wav", dtype="float32")
    assert np.isfinite(out).all() and np.sqrt(np.mean(out[-RATE // 2 :] ** 2)) > 1e-3


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_stop_signals_always_finish_the_recording_under_input_overflow(jack_servers, tmp_path, signal_name):
    """Many start/stop cycles on real PortAudio streams, the input overflowing (a dummy server
    with 2 ms cycles xruns again and again), each run stopped by a real signal and then hit
    by a second one a few ms later, while it is finishing the files (as `timeout` does: it
    signals the process and then its group; as an impatient user does). Every cycle must
    return normally, with a complete recording and no temporary file left. (Before: the
    second signal escaped as KeyboardInterrupt and lost the file, or interrupted libjack
    while PortAudio closed a stream, which aborted the process.)"""
    server = jack_servers(RATE, period=32)
    report = _drive(server, "stress", str(tmp_path), signal_name, "16", timeout=240)
    cycles = report["cycles"]
    assert len(cycles) == 16
    for cycle in cycles:
        assert cycle["escaped"] is None, cycle  # the signal never escaped the runner
        assert cycle["written"] and cycle["interrupted"] and cycle["frames"] == cycle["consumed"] > 0, cycle
        assert cycle["stop_reason"] == ("interrupted" if signal_name == "SIGINT" else "terminated"), cycle
    assert sum(cycle["input_overflows"] for cycle in cycles) > 0, "no input overflow was provoked"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"rec{k}.wav" for k in range(16)), names  # no temporaries left


def _start_live_recording(env: dict, record: Path, tiny_checkpoint, stats: Path):
    """A real `clipsep-rt --input mic -o record` on the tiny checkpoint, its stderr read into
    `lines` by `reader`: (process, lines, reader)."""
    checkpoint, vector = tiny_checkpoint
    process = subprocess.Popen(
        [sys.executable, "-m", "clipsep_rt.cli", "--input", "mic", "-o", str(record), "-c", str(checkpoint),
         "--query-embedding", str(vector), "--hop-frames", "4", "--lookahead-frames", "2", "--stats", str(stats)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=HERE.parent.parent, preexec_fn=_stop_signals_as_in_a_terminal)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    return process, lines, reader


def _wait_for_status(process: subprocess.Popen, lines: list[str], matches, timeout_s: float = 60) -> None:
    """Until a "clipsep-rt: live" status line for which `matches(line)` holds."""
    deadline = time.monotonic() + timeout_s
    while not any(line.startswith("clipsep-rt: live ") and matches(line) for line in lines):
        assert process.poll() is None and time.monotonic() < deadline, f"no status line: {''.join(lines)}"
        time.sleep(0.05)


def _stop_signals_as_in_a_terminal() -> None:
    """In the child before exec: SIGINT and SIGHUP back to their defaults. A test suite started
    in the background by a non-interactive shell (`make test &`) inherits SIGINT ignored (POSIX),
    one started under `nohup` SIGHUP ignored, and their children too; clipsep-rt rightly keeps
    an ignored signal ignored: Ctrl-C and a hang-up from a terminal are what is tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _wait_or_dump(process: subprocess.Popen, timeout: float, lines: list[str], reader: threading.Thread) -> None:
    """Wait for a `clipsep-rt` started with PYTHONFAULTHANDLER=1; if it does not exit in time,
    SIGABRT makes it print every thread's stack, and the test fails with them."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        process.wait(10)
        reader.join(5)
        raise AssertionError(f"clipsep-rt did not exit within {timeout:.0f} s; its stacks:\n{''.join(lines)[-6000:]}") from None


def test_cli_live_recording_survives_ctrl_c_twice_and_sigterm(jack_servers, tmp_path, tiny_checkpoint):
    """The reported case: `clipsep-rt --input mic -o rec.wav` on a JACK dummy server that
    xruns (2 ms cycles: input overflows), fed by another client, stopped with Ctrl-C
    delivered twice in a row (what `timeout -s INT` does), or with SIGTERM: the command exits
    0 having written a complete recording. (Before: exit 130 and no file, or killed by SIGTERM.)"""
    server = jack_servers(RATE, period=32)
    env = _jack_env(server)
    feeder = subprocess.Popen([sys.executable, str(HERE), "feed"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        feeder_out = feeder.stdout.readline().strip()
        for name, signals in (("int", [signal.SIGINT, signal.SIGINT]), ("term", [signal.SIGTERM])):
            record = tmp_path / f"rec-{name}.wav"
            before = set(subprocess.run(["jack_lsp"], capture_output=True, text=True, env=env).stdout.split())
            process, lines, reader = _start_live_recording(env, record, tiny_checkpoint, tmp_path / f"{name}.json")
            try:
                _wait_for_status(process, lines, lambda line: True)  # a status line: it is live
                ports = set(subprocess.run(["jack_lsp"], capture_output=True, text=True, env=env).stdout.split())
                subprocess.run(["jack_connect", feeder_out, next(p for p in ports - before if ":in_" in p)], env=env,
                               check=True)
                time.sleep(1.5)
                for sig in signals:
                    process.send_signal(sig)
                    time.sleep(0.002)
                _wait_or_dump(process, 30, lines, reader)
            finally:
                process.kill()
                process.wait()
            reader.join(5)
            err = "".join(lines)
            assert process.returncode == 0, err
            info = sf.info(record)
            stats = json.loads((tmp_path / f"{name}.json").read_text())
            assert info.samplerate == RATE and info.frames == stats["input_samples"] > 0.5 * RATE, err
            assert stats["interrupted"] and f"wrote {record}" in err
            assert ("stopped (interrupted)" if name == "int" else "stopped (terminated)") in err
    finally:
        feeder.stdin.close()
        feeder.wait(10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int.json", "rec-int.wav", "rec-term.wav", "term.json"]


def test_cli_live_recording_is_complete_when_the_sound_server_stops_answering(jack_servers, tmp_path, tiny_checkpoint):
    """A JACK server that freezes (SIGSTOP) mid-run: PortAudio's stop would wait for it forever.
    Ctrl-C still completes the recording, and the command exits after the bounded device stop
    with a warning. (Before: the process hung in Pa_StopStream and the recording was lost.)"""
    from clipsep_rt.runtime.live.runner import DEVICE_STOP_TIMEOUT_S

    server = jack_servers(RATE, period=128)  # a server of its own: it is frozen below
    env = _jack_env(server)
    jackd = int(subprocess.run(["pgrep", "-f", f"jackd -n {server} "], capture_output=True, text=True).stdout.split()[0])
    record = tmp_path / "rec.wav"
    process, lines, reader = _start_live_recording(env, record, tiny_checkpoint, tmp_path / "stats.json")
    try:
        _wait_for_status(process, lines, lambda line: " 1." in line)  # 1 s of input
        os.kill(jackd, signal.SIGSTOP)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _wait_or_dump(process, DEVICE_STOP_TIMEOUT_S + 20, lines, reader)
        waited = time.monotonic() - started
    finally:
        os.kill(jackd, signal.SIGCONT)
        process.kill()
        process.wait()
    reader.join(5)
    err = "".join(lines)
    assert process.returncode == 0, err
    assert waited >= DEVICE_STOP_TIMEOUT_S - 0.5, err  # it did wait for the frozen device, boundedly
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert sf.info(record).frames == stats["input_samples"] >= RATE, err
    assert "did not stop within" in err and f"wrote {record}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.wav", "stats.json"]


@pytest.fixture
def tiny_checkpoint(tmp_path_factory):
    """A tiny checkpoint and a query vector for it: the CLI starts in seconds."""
    from clipsep_rt.model import checkpoint_from_model, save_checkpoint

    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), None), folder / "tiny.safetensors")
    np.save(folder / "q.npy", np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32))
    return folder / "tiny.safetensors", folder / "q.npy"


# ---------------------------------------------------------------------------- driver (subprocess)


def _jack_ports() -> set[str]:
    listing = subprocess.run(["jack_lsp"], capture_output=True, text=True, check=True).stdout
    return {line.strip() for line in listing.splitlines() if line.strip()}


def _connect(source: str, destination: str) -> None:
    subprocess.run(["jack_connect", source, destination], check=True, capture_output=True)


def _source_and_monitor(rate: int, seconds: float):
    """A duplex stream (one frame clock for both) that plays a known signal and records what
    comes back: returns (stream, its ports, source signal, monitor chunks)."""
    import sounddevice as sd

    source = known_signal(rate, seconds)
    monitor: list[np.ndarray] = []
    position = [0]

    def callback(indata, outdata, frames, time_info, status):
        chunk = source[position[0] : position[0] + frames]
        outdata.fill(0)
        outdata[: len(chunk), 0] = chunk
        position[0] += frames
        monitor.append(indata[:, 0].copy())

    before = _jack_ports()
    stream = sd.Stream(samplerate=rate, channels=(1, 1), dtype="float32", latency="low", callback=callback)
    ports = _jack_ports() - before
    return stream, ports, source, monitor


def _driver_live(out_dir: str, rate: str, seconds: str) -> dict:
    out_dir, rate, seconds = Path(out_dir), int(rate), float(seconds)
    engine = tiny_engine()
    queries = tiny_queries(engine)
    options = StreamingOptions(8, 4)
    lines: list[str] = []
    duplex, duplex_ports, source, monitor = _source_and_monitor(rate, seconds + 5)
    duplex.start()
    runner = LiveRunner(StreamingSeparator(engine, queries, options=options), input_device="system",
                        output_device="jack", output_file=out_dir / "sep.wav", record_input=out_dir / "in.wav",
                        input_channels=1, status=lines.append, query_names=["tiny"])
    before = _jack_ports()
    runner.start()
    runner_ports = _jack_ports() - before
    runner_in = [p for p in runner_ports if ":in_" in p]
    runner_out = sorted(p for p in runner_ports if ":out_" in p)
    _connect(next(p for p in duplex_ports if ":out_" in p), runner_in[0])
    _connect(runner_out[0], next(p for p in duplex_ports if ":in_" in p))
    runner.run(duration_s=seconds)
    duplex.stop()
    duplex.close()
    runner.write_stats(out_dir / "stats.json")
    fed, _ = sf.read(out_dir / "in.wav", dtype="float32")
    offline = stream_file_aligned(StreamingSeparator(engine, queries, options=options),
                                  (fed[i : i + 4096] for i in range(0, len(fed), 4096)))[0]
    np.save(out_dir / "offline.npy", offline)
    np.save(out_dir / "source.npy", source)
    np.save(out_dir / "monitor.npy", np.concatenate(monitor))
    summary = runner.summary()
    summary.pop("steps")
    return {"summary": summary, "lines": lines, "ports": sorted(runner_ports | duplex_ports)}


def _driver_devices() -> dict:
    from clipsep_rt.runtime.live.devices import list_devices

    def error(spec, kind):
        try:
            find_audio_device(spec, kind)
        except ClipsepError as exc:
            return str(exc)
        return "no error"

    return {
        "table": list_devices(),
        "default_input": find_audio_device(None, "input"),
        "by_name": find_audio_device("SYSTEM", "output"),
        "by_host_api": find_audio_device("jack audio", "input"),
        "by_id": find_audio_device("0", "input"),
        "unknown": error("loudspeaker", "output"),
        "bad_id": error(7, "input"),
    }


def _driver_interrupt(out_dir: str) -> dict:
    out_dir = Path(out_dir)
    engine = tiny_engine()
    duplex, duplex_ports, _, _ = _source_and_monitor(RATE, 30)
    duplex.start()
    runner = LiveRunner(StreamingSeparator(engine, tiny_queries(engine)), output_file=out_dir / "sep.wav", play=False,
                        input_channels=1)
    before = _jack_ports()
    runner.start()
    runner_in = next(p for p in _jack_ports() - before if ":in_" in p)
    _connect(next(p for p in duplex_ports if ":out_" in p), runner_in)
    print("READY", flush=True)
    runner.run()  # until Ctrl-C
    duplex.stop()
    return {"interrupted": runner.interrupted, "consumed": runner.worker.consumed}


def _driver_switch(out_dir: str) -> dict:
    """2.4 s of a known signal through a one-query runner; at 0.8 s two queries, at 1.6 s one other."""
    out_dir = Path(out_dir)
    engine = tiny_engine()
    duplex, duplex_ports, _, monitor = _source_and_monitor(RATE, 8)
    duplex.start()
    lines: list[str] = []
    runner = LiveRunner(StreamingSeparator(engine, tiny_queries(engine), options=StreamingOptions(8, 4)),
                        input_device="system", output_device="system", output_file=out_dir / "sep.wav",
                        input_channels=1, status=lines.append, query_names=["tiny"], status_interval_s=0.2)
    before = _jack_ports()
    runner.start()
    ports = _jack_ports() - before
    _connect(next(p for p in duplex_ports if ":out_" in p), next(p for p in ports if ":in_" in p))
    _connect(sorted(p for p in ports if ":out_" in p)[0], next(p for p in duplex_ports if ":in_" in p))
    joined = sum(len(chunk) for chunk in monitor)
    two = engine.prepare_queries(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32), noise_heads=False)
    other = tiny_queries(engine, seed=3)
    threading.Timer(0.8, runner.switch_queries, (two, ["tiny", "other"])).start()
    threading.Timer(1.6, runner.switch_queries, (other, ["other"])).start()
    error = None
    try:
        runner.run(duration_s=2.4)
    except BaseException as exc:  # noqa: BLE001 - reported
        error = repr(exc)
    duplex.stop()
    played = np.concatenate(monitor)[joined:]
    piece = round(0.4 * RATE)
    return {"error": error, "stop_reason": runner.stop_reason, "consumed": runner.worker.consumed, "lines": lines,
            "played_rms": [float(np.sqrt(np.mean(played[i : i + piece] ** 2))) for i in range(0, len(played) - piece, piece)]}


def _driver_stress(out_dir: str, signal_name: str, cycles: str) -> dict:
    """`cycles` live runs (input from a feeding client in another process, output to the
    speakers, a recording), each stopped by `signal_name` sent to this process, then sent
    again 0 to 30 ms after the runner saw the first, while it finishes."""
    faulthandler.dump_traceback_later(200, exit=True)  # a hang shows where, before the test's timeout
    out_dir, sig = Path(out_dir), getattr(signal, signal_name)
    rng = np.random.default_rng(7)
    engine = tiny_engine()
    in_run = threading.Event()

    def default(signum, frame):  # the process's own handler: Ctrl-C (and clipsep-rt's SIGTERM) raise in a run
        if in_run.is_set():
            raise KeyboardInterrupt

    signal.signal(sig, default)
    feeder = subprocess.Popen([sys.executable, str(HERE), "feed"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    feeder_out = feeder.stdout.readline().strip()
    results = []
    try:
        for cycle in range(int(cycles)):
            record = out_dir / f"rec{cycle}.wav"
            runner = LiveRunner(StreamingSeparator(engine, tiny_queries(engine), options=StreamingOptions(2, 1)),
                                input_device="system", output_device="system", output_file=record, input_channels=1)
            before = _jack_ports()
            runner.start()
            _connect(feeder_out, next(p for p in _jack_ports() - before if ":in_" in p))
            first, second = float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.0, 0.03))

            def send() -> None:
                time.sleep(first)
                os.kill(os.getpid(), sig)
                deadline = time.monotonic() + 5
                while not runner.interrupted and time.monotonic() < deadline:  # the first one was seen
                    time.sleep(0.0005)
                time.sleep(second)
                os.kill(os.getpid(), sig)  # while the runner finishes the files

            sender = threading.Thread(target=send)
            escaped = None
            in_run.set()
            try:
                sender.start()
                runner.run()
            except BaseException as exc:  # noqa: BLE001 - what the test must never see
                escaped = type(exc).__name__
            finally:
                in_run.clear()
            sender.join()
            results.append({
                "escaped": escaped, "written": runner.written and record.exists(), "interrupted": runner.interrupted,
                "stop_reason": runner.stop_reason, "consumed": runner.worker.consumed,
                "frames": sf.info(record).frames if record.exists() else None, "input_overflows": runner.input_overflows,
                "delays": [first, second],
            })
    finally:
        feeder.stdin.close()
        feeder.wait(10)
    faulthandler.cancel_dump_traceback_later()
    return {"cycles": results}


def _driver_feed() -> None:
    """A JACK client in its own process that plays a known signal in a loop; prints its output
    port, runs until stdin closes."""
    import sounddevice as sd

    source = known_signal(RATE, 4.0)
    calls = [0]

    def feed(outdata, frames, time_info, status):
        calls[0] += 1
        start = (calls[0] * frames) % (len(source) - frames)
        outdata[:, 0] = source[start : start + frames]

    before = _jack_ports()
    with sd.OutputStream(samplerate=RATE, channels=1, dtype="float32", latency="low", callback=feed):
        print(next(p for p in _jack_ports() - before if ":out_" in p), flush=True)
        sys.stdin.read()


def _driver(argv: list[str]) -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # lets a test that times out see where it hung
    # Ctrl-C raises KeyboardInterrupt as in a terminal, even when the suite runs as a background
    # job (whose children inherit SIGINT ignored, and Python then keeps it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(2)
    scenario, *args = argv
    if scenario == "feed":
        _driver_feed()
        return
    scenarios = {"live": _driver_live, "devices": _driver_devices, "interrupt": _driver_interrupt, "stress": _driver_stress,
                 "switch": _driver_switch}
    report = scenarios[scenario](*args)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    _driver(sys.argv[1:])
