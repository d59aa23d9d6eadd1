"""`clipsep-rt eval`: held-out mixtures scored end to end from the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch

from clipsep_rt.cli import main
from clipsep_rt.config import ModelConfig
from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint
from conftest import write_wav


def test_eval_command_scores_held_out_mixtures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    sounds = {
        "violin": lambda k: 0.3 * np.sin(2 * np.pi * (440 + 40 * k) * t),
        "rain": lambda k: 0.1 * rng.standard_normal(len(t)),
        "dog barking": lambda k: 0.3 * np.sign(np.sin(2 * np.pi * (3 + k) * t)) * np.sin(2 * np.pi * 600 * t),
    }
    rows = []
    for label, make in sounds.items():
        for k in range(2):
            name = f"{label.replace(' ', '_')}{k}.wav"
            write_wav(tmp_path / name, make(k).astype(np.float32))
            rows.append({"audio": name, "frames": "", "frame_count": 0, "label": label, "split": "test",
                         "source": name, "duration_s": 2.0})
    with open(tmp_path / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig(ngf=2, query_dim=384))
    save_checkpoint(checkpoint_from_model(model, "minilm:all-MiniLM-L6-v2"), tmp_path / "m.safetensors")
    args = ["eval", str(tmp_path / "m.safetensors"), "--data", str(tmp_path / "index.csv"), "--count", "4",
            "--precision", "fp32", "--mixtures", str(tmp_path / "mixtures.json"), "--json", str(tmp_path / "report.json")]
    assert main(args) == 0
    markdown = capsys.readouterr().out
    assert "SDR" in markdown and "violin" in markdown
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["count"] == len(report["mixtures"]) == 4
    listed = json.loads((tmp_path / "mixtures.json").read_text())["mixtures"]
    assert all(m["target_labels"][0] != m["interference_labels"][0] for m in listed)
    assert main(args) == 0  # the saved list is reused: the same mixtures, the same scores
    assert json.loads((tmp_path / "report.json").read_text())["mixtures"] == report["mixtures"]
