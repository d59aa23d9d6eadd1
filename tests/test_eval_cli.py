"""`clipsep-rt eval`: held-out mixtures scored end to end from the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import write_wav

from clipsep_rt.cli import main
from clipsep_rt.config import ModelConfig
from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint


def _corpus(root, clips_per_class: int = 2, train_clips: int = 0):
    """Tones, noise and a gated buzz; the first `train_clips` of each class go to the train split."""
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    sounds = {
        "violin|fiddle": lambda k: 0.3 * np.sin(2 * np.pi * (440 + 40 * k) * t),
        "rain": lambda k: 0.1 * rng.standard_normal(len(t)),
        "dog barking|a dog barks": lambda k: 0.3 * np.sign(np.sin(2 * np.pi * (3 + k) * t)) * np.sin(2 * np.pi * 600 * t),
    }
    rows = []
    for label, make in sounds.items():
        for k in range(clips_per_class):
            name = f"{label.split('|')[0].replace(' ', '_')}{k}.wav"
            write_wav(root / name, make(k).astype(np.float32))
            rows.append({"audio": name, "frames": "", "frame_count": 0, "label": label,
                         "split": "train" if k < train_clips else "test", "source": name, "duration_s": 2.0})
    with open(root / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "index.csv"


def test_eval_command_scores_held_out_mixtures(tmp_path, capsys):
    index = _corpus(tmp_path)
    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig(ngf=2, query_dim=384))
    save_checkpoint(checkpoint_from_model(model, "minilm:all-MiniLM-L6-v2"), tmp_path / "m.safetensors")
    args = ["eval", str(tmp_path / "m.safetensors"), "--data", str(index), "--count", "4",
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

    # robustness to queries: label, short and long paraphrase, unrelated query
    variants = {"violin": {"short": "fiddle", "long": "a person playing the violin in a concert hall"},
                "rain": {"short": "rainfall", "long": "heavy rain falling on a roof"},
                "dog barking": {"short": "dog", "long": "a dog barking loudly in a yard"}}
    (tmp_path / "variants.json").write_text(json.dumps(variants))
    capsys.readouterr()
    assert main([*args, "--query-variants", str(tmp_path / "variants.json"), "--unrelated-query", "car engine",
                 "--markdown", str(tmp_path / "variants.md")]) == 0
    markdown = capsys.readouterr().out
    assert "| long paraphrase | 4 |" in markdown and "| unrelated (car engine) | 4 |" in markdown
    assert (tmp_path / "variants.md").read_text() == markdown
    data = json.loads((tmp_path / "report.json").read_text())
    assert [entry["variant"] for entry in data["summary"]] == ["label", "short", "long", "unrelated"]
    assert all({"sdri", "energy_db"} <= set(entry) for entry in data["summary"]) and len(data["mixtures"]) == 16
    label_rows = [row for row in data["mixtures"] if row["variant"] == "label"]
    assert [row["sdri"] for row in label_rows] == pytest.approx([row["sdri"] for row in report["mixtures"]], abs=1e-6)


def test_eval_uses_each_distinct_mixture_once_and_says_when_there_are_fewer(tmp_path, capsys):
    """One test clip per class: 6 distinct mixtures exist; --count 20 scores those 6 (the SEM is over 6) and
    says so. Without a CHECKPOINT, eval scores the bundled default model."""
    index = _corpus(tmp_path, clips_per_class=1)
    assert main(["eval", "--data", str(index), "--count", "20", "--precision", "fp32",
                 "--json", str(tmp_path / "report.json")]) == 0
    err = capsys.readouterr().err
    assert "only 6 distinct mixtures" in err and "not 20" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["count"] == 6
    pairs = {(row["target_audio"], row["interference_audio"]) for row in report["mixtures"]}
    assert len(pairs) == 6


def _train(index, out, model_type):
    from clipsep_rt.training.schedule import TrainingRecipe
    from clipsep_rt.training.train_config import TrainConfig
    from clipsep_rt.training.trainer import train

    config = TrainConfig(index=index, out_dir=out, model_type=model_type,
                         model=ModelConfig(depth=5, ngf=2, channels=4, query_dim=16, noise_heads=0),
                         recipe=TrainingRecipe(batch_size=2, warmup_steps=0), steps=2, val_every=2, val_batches=1)
    return train(config, log=lambda _: None, progress=False)


def test_eval_command_for_labelsep_and_pit_runs(tmp_path, capsys):
    """Checkpoints and query vectors as `train` writes them: LabelSep by class lookup, PIT by oracle selection."""
    index = _corpus(tmp_path, clips_per_class=3, train_clips=2)
    common = ["--data", str(index), "--count", "3", "--precision", "fp32", "--mixtures", str(tmp_path / "mixtures.json"),
              "--json", str(tmp_path / "report.json")]

    labelsep = _train(index, tmp_path / "labelsep", "labelsep")
    assert main(["eval", str(labelsep), "--query-vectors", str(labelsep.with_suffix(".queries.npz")), *common]) == 0
    assert "class vectors (best.queries.npz)" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    for row in report["mixtures"]:
        mixture = next(m for m in json.loads((tmp_path / "mixtures.json").read_text())["mixtures"] if m["index"] == row["index"])
        assert row["query"] == "|".join(mixture["target_labels"])  # the class key is the whole label column
    assert main(["eval", str(labelsep), *common]) == 0  # a labelsep checkpoint finds its own .queries.npz
    assert json.loads((tmp_path / "report.json").read_text())["mixtures"] == report["mixtures"]

    pit = _train(index, tmp_path / "pit", "pit")
    assert main(["eval", str(pit), "--query-vectors", str(pit.with_suffix(".queries.npz")), "--oracle", *common]) == 0
    assert "oracle over output0, output1" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["query_mode"] == "oracle over output0, output1"
    for row in report["mixtures"]:
        assert row["query"] in ("output0", "output1")
        assert row["sdr"] == max(row["candidate_sdr"].values())
    assert main(["eval", str(pit), *common]) == 0  # a pit checkpoint: its vectors, with the oracle
    assert json.loads((tmp_path / "report.json").read_text())["mixtures"] == report["mixtures"]

    # PIT's vectors are not per class: without --oracle that is a one-line error
    capsys.readouterr()
    assert main(["eval", str(labelsep), "--query-vectors", str(pit.with_suffix(".queries.npz")), *common]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no vector in best.queries.npz (it holds 'output0', 'output1')" in err


@pytest.mark.parametrize("extra, message", [
    (["--oracle"], "--oracle needs --query-vectors"),
    (["--unrelated-query", "siren"], "--unrelated-query belongs to --query-variants"),
    (["--query-vectors", "q.npz", "--ensemble"], "does not combine"),
    (["--query-vectors", "missing.npz"], "missing.npz does not exist"),
    (["--query-variants", "variants.json"], "no short/long paraphrases for class(es)"),
    (["--query-variants", "bad.json"], "not valid JSON"),
])
def test_eval_command_errors_are_one_line(tmp_path, capsys, monkeypatch, extra, message):
    index = _corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "variants.json").write_text(json.dumps({"violin": {"short": "fiddle", "long": "a violin solo"}}))
    (tmp_path / "bad.json").write_text("{")
    torch.manual_seed(0)
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=16)), "fake:none"), tmp_path / "m.safetensors")
    assert main(["eval", str(tmp_path / "m.safetensors"), "--data", str(index), "--count", "3", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clipsep-rt: error: ") and err.count("\n") == 1 and message in err
