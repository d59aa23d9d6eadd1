"""Backend auto for streaming: CPU backends ranked by measured hop time (runtime.engines.hop_probe)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_wav

from clipsep_rt.cli import main
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.runtime.engines import hop_probe
from clipsep_rt.runtime.engines.choice import BackendChoice, cpu_candidates
from clipsep_rt.runtime.engines.hop_probe import OptionTiming, choose_for_stream, probe, rank
from clipsep_rt.runtime.engines.loader import open_bundled_source
from clipsep_rt.runtime.pipeline import PipelineSpec

CANDIDATES = [BackendChoice("openvino", "cpu", "bf16", artifact="onnx"), BackendChoice("torch", "cpu", "bf16"),
              BackendChoice("onnxruntime", "cpu", "fp32", artifact="onnx", provider="CPUExecutionProvider")]
STATIC = BackendChoice("openvino", "cpu", "bf16", ["cuda: no NVIDIA driver on this machine"], "onnx")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The hop probes' cache folder of this test alone."""
    monkeypatch.setenv("CLIPSEP_RT_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "hop_probe"


@pytest.fixture(scope="module")
def bundled():
    return open_bundled_source()


def _timing(label: str, p99: float) -> OptionTiming:
    return OptionTiming(label, p50_ms=p99 / 2, p99_ms=p99, calls=30, startup_ms=100.0)


def test_rank_puts_the_options_within_the_hop_first_fastest_first():
    ranking = rank([_timing("openvino bf16", 14.0), _timing("torch bf16", 6.0), _timing("onnxruntime fp32", 283.0),
                    OptionTiming("torch fp32", error="broken")], "balanced", 192.0)
    assert [timing.label for timing in ranking.order] == ["torch bf16", "openvino bf16", "onnxruntime fp32"]
    assert ranking.real_time and ranking.warning() is None
    assert ranking.summary() == ("measured p99 per network call for streaming at balanced (a hop every 192 ms): "
                                 "torch bf16 6 ms, openvino bf16 14 ms, onnxruntime fp32 283 ms")


def test_rank_with_none_within_the_hop_takes_the_fastest_and_warns():
    ranking = rank([_timing("onnxruntime fp32", 283.0), _timing("torch fp32", 110.0)], "low", 32.0)
    assert [timing.label for timing in ranking.order] == ["torch fp32", "onnxruntime fp32"]
    assert not ranking.real_time
    warning = ranking.warning()
    assert warning.startswith("warning: no backend here computes a hop within its 32 ms at low (fastest: torch fp32, p99 110 ms)")
    assert "not real time on this machine" in warning and "(balanced, quality)" in warning  # 192 and 256 ms hops keep up
    too_slow = rank([_timing("onnxruntime fp32", 400.0)], "quality", 256.0).warning()
    assert "no preset keeps up" in too_slow
    with pytest.raises(ClipsepError, match="no backend could be timed here: torch bf16: broken"):
        rank([OptionTiming("torch bf16", error="broken")], "low", 32.0)


def _fake_probe(monkeypatch, figures: dict[str, float]) -> list[int]:
    """hop_probe.probe replaced by fixed figures; returns the list its calls are counted in."""
    calls = []

    def fake(source, candidates, threads=None, calls_=None, seconds=None):
        calls.append(threads)
        return [_timing(choice.label, figures[choice.label]) for choice in candidates], None

    monkeypatch.setattr(hop_probe, "probe", fake)
    monkeypatch.setattr(hop_probe, "cpu_candidates", lambda files, precision="auto": (list(CANDIDATES), ["torch fp32: x"]))
    return calls


def test_choice_measured_then_cached_and_its_key(bundled, cache, monkeypatch):
    probes = _fake_probe(monkeypatch, {"openvino bf16": 40.0, "torch bf16": 13.9, "onnxruntime fp32": 110.0})
    choice, engine = choose_for_stream(STATIC, bundled, "balanced", threads=2)
    assert (choice.name, choice.precision, engine) == ("torch", "bf16", None) and probes == [2]
    assert choice.reasons[:2] == ["cuda: no NVIDIA driver on this machine", "torch fp32: x"]
    assert choice.reasons[2].startswith("measured p99 per network call for streaming at balanced (a hop every 192 ms): "
                                        "torch bf16 13.9 ms, openvino bf16 40 ms, onnxruntime fp32 110 ms; "
                                        "torch bf16 is the fastest (measured now in ")
    assert choice.explanation()[2] == choice.reasons[2] and choice.explanation()[1] == "skipped torch fp32: x"
    [path] = cache.iterdir()
    record = json.loads(path.read_text())
    assert record["key"]["threads"] == 2 and record["key"]["options"] == ["openvino bf16", "torch bf16", "onnxruntime fp32"]
    assert record["key"]["model"]["onnx"] and record["key"]["cpu"]["cores"] and "torch" in record["key"]["versions"]

    # A hit: no probe, the same pick, said to come from the cache; another preset is another budget only.
    again, _ = choose_for_stream(STATIC, bundled, "low", threads=2)
    assert probes == [2] and (again.name, again.precision) == ("torch", "bf16")
    assert f"(cached {record['measured_at']} in {cache})" in again.reasons[2] and "a hop every 32 ms" in again.reasons[2]
    assert not any(reason.startswith("warning:") for reason in again.reasons)

    # Another key (threads) is another file; cache=False measures and writes nothing.
    choose_for_stream(STATIC, bundled, "balanced", threads=1)
    assert probes == [2, 1] and len(list(cache.iterdir())) == 2
    choose_for_stream(STATIC, bundled, "balanced", threads=2, cache=False)
    assert probes == [2, 1, 2] and len(list(cache.iterdir())) == 2

    # A corrupt file, or one holding another key, is measured again and rewritten.
    path.write_text("{not json")
    choose_for_stream(STATIC, bundled, "balanced", threads=2)
    assert probes == [2, 1, 2, 2] and json.loads(path.read_text())["key"] == record["key"]
    path.write_text(json.dumps({**record, "key": {**record["key"], "threads": 7}}))
    choose_for_stream(STATIC, bundled, "balanced", threads=2)
    assert probes == [2, 1, 2, 2, 2] and json.loads(path.read_text())["key"] == record["key"]


def test_choice_that_is_not_real_time_warns(bundled, cache, monkeypatch):
    _fake_probe(monkeypatch, {"openvino bf16": 40.0, "torch bf16": 45.0, "onnxruntime fp32": 110.0})
    choice, _ = choose_for_stream(STATIC, bundled, "low")
    assert (choice.name, choice.precision) == ("openvino", "bf16")
    assert choice.reasons[-1].startswith("warning: no backend here computes a hop within its 32 ms at low")
    assert choice.explanation()[-1] == choice.reasons[-1]  # not a "skipped" line


def test_a_cached_miss_measured_on_busy_cores_is_measured_again(bundled, cache, monkeypatch):
    probes = _fake_probe(monkeypatch, {"openvino bf16": 40.0, "torch bf16": 45.0, "onnxruntime fp32": 110.0})
    monkeypatch.setattr(hop_probe, "usable_cores", lambda: 2)
    monkeypatch.setattr(hop_probe.os, "getloadavg", lambda: (3.0, 3.0, 3.0))  # busy while measured
    choose_for_stream(STATIC, bundled, "low")
    choose_for_stream(STATIC, bundled, "balanced")  # a hit: the pick is real time at balanced
    assert len(probes) == 1
    monkeypatch.setattr(hop_probe.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    choose_for_stream(STATIC, bundled, "low")  # the cached miss was measured busy: measured again, now quiet
    assert len(probes) == 2
    choose_for_stream(STATIC, bundled, "low")  # a miss measured on quiet cores is kept (with its warning)
    assert len(probes) == 2


def test_pipeline_spec_checks_the_preset():
    with pytest.raises(OptionError, match="stream_latency"):
        PipelineSpec(stream_latency="fast")


def test_real_probe_of_the_graph_backends(bundled):
    candidates, _ = cpu_candidates(bundled.files)
    graph_runners = [choice for choice in candidates if choice.name != "torch"]
    assert any(choice.name == "onnxruntime" for choice in graph_runners)
    timings, kept = probe(bundled, graph_runners, threads=1, calls=8, seconds=0.4)
    assert [timing.label for timing in timings] == [choice.label for choice in graph_runners]
    for timing in timings:
        assert timing.error is None and 0 < timing.p50_ms <= timing.p99_ms and timing.calls >= hop_probe.MIN_CALLS
        assert timing.startup_ms > 0
    ranking = rank(timings, "low", 32.0)
    label, engine = kept
    assert label == ranking.order[0].label
    window = np.zeros((1, 1, 256, 256), np.float32)
    assert engine.probabilities(window, engine.prepare_queries(np.ones((1, 384), np.float32), False)).shape == (1, 1, 256, 256)


def test_stream_from_the_command_line_reports_the_measured_ranking(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setattr(hop_probe, "PROBE_CALLS", 6)
    monkeypatch.setattr(hop_probe, "PROBE_SECONDS", 0.3)
    # measured on quiet cores, so the second run trusts the cache even where no backend keeps up
    # with `low` (a miss measured busy is measured again: the test above)
    monkeypatch.setattr(hop_probe.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    write_wav(tmp_path / "mix.wav", np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    np.save(tmp_path / "q.npy", np.ones((1, 384), np.float32) / np.sqrt(384))
    args = ["--input", str(tmp_path / "mix.wav"), "--stream", "--query-embedding", str(tmp_path / "q.npy"),
            "--latency", "low", "--threads", "1", "-o", str(tmp_path / "out.wav")]
    assert main(args) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "measured p99 per network call for streaming at low" in line]
    assert len(lines) == 1 and "measured now in" in lines[0], err
    fastest = lines[0].split(": ", 2)[2].split(" ms")[0].rsplit(" ", 1)[0]  # "openvino bf16 6.1 ms, ..." -> its label
    name, precision = fastest.split()
    [runs_on] = [line for line in err.splitlines() if "; queries: " in line]  # what the stream runs on
    assert f"{fastest} is the fastest" in lines[0] and f", {name}" in runs_on and f"on cpu in {precision};" in runs_on
    assert main([*args, "--overwrite"]) == 0
    assert "is the fastest (cached " in capsys.readouterr().err
