"""benchmarks/separation_quality.py: controlled-TIR mixtures, batch and streamed scores, its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from clipsep_rt.training.index import Clip, write_index

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dog_guitar"


def test_interference_is_scaled_to_the_asked_ratio():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from separation_quality import scale_to_tir
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    target, interference = rng.standard_normal(16000).astype(np.float32), 3 * rng.standard_normal(16000).astype(np.float32)
    for tir in (-5.0, 0.0, 4.5):
        scaled = scale_to_tir(target, interference, tir)
        measured = 20 * np.log10(np.sqrt(np.mean(target**2)) / np.sqrt(np.mean(scaled**2)))
        assert abs(measured - tir) < 1e-4
    assert scale_to_tir(np.zeros(10, np.float32), interference[:10], 0.0) is None


def test_a_small_run_scores_batch_and_stream_on_real_sounds(tmp_path):
    write_index(tmp_path / "index.csv", [
        Clip(EXAMPLE / "dog.wav", None, 0, "dog barking|a dog barks|a barking dog", "test", "d", 4.0),
        Clip(EXAMPLE / "guitar.wav", None, 0, "acoustic guitar|an acoustic guitar playing|someone strumming a guitar", "test", "g", 4.0),
    ])
    out = tmp_path / "quality.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/separation_quality.py", "--data", str(tmp_path / "index.csv"), "--count", "2",
         "--stream-count", "1", "--preset", "balanced", "--threads", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    rows = data["splits"]["test"]["model"]["rows"]
    assert len(rows) == 2 and {row["target"] for row in rows} == {"dog barking", "acoustic guitar"}
    assert all(-5 <= row["tir_db"] <= 5 for row in rows)
    assert sum("stream_balanced" in row for row in rows) == 1
    summary = data["splits"]["test"]["model"]["summary"]
    assert summary["label"]["n"] == 2 and np.isfinite(summary["label"]["mean"])
    # the bundled model separates these held-out sounds: better than doing nothing
    assert summary["label"]["mean"] > 0
    assert "balanced minus batch, same 1 mixtures" in out.with_suffix(".md").read_text()


def test_an_engine_folder_scores_the_same_mixtures_as_its_checkpoint(tmp_path):
    from clipsep_rt.export.pipeline import ExportOptions, export_engines
    from clipsep_rt.model.weights import default_checkpoint

    write_index(tmp_path / "index.csv", [
        Clip(EXAMPLE / "dog.wav", None, 0, "dog barking|a dog barks|a barking dog", "test", "d", 4.0),
        Clip(EXAMPLE / "guitar.wav", None, 0, "acoustic guitar|an acoustic guitar playing|someone strumming a guitar", "test", "g", 4.0),
    ])
    export_engines(default_checkpoint(), tmp_path / "engines", ExportOptions(fp16=False), log=lambda _: None)
    common = ["--data", str(tmp_path / "index.csv"), "--count", "2", "--stream-count", "0", "--threads", "1"]
    rows = {}
    for name, extra in (("torch", []), ("onnx", ["--engine", str(tmp_path / "engines")])):
        out = tmp_path / f"{name}.json"
        done = subprocess.run([sys.executable, "benchmarks/separation_quality.py", *common, *extra, "--json", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        rows[name] = {row["index"]: row for row in json.loads(out.read_text())["splits"]["test"]["model"]["rows"]}
    assert rows["torch"].keys() == rows["onnx"].keys() and len(rows["torch"]) == 2
    for index, row in rows["torch"].items():
        assert row["tir_db"] == rows["onnx"][index]["tir_db"]
        assert abs(row["label"] - rows["onnx"][index]["label"]) < 0.01, (row, rows["onnx"][index])
    refused = subprocess.run([sys.executable, "benchmarks/separation_quality.py", *common, "--precision", "int8"],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "--precision int8 needs --engine" in refused.stderr
