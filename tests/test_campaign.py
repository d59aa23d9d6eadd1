"""Choosing checkpoints on the real-sound dev set inside training, and the campaign that carries
a long run across sessions (seed a run folder from the committed state, snapshot it back)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clipsep_rt.errors import ClipsepError
from clipsep_rt.model import load_checkpoint
from clipsep_rt.training import campaign
from clipsep_rt.training.dev_score import DevScorer
from clipsep_rt.training.trainer import train
from tests.test_training import FakeTextEncoder, LABELS, _config, _sound, corpus  # noqa: F401 (fixture)

SR = 16_000
N = 65_535


def _devset(root: Path) -> Path:
    """Three dev mixtures of the test corpus's sounds (tone, noise, chirp), already scaled."""
    (root / "audio").mkdir(parents=True)
    pairs = [("tone", "noise"), ("noise", "chirp"), ("chirp", "tone")]
    mixtures = []
    for i, (target, interference) in enumerate(pairs):
        for role, kind in (("target", target), ("interference", interference)):
            sf.write(root / f"audio/{i:04d}_{role}.wav", _sound(kind, i)[:N], SR, subtype="FLOAT")
        unrelated = next(k for k in LABELS if k not in (target, interference))
        mixtures.append({
            "index": i, "target_class": target, "target_labels": LABELS[target].split("|"), "paraphrase": f"some {target}",
            "interference_class": interference, "interference_labels": LABELS[interference].split("|"),
            "unrelated_class": unrelated, "unrelated_labels": LABELS[unrelated].split("|"), "tir_db": 0.0,
            "target_audio": f"audio/{i:04d}_target.wav", "interference_audio": f"audio/{i:04d}_interference.wav",
            "target_source": f"test/{target}", "interference_source": f"test/{interference}", "target_category": "test",
        })
    manifest = {"version": 1, "sample_rate": SR, "window_samples": N, "seed": 0, "classes": {k: 1 for k in LABELS},
                "mixtures": mixtures}
    (root / "devset.json").write_text(json.dumps(manifest))
    return root / "devset.json"


@pytest.fixture(scope="module")
def devset(tmp_path_factory) -> Path:
    return _devset(tmp_path_factory.mktemp("devset"))


def test_dev_scorer_scores_label_paraphrase_and_unrelated(devset, corpus):
    encoder = FakeTextEncoder()
    scorer = DevScorer(devset, encoder.encode_text)
    assert len(scorer) == 3 and scorer.embeddings.shape == (3, 3, 16)
    from clipsep_rt.model.separator import CLIPSepSeparator
    from tests.test_training import TINY

    torch.manual_seed(0)
    separator = CLIPSepSeparator(TINY)
    score = scorer.score(separator)
    assert np.isfinite([score.sdri_label, score.sdri_paraphrase, score.unrelated_db]).all() and score.count == 3
    estimates = scorer.estimates(separator)
    assert estimates.shape == (3, 3, N)
    # a separator whose masks are all ones returns the mixture: SDRi 0, unrelated as loud as the label
    with torch.no_grad():
        separator.heads.bias.fill_(50.0)
    full = scorer.score(separator)
    assert full.sdri_label == pytest.approx(0.0, abs=1e-3) and full.unrelated_db == pytest.approx(0.0, abs=1e-3)
    assert separator.training  # the scorer leaves the mode as it found it


def test_training_chooses_the_best_checkpoint_on_the_dev_set(devset, corpus, tmp_path):
    config = replace(_config(corpus, tmp_path / "run", "nit", steps=12), dev_set=devset, dev_every=4)
    best = train(config, log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    with open(tmp_path / "run/dev_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert [int(r["mixtures_seen"]) for r in rows] == [16, 32, 48]
    chosen = max(rows, key=lambda r: float(r["sdri_label"]))
    provenance = load_checkpoint(best).provenance
    assert provenance["step"] == int(chosen["step"])
    assert provenance["dev"]["sdri_label"] == pytest.approx(float(chosen["sdri_label"]), abs=1e-3)
    assert int(chosen["best"]) == 1
    state = torch.load(tmp_path / "run/last.state.pt", weights_only=False)
    assert state["mixtures_seen"] == 48 and state["wall_s"] > 0 and state["best_dev"] == pytest.approx(float(chosen["sdri_label"]), abs=1e-3)


def test_campaign_seeds_a_run_resumes_it_and_snapshots_it_back(devset, corpus, tmp_path):
    run, committed = tmp_path / "run", tmp_path / "campaign"
    config = replace(_config(corpus, run, "nit", steps=8), dev_set=devset, dev_every=4, val_every=4)
    with pytest.raises(ClipsepError, match="no training state"):
        campaign.snapshot(run, committed, log=lambda _: None)
    train(config, log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    row = campaign.snapshot(run, committed, log=lambda _: None)
    assert row["step"] == 8 and row["mixtures_seen"] == 32 and row["best_step"] in ("4", "8")
    assert {p.name for p in committed.iterdir()} >= {"last.safetensors", "last.state.pt", "best.safetensors", "dev_log.csv", "log.csv"}

    # a new session: a fresh machine has no run folder; it is seeded and training goes on from step 8
    fresh = tmp_path / "fresh"
    assert campaign.seed_run(fresh, committed, log=lambda _: None) == 8
    messages = []
    train(replace(config, out_dir=fresh, steps=12), log=messages.append, text_encoder=FakeTextEncoder(), progress=False)
    assert any("resuming from step 8" in m for m in messages)
    second = campaign.snapshot(fresh, committed, log=lambda _: None)
    assert second["step"] == 12 and second["mixtures_seen"] == 48
    with open(committed / "log.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [8, 12]
    # an older run folder never overwrites what is committed
    with pytest.raises(ClipsepError, match="behind the committed step"):
        campaign.snapshot(run, committed, log=lambda _: None)
    assert campaign.seed_run(run, committed, log=lambda _: None) == 12  # and is brought forward when resumed
    assert campaign.running_pid(run) is None
