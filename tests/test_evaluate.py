"""The evaluation loop on a tiny random separator, fake text embeddings and a synthetic index."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.api import Separator
from clipsep_rt.config import ModelConfig
from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint
from clipsep_rt.training.evaluate import (
    CROP_SAMPLES,
    make_eval_mixtures,
    read_mixture_list,
    report_json,
    report_markdown,
    evaluate,
    summary_stats,
    write_mixture_list,
)

LABELS = ["dog barking|a dog barks", "violin|fiddle", "rain"]


@pytest.fixture
def index(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(9):
        label = LABELS[i % 3]
        split = "test" if i < 6 else "train"
        name = f"clip{i}.wav"
        seconds = 3.0 if i % 2 else 5.0
        sf.write(tmp_path / name, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        rows.append({"audio": name, "frames": "", "frame_count": 0, "label": label, "split": split,
                     "source": "synthetic", "duration_s": seconds})
    path = tmp_path / "index.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def separator(tmp_path, monkeypatch):
    import torch

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), "fake:test-encoder"), path)
    separator = Separator.from_checkpoint(path, device="cpu")
    calls = []

    def fake_embed_text(queries):
        calls.append((separator.encoder.prompt_ensemble, list(queries)))
        vectors = [np.random.default_rng(sum(map(ord, q))).standard_normal(8) for q in queries]
        return np.stack([v / np.linalg.norm(v) for v in vectors]).astype(np.float32)

    monkeypatch.setattr(separator, "embed_text", fake_embed_text)
    separator.fake_calls = calls
    return separator


def test_mixture_list_is_deterministic(index, tmp_path):
    first = make_eval_mixtures(index, split="test", count=8, seed=3)
    assert first == make_eval_mixtures(index, split="test", count=8, seed=3)
    assert first != make_eval_mixtures(index, split="test", count=8, seed=4)
    assert len(first) == 8
    for mixture in first:
        assert mixture.target_label != mixture.interference_label
        assert "train" not in mixture.target_audio  # all from the test split (clips 0-5)
        assert int(mixture.target_audio[-5]) < 6 and int(mixture.interference_audio[-5]) < 6
    path = tmp_path / "mixtures.json"
    write_mixture_list(first, path)
    assert read_mixture_list(path) == first
    assert json.loads(path.read_text())["mixtures"][0]["crop_samples"] == CROP_SAMPLES


@pytest.mark.parametrize("mode", ["label", "ensemble"])
def test_evaluate_report(index, separator, mode):
    mixtures = make_eval_mixtures(index, count=4, seed=0)
    logged = []
    report = evaluate(separator, mixtures, query_mode=mode, log=logged.append)
    assert report.count == 4 and len(logged) == 4
    assert report.overall["sdr"]["n"] == 4
    assert sum(summary["sdr"]["n"] for summary in report.per_class.values()) == 4
    assert set(report.per_class) == {m.target_label for m in mixtures}
    for row in report.rows:
        assert all(math.isfinite(row[key]) for key in ("sdr", "sir", "sar", "sdri", "si_sdr"))
    if mode == "ensemble":
        # paraphrases embedded with the prompt ensemble switched on, and switched off afterwards
        assert any(flag and len(queries) >= 1 for flag, queries in separator.fake_calls)
        assert ["dog barking", "a dog barks"] in [q for _, q in separator.fake_calls] or \
            all(m.target_label != "dog barking" for m in mixtures)
        assert not separator.encoder.prompt_ensemble
    else:
        assert all(len(queries) == 1 and "|" not in queries[0] for _, queries in separator.fake_calls)
    markdown = report_markdown(report)
    assert "| **all** | 4 |" in markdown and "SDRi" in markdown
    data = json.loads(report_json(report))
    assert data["count"] == 4 and len(data["mixtures"]) == 4 and data["query_mode"] == mode


def test_sem_formula():
    stats = summary_stats([1.0, 2.0, 3.0, 4.0, float("nan")])
    # sample std (ddof=1) of 1..4 is sqrt(5/3); SEM = that / sqrt(4)
    assert stats["n"] == 4
    assert stats["mean"] == pytest.approx(2.5)
    assert stats["sem"] == pytest.approx(math.sqrt(5 / 3) / 2)
    assert stats["median"] == pytest.approx(2.5)
    assert math.isnan(summary_stats([1.0])["sem"])
