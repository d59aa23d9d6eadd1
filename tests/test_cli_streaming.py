"""`clipsep-rt --input FILE --stream`: the streaming path from the command line."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from conftest import REFERENCE_CHECKPOINT, snr_db, write_wav

from clipsep_rt.measure.stream_timing import BenchRow, fill_timing, stream_timed
from clipsep_rt.cli import main
from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.model import load_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.jobs.file_stream import stream_file
from clipsep_rt.runtime.live.worker import LiveWorker
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.streaming import (
    StreamingOptions,
    StreamingSeparator,
    stream_file_aligned,
)


def test_file_streamed_to_a_file_is_aligned_and_complete(tmp_path, golden):
    mixture = np.resize(golden["mixture_wav"], 50_001).astype(np.float32)
    write_wav(tmp_path / "mix.wav", mixture)
    embeddings = np.stack([golden["query_embedding"][0], -golden["query_embedding"][0]])
    np.save(tmp_path / "two.npy", embeddings)
    args = ["--input", str(tmp_path / "mix.wav"), "--stream", "--query-embedding", str(tmp_path / "two.npy"),
            "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", "--hop-frames", "4", "--lookahead-frames", "2",
            "-o", str(tmp_path / "out.wav"), "--stats", str(tmp_path / "stats.json"), "--quiet"]
    assert main(args) == 0
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == 16000 and out.shape == (len(mixture), 2)  # one channel per query, same length
    engine = TorchEngine(load_checkpoint(REFERENCE_CHECKPOINT).build(), "cpu", "fp32")
    separator = StreamingSeparator(engine, engine.prepare_queries(embeddings, False), options=StreamingOptions(4, 2))
    np.testing.assert_allclose(out.T, stream_file_aligned(separator, [mixture]), atol=1e-6)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["latency_ms"] == separator.latency_ms and stats["hop_frames"] == 4
    assert len(stats["steps"]) == len(separator.stats.steps) and stats["compute_p99_ms"] > 0
    assert main(args) == 2  # the output exists: kept unless --overwrite


def test_streaming_usage_errors(tmp_path, golden, capsys):
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])
    np.save(tmp_path / "q.npy", golden["query_embedding"])
    base = ["--stream", "--query-embedding", str(tmp_path / "q.npy"), "-c", str(REFERENCE_CHECKPOINT), "--quiet"]
    cases = [
        ([str(tmp_path / "mix.wav"), str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o.wav")], "one input file"),
        ([str(tmp_path / "mix.wav")], "give -o FILE.wav"),
        ([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o.flac")], "one .wav file"),
        ([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "mix.wav")], "would overwrite its input"),
        ([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o.wav"), "--hop-frames", "0"], "hop-frames"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


class _FakeClock:
    """time.perf_counter / time.sleep on a clock that only moves when told: timings exact."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class _SlowEngine:
    """A tiny engine whose every network call takes exactly `delay_s` on the fake clock."""

    def __init__(self, clock: _FakeClock, delay_s: float):
        torch.manual_seed(0)
        self.engine = TorchEngine(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), "cpu", "fp32")
        self.clock, self.delay_s = clock, delay_s
        self.device, self.precision = self.engine.device, self.engine.precision

    def prepare_queries(self, embeddings, noise_heads):
        return self.engine.prepare_queries(embeddings, noise_heads)

    def probabilities(self, log_mag, queries):
        self.clock.now += self.delay_s
        return self.engine.probabilities(log_mag, queries)


def test_an_overrun_is_a_step_slower_than_its_hop_for_every_driver(tmp_path, golden, monkeypatch):
    """One definition (StreamStats.overruns): --realtime file streaming, the live worker and
    bench count the network steps whose compute exceeded the hop, nothing else. Steps of
    60 ms against a 192 ms hop put the paced file stream several 16 ms blocks behind the
    clock after each step (what used to be counted) but are no overruns; 250 ms steps are."""
    clock = _FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    mixture = np.resize(golden["mixture_wav"], 16000 * 3).astype(np.float32)
    write_wav(tmp_path / "mix.wav", mixture)
    options = StreamingOptions(12, 4)  # 192 ms hop
    for delay_s, slow in ((0.06, False), (0.25, True)):
        engine = _SlowEngine(clock, delay_s)
        queries = engine.prepare_queries(np.ones((1, 8), np.float32), noise_heads=False)
        paced = StreamingSeparator(engine, queries, options=options)
        started = clock.now
        stream_file(paced, tmp_path / "mix.wav", tmp_path / f"paced{delay_s}.wav", realtime=True)
        assert clock.now - started >= 3.0  # it was paced like a live stream
        worker_separator = StreamingSeparator(engine, queries, options=options)
        worker = LiveWorker(worker_separator, 256, max_backlog=10**9)
        for start in range(0, len(mixture), 256):
            worker.put(mixture[start : start + 256])
            worker.pump()
        bench = stream_timed(engine, queries, SpectralConfig(), options, mixture)
        for stats in (paced.stats, worker_separator.stats, bench.stats):
            assert stats.hop_s == pytest.approx(0.192) and len(stats.steps) >= 10
            assert all(step.compute_s == pytest.approx(delay_s) for step in stats.steps)
            assert stats.overruns == (len(stats.steps) if slow else 0)
        assert worker.drops == 0  # nothing was dropped: the worker had no backlog limit
        summary = paced.summary()
        assert summary.overruns == paced.stats.overruns
        assert fill_timing(BenchRow("torch", "cpu", "fp32", "balanced"), bench, 16000).overruns == bench.stats.overruns


