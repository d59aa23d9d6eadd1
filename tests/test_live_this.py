"""`/this` typed in a live run: the recent-input ring buffer (runtime/live/recent_input.py), the
command's parser (runtime/live/stdin.py), the choice of fit (cli/live_lines.py) and a live run
fed from a file that switches to a query fitted to the last seconds it heard."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from clipsep_rt.cli.live_lines import TypedLines, fit_recent
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.runtime.live.recent_input import RecentInput
from clipsep_rt.runtime.live.stdin import ThisCommand, parse_this_command, read_queries_from_stdin

RATE = 16000


def ramp(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.float32)


# -- the ring buffer -------------------------------------------------------------------------


def test_ring_keeps_the_last_samples_across_wraparound():
    recent = RecentInput(1.0, rate=10)  # 10 samples
    assert recent.capacity == 10 and recent.held == 0 and len(recent.last()) == 0
    written = 0
    for size in (3, 4, 5, 10, 1, 0, 7, 23, 2, 9):  # wraps, exactly fills, overfills in one write
        recent.write(ramp(written, size))
        written += size
        expected = ramp(max(0, written - 10), min(written, 10))
        assert recent.heard == written and recent.held == len(expected) <= 10
        np.testing.assert_array_equal(recent.last(), expected)
        for count in range(len(expected) + 1):
            np.testing.assert_array_equal(recent.last(count), expected[len(expected) - count :])
    with pytest.raises(ValueError):
        recent.last(11)


def test_ring_writes_allocate_nothing_per_block():
    recent = RecentInput(2.0, RATE)
    block = ramp(0, 4096)  # 16 kB: a copy of it would show
    recent.write(block)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):  # 51 s of audio through a 2 s ring
            recent.write(block)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < 4096 and current - before < 1024


def test_snapshots_taken_while_another_thread_writes_are_whole():
    recent = RecentInput(0.05, RATE)  # 800 samples: wraps every few writes
    stop = threading.Event()

    def writer() -> None:
        position = 0
        while not stop.is_set() and position < 2**23:  # float32 holds these integers exactly
            recent.write(ramp(position, 333))
            position += 333

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        checked = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            taken = recent.last()
            if len(taken) > 1:  # consecutive input, newest last: no block torn in the middle
                np.testing.assert_array_equal(np.diff(taken), np.ones(len(taken) - 1, np.float32))
                checked += 1
    finally:
        stop.set()
        thread.join()
    assert checked > 10


def test_example_is_the_last_seconds_and_says_when_too_few_were_heard():
    recent = RecentInput(4.0, rate=100)
    recent.write(ramp(0, 250))
    taken = recent.example(1.5)
    np.testing.assert_array_equal(taken.audio, ramp(0, 250))
    np.testing.assert_array_equal(taken.example, ramp(100, 150))
    assert (taken.start_s, taken.end_s, taken.heard_s) == (1.0, 2.5, 2.5)
    recent.write(ramp(250, 300))  # 5.5 s heard, 4 s held
    taken = recent.example(3.0)
    np.testing.assert_array_equal(taken.example, ramp(250, 300))
    assert taken.start_s == 1.0 and taken.heard_s == 5.5
    with pytest.raises(ClipsepError, match=r"only the last 4 s of input are kept"):
        recent.example(5)
    with pytest.raises(ClipsepError, match=r"only 0\.5 s of input heard so far, 2 s asked for"):
        fresh = RecentInput(4.0, rate=100)
        fresh.write(ramp(0, 50))
        fresh.example(2)
    with pytest.raises(OptionError):
        RecentInput(0.0, RATE)


# -- the command -----------------------------------------------------------------------------


@pytest.mark.parametrize("line, command", [
    ("/this", ThisCommand(3.0)),
    ("  /this 5 ", ThisCommand(5.0)),
    ("/THIS 0.5", ThisCommand(0.5)),
    ("/this 8; -speech ; - dog barking", ThisCommand(8.0, ("speech", "dog barking"))),
    ("/this;", ThisCommand(3.0)),
    ("violin", None),
    ("-speech; violin", None),
])
def test_this_command_parses(line, command):
    assert parse_this_command(line) == command


@pytest.mark.parametrize("line, message", [
    ("/this 0.4", r"0\.4 s is outside 0\.5 to 8 s"),
    ("/this 31", "31 s is outside"),
    ("/this nan", "nan s is outside"),
    ("/this three", "'three' is not a number of seconds"),
    ("/this 3 4", "unknown command"),
    ("/that", "unknown command; /this \\[SECONDS\\]"),
    ("/this; violin", "only exclusions may follow it"),
    ("/this; -", "type it after the '-'"),
])
def test_this_command_errors_are_one_line(line, message):
    with pytest.raises(ClipsepError, match=message) as error:
        parse_this_command(line)
    assert "\n" not in str(error.value)


class FakeFits:
    """Records which fit `fit_recent` asks for."""

    def __init__(self):
        self.calls = []

    def query_from_span(self, audio, rate, start_s, end_s, name=None):
        self.calls.append(("span", audio, rate, start_s, end_s, name))
        return name, np.ones(4, np.float32)

    def query_from_audio(self, audio, rate, name="example"):
        self.calls.append(("audio", audio, rate, name))
        return name, np.zeros(4, np.float32)


def test_fit_recent_fits_against_what_came_before_else_the_bundled_sounds():
    recent, fits = RecentInput(60.0, RATE), FakeFits()
    recent.write(ramp(0, int(2.25 * RATE)))
    name, _ = fit_recent(fits, recent, 2.0)  # 0.25 s before the example: too little to contrast it with
    kind, audio, rate, called = fits.calls[-1]
    assert (kind, rate, name, called) == ("audio", RATE, "this@2.2s", "this@2.2s")
    np.testing.assert_array_equal(audio, ramp(RATE // 4, 2 * RATE))
    recent.write(ramp(int(2.25 * RATE), RATE))
    name, _ = fit_recent(fits, recent, 2.0)
    kind, audio, rate, start_s, end_s, called = fits.calls[-1]
    assert (kind, rate, start_s, end_s, called) == ("span", RATE, 1.25, 3.25, name) and name == "this@3.2s"
    np.testing.assert_array_equal(audio, ramp(0, int(3.25 * RATE)))


# -- a live run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def separator(tmp_path_factory):
    """A tiny random-weight model (its query head has more dimensions than channels, as fitting needs)."""
    from clipsep_rt.api import Separator
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("this") / "tiny.safetensors"
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=64)), None), path)
    return Separator.open(checkpoint=path, backend="torch", device="cpu", precision="fp32")


def _lines_when_heard(runner, lines: list[tuple[float, str]], give_up: threading.Event):
    """A stand-in for stdin: each line once the run has heard its seconds of input."""
    for seconds, line in lines:
        while runner.worker.recent_input.heard < seconds * RATE:
            if give_up.wait(0.01):
                return
        yield line + "\n"


def test_this_switches_a_live_run_to_a_query_fitted_on_the_input_heard(separator, tmp_path, monkeypatch):
    from clipsep_rt.runtime.live.runner import LiveRunner

    rng = np.random.default_rng(0)
    t = np.arange(12 * RATE) / RATE
    source = (0.3 * np.sin(2 * np.pi * 660 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    sf.write(tmp_path / "source.wav", source, RATE, subtype="FLOAT")
    start = rng.standard_normal((1, separator.query_dim)).astype(np.float32)
    stream = separator.stream(separator.prepare_queries(["start"], start), hop_frames=8, lookahead_frames=4)
    said: list[str] = []
    runner = LiveRunner(stream, output_file=tmp_path / "out.wav", play=False, source_file=tmp_path / "source.wav",
                        status=said.append, query_names=["start"], status_interval_s=0.2)
    fits = []
    fit_span = separator.query_from_span

    def recorded(audio, rate, start_s, end_s, name=None):
        fits.append((audio.copy(), rate, start_s, end_s, *fit_span(audio, rate, start_s, end_s, name=name)))
        return fits[-1][-2:]

    monkeypatch.setattr(separator, "query_from_span", recorded)
    errors: list[str] = []
    done = threading.Event()
    typed = _lines_when_heard(runner, [(1.0, "/this 2"), (2.6, "/this 2")], done)
    read_queries_from_stdin(TypedLines(separator, runner, said.append), typed, on_error=errors.append)

    def stop_once_switched() -> None:  # and half a second later: the next hop has crossfaded to it
        while not done.wait(0.02):
            if runner.query_names[0].startswith("this@"):
                done.wait(0.5)
                done.set()

    watcher = threading.Thread(target=stop_once_switched, daemon=True)
    watcher.start()
    try:
        runner.run(stop_event=done)
    finally:
        done.set()
        watcher.join()
    assert len(errors) == 1 and "of input heard so far, 2 s asked for" in errors[0], errors
    assert runner.stop_reason == "stopped", runner.stop_reason  # switched before the file ran out
    (audio, rate, start_s, end_s, name, vector), = fits
    assert rate == RATE and end_s == len(audio) / RATE and end_s - start_s == pytest.approx(2.0)
    np.testing.assert_array_equal(audio, source[: len(audio)])  # the ring's snapshot is the input, whole
    assert name == f"this@{len(audio) / RATE:.1f}s" and runner.query_names == [name]
    assert runner.worker.recent_input.heard == runner.worker.consumed
    assert any(line.startswith(f"switching to {name} (fitted to the last 2 s heard in ") for line in said), said
    engine = separator.pipeline.engine
    window = rng.normal(-3.0, 2.0, (1, 1, 256, 256)).astype(np.float32)
    fitted = engine.probabilities(window, engine.prepare_queries(vector[None], False))
    np.testing.assert_allclose(engine.probabilities(window, stream.queries), fitted, atol=1e-6)
    assert np.abs(fitted - engine.probabilities(window, engine.prepare_queries(start, False))).max() > 1e-3
