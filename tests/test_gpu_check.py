"""`make gpu-check GPU_CHECK_ARGS=--dry-run`: the GPU check's plumbing on CPU, with both reports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("cuda_tests", "offline", "streaming", "engines", "training")


def test_dry_run_writes_both_reports(tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    markdown = (out / "gpu_check.md").read_text()
    assert report["dry_run"] is True and report["gpu"].startswith("none")  # never a made-up GPU figure
    assert list(report["parts"]) == list(PARTS)
    for name, part in report["parts"].items():
        assert f"## {name}: {part['status']}" in markdown
        assert part["status"] == "ok" or part["status"].startswith(("failed", "timed out")), part
    assert "dry run on CPU" in markdown and "GPU: none" in markdown
    offline = report["parts"]["offline"]
    assert offline["status"] == "ok" and offline["device"] == "cpu"
    assert {row["model"] for row in offline["rows"]} == {"tiny (ngf 4, dry run)", "default (ngf 16)"}
    assert all(row["windows_per_s"] > 0 for row in offline["rows"])
    assert report["parts"]["cuda_tests"]["status"] == "ok" and "--collect-only" in report["parts"]["cuda_tests"]["command"]
    engines = report["parts"]["engines"]  # numpy in, numpy out: every engine timed on the CPU
    assert engines["status"] == "ok" and engines["device"] == "cpu"
    timed = [row for row in engines["rows"] if "error" not in row]
    assert timed and timed[0]["engine"] == "torch fp32 eager", engines["rows"]
    assert all(row["device"] == "cpu" and row["windows_per_s"] > 0 for row in timed)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        assert [row["engine"] for row in timed] == ["torch fp32 eager", "onnxruntime CPU fp32"], engines["rows"]
    training = report["parts"]["training"]
    assert training["status"] != "ok" or training["steps_per_s"] > 0


def test_a_failing_part_is_recorded_not_fatal(tmp_path):
    """Without --dry-run on a machine with no GPU every GPU part fails, and the reports say so."""
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--parts", "training", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    part = json.loads((out / "gpu_check.json").read_text())["parts"]["training"]
    import torch

    if torch.cuda.is_available():
        assert part["status"] == "ok"
    else:
        assert part["status"].startswith("failed") and "no CUDA GPU" in part["error"]
        assert "## training: failed" in (out / "gpu_check.md").read_text()