def test_realtime_stream_reports_the_steps_slower_than_the_hop(tmp_path, golden, capsys):
    """The reported case: `--stream --realtime --stats` on the reference model. The output
    equals the unpaced run; the overruns reported (stats file and summary line) are the
    steps whose compute exceeded the 192 ms hop, whatever the load of this machine."""
    mixture = np.resize(golden["mixture_wav"], 16000 * 3).astype(np.float32)
    write_wav(tmp_path / "mix.wav", mixture)
    np.save(tmp_path / "q.npy", golden["query_embedding"])
    base = ["--input", str(tmp_path / "mix.wav"), "--stream", "--query-embedding", str(tmp_path / "q.npy"),
            "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32"]
    assert main([*base, "--realtime", "-o", str(tmp_path / "rt.wav"), "--stats", str(tmp_path / "rt.json")]) == 0
    assert main([*base, "-o", str(tmp_path / "fast.wav"), "--quiet"]) == 0
    paced, _ = sf.read(tmp_path / "rt.wav", dtype="float32")
    fast, _ = sf.read(tmp_path / "fast.wav", dtype="float32")
    np.testing.assert_array_equal(paced, fast)
    stats = json.loads((tmp_path / "rt.json").read_text())
    slower = sum(step["compute_ms"] > stats["hop_ms"] for step in stats["steps"])
    assert stats["overruns"] == slower and stats["hop_ms"] == 192
    assert f"{slower} overruns (steps slower than the 192 ms hop)" in capsys.readouterr().err


@pytest.mark.parametrize(("input_rate", "flag", "expected_rate"), [
    (44100, None, 44100),  # default: the input's rate
    (44100, "44100", 44100),
    (44100, "48000", 48000),
    (16000, "22050", 22050),
    (44100, "16000", 16000),
])
def test_file_stream_writes_at_the_batch_output_rate(tmp_path, golden, input_rate, flag, expected_rate):
    """--stream follows the batch rules for the output rate; the output stays aligned with the
    input (the model-rate stream, resampled) and as long as the input."""
    mixture = np.resize(golden["mixture_wav"], 40_001).astype(np.float32)
    native = soxr.resample(mixture, 16000, input_rate, quality="HQ") if input_rate != 16000 else mixture
    write_wav(tmp_path / "mix.wav", native, rate=input_rate)
    np.save(tmp_path / "q.npy", golden["query_embedding"])
    args = [str(tmp_path / "mix.wav"), "--stream", "--query-embedding", str(tmp_path / "q.npy"),
            "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", "-o", str(tmp_path / "s.wav"), "--quiet"]
    assert main([*args, *(["--sample-rate", flag] if flag else [])]) == 0
    out, rate = sf.read(tmp_path / "s.wav", dtype="float32")
    assert rate == expected_rate
    assert len(out) == round(len(native) * expected_rate / input_rate)  # the input's duration
    assert main([*args, "--sample-rate", "16000", "--overwrite"]) == 0
    model_rate, _ = sf.read(tmp_path / "s.wav", dtype="float32")
    assert len(model_rate) == round(len(native) * 16000 / input_rate)
    if expected_rate != 16000:  # the same separation, resampled in place: aligned, no delay
        expected = soxr.resample(model_rate, 16000, expected_rate, quality="HQ")[: len(out)]
        inner = slice(expected_rate // 10, -expected_rate // 10)
        assert snr_db(expected[inner], out[inner]) > 30
    else:
        np.testing.assert_array_equal(out, model_rate)


def test_live_mode_refuses_an_output_rate(tmp_path, golden, capsys):
    np.save(tmp_path / "q.npy", golden["query_embedding"])
    args = ["--input", "mic", "--query-embedding", str(tmp_path / "q.npy"), "-c", str(REFERENCE_CHECKPOINT),
            "--sample-rate", "48000", "-o", str(tmp_path / "rec.wav"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("--sample-rate: live recordings are written at the model's 16000 Hz; "
                                             "--sample-rate applies to files streamed to a file (--stream -o FILE.wav)")
    assert not (tmp_path / "rec.wav").exists()
