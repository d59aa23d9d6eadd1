"""`clipsep-rt bench` (clipsep_rt.measure): streaming latency rows on a tiny model; the
whole-process benchmark (benchmarks/whole_process.py) on tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import soundfile as sf
import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint
from clipsep_rt.measure.results import format_table, rows_to_json
from clipsep_rt.measure.stream_timing import run_bench, synthetic_sources
from clipsep_rt.model.device import cpu_has_native_bf16
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.streaming import PRESETS, StreamingOptions, StreamingSeparator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bench") / "tiny.safetensors"
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), None), path)
    return path


def test_torch_rows_are_sane_and_round_trip_through_json(tiny_checkpoint):
    lines = []
    rows = run_bench(tiny_checkpoint, None, ["torch"], list(PRESETS), 2.0, "cpu", 1, log=lines.append)
    precisions = {row.precision for row in rows}
    assert "fp32" in precisions and len(rows) == len(PRESETS) * len(precisions)
    assert len(lines) == len(rows)
    engine = TorchEngine(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), "cpu", "fp32")
    queries = engine.prepare_queries(torch.zeros(1, 8).numpy(), noise_heads=False)
    for row in rows:
        assert row.status == "ok", row.status
        assert (row.backend, row.device) == ("torch", "cpu")
        assert str(tiny_checkpoint) in row.model
        assert (row.hop_frames, row.lookahead_frames) == PRESETS[row.preset]
        separator = StreamingSeparator(engine, queries, options=StreamingOptions.preset(row.preset))
        assert row.latency_ms == pytest.approx(separator.latency_ms)
        assert row.hop_ms == pytest.approx(1000 * row.hop_frames * 256 / 16000)
        # 2 s of audio: every hop whose look-ahead has arrived ran once (the warm-up is not counted).
        assert len(row.steps) >= int(2.0 * 16000 / (row.hop_frames * 256)) - 4
        assert 0 < row.compute_p50_ms <= row.compute_p99_ms
        assert row.rtf_p99 == pytest.approx(row.compute_p99_ms / row.hop_ms)
        assert row.rtf_mean == pytest.approx(row.compute_mean_ms / row.hop_ms)
        assert row.realtime == (row.rtf_p99 < 1)
    data = json.loads(json.dumps(rows_to_json(rows)))
    assert data["machine"]["torch"] == torch.__version__
    assert data["rows"] == [asdict(row) for row in rows]  # the rows survive JSON unchanged
    table = format_table(rows)
    assert table.count("| torch |") == len(rows) and "low (2+1)" in table


def test_random_weights_are_stated_and_unusable_backends_get_a_reason():
    # A stand-in full-size model would take minutes here: the torch rows are covered above.
    rows = run_bench(None, None, ["tensorrt"], ["low"], 0.5, "cpu", 1, random_weights=True)
    assert len(rows) == 1
    assert rows[0].status.startswith("cannot run:") and "random weights" in rows[0].model
    assert "Model: full-size CLIPSep-NIT (depth 7, ngf 64) with random weights" in format_table(rows)
    assert "cannot run" in format_table(rows)


def test_without_a_model_bench_times_the_bundled_default_model_and_says_so(tiny_checkpoint, capsys):
    from clipsep_rt.cli import main

    rows = run_bench(None, None, ["torch"], ["low"], 0.5, "cpu", 1)
    assert rows and all(row.status == "ok" for row in rows)
    assert "Model: the bundled default model (ngf 16, clipsep-minilm-w16-v3.safetensors)" in format_table(rows)
    assert main(["bench", "--random-weights", "-c", str(tiny_checkpoint), "--seconds", "0.5"]) == 2
    assert "--random-weights: times the full-size random-weight model" in capsys.readouterr().err


def test_bad_arguments_are_refused(tiny_checkpoint):
    with pytest.raises(ClipsepError, match="preset"):
        run_bench(tiny_checkpoint, None, ["torch"], ["fastest"], 1.0, "cpu", 1)
    with pytest.raises(ClipsepError, match="backend"):
        run_bench(tiny_checkpoint, None, ["tflite"], ["low"], 1.0, "cpu", 1)


def test_synthetic_sources_are_seeded_and_distinct():
    melody, bursts = synthetic_sources(2.0, 16000)
    again, _ = synthetic_sources(2.0, 16000)
    assert melody.shape == bursts.shape == (32000,)
    assert (melody == again).all() and 0.1 < abs(melody).max() <= 0.2 + 1e-6
    assert abs(float((melody * bursts).mean())) < 1e-3


def test_whole_process_benchmark_times_both_pipelines_on_the_same_input(tmp_path):
    work, result = tmp_path / "work", tmp_path / "whole_process.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/whole_process.py", "--quick", "--work", str(work), "--json", str(result)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(result.read_text())
    samples = sf.info(work / "mixture_3s.wav").frames
    assert samples == 3 * 16000 and data["settings"]["model"]["ngf"] == 8
    rows = data["rows"]
    assert [row["name"] for row in rows] == [
        "original pipeline", "clipsep-rt export (what a cold run compiles: the FP32 graph, checked)",
        "clipsep-rt: checkpoint, cold: compiled on first use (cache emptied before each run)",
        "clipsep-rt: checkpoint, warm: its cached graph (defaults)",
        "clipsep-rt: torch (precision auto, batch 4, overlap 64)", "clipsep-rt: torch fp32",
        "clipsep-rt: torch, the original's settings", "clipsep-rt: onnxruntime fp32", "clipsep-rt: onnxruntime int8",
        "clipsep-rt: onnxruntime int8, no crossfade", "clipsep-rt: openvino (bf16 where native)",
        "clipsep-rt: openvino, no crossfade",
    ]
    for row in rows:
        assert row["status"] == "ok", row
        assert len(row["runs_s"]) == 1 and row["best_s"] == row["runs_s"][0]
        if row is rows[1]:  # the export: timed, not a separation
            assert row["speedup"] is None and row["output_samples"] is None
            continue
        assert row["output_samples"] == samples
        assert row["x_realtime"] == pytest.approx(3.0 / row["best_s"])
        assert row["speedup"] == pytest.approx(rows[0]["best_s"] / row["best_s"])
    # Both pipelines wrote a wav of the input's length, and they ran the same network: with the
    # original's settings (fp32, no crossfade; one window here) clipsep-rt reproduces its output.
    original, rate = sf.read(work / "out" / "original" / "separated.wav")
    (same,) = (work / "out" / "clipsep-rt-4").glob("*.wav")
    assert rate == 16000 and original.shape == sf.read(same)[0].shape == (samples,)
    assert 0 < abs(original).max() and rows[6]["snr_vs_original_db"] > 40
    native = "bf16" if cpu_has_native_bf16() else "fp32"
    # the compiled graph, no torch: auto's CPU order (runtime.engines.choice) puts OpenVINO bf16 first
    # where the CPU has native bf16, and ONNX Runtime before OpenVINO fp32 where it has not
    auto = "openvino on cpu in bf16" if native == "bf16" else "onnxruntime (CPUExecutionProvider) on cpu in fp32"
    assert rows[2]["ran_as"] == rows[3]["ran_as"] == auto
    assert rows[4]["ran_as"] == f"torch on cpu in {native}"
    assert rows[7]["ran_as"] == "onnxruntime (CPUExecutionProvider) on cpu in fp32"
    assert rows[8]["ran_as"] == rows[9]["ran_as"] == "onnxruntime (CPUExecutionProvider) on cpu in int8"
    assert rows[10]["ran_as"] == rows[11]["ran_as"] == f"openvino on cpu in {native}"
    startup = {row["name"]: row for row in data["startup"]}
    assert all(row["status"] == "ok" and row["best_s"] > 0 for row in startup.values())
    assert startup["clipsep-rt -q violin one_s.wav -o out/"]["output_samples"] == 16000
    assert startup["clipsep-rt -q violin one_s.wav -o out/ --backend onnxruntime"]["output_samples"] == 16000
    assert startup["clipsep-rt -q violin one_s.wav -o out/ --backend torch"]["ran_as"].startswith("torch on cpu")
    targets = data["targets"]
    assert targets[0]["passed"] is None and targets[1]["passed"] is None  # measured at tiny sizes, not the target's
    assert targets[2]["name"].startswith("checkpoint path, cold") and targets[2]["value"] == rows[2]["best_s"]
    report = result.with_suffix(".md").read_text()
    assert report.count("| clipsep-rt: ") == 10 and "| original pipeline | `--threads 2" in report
    assert "recorded on another machine, not measured here" in report and "| 15.5 |" in report
