"""Training end to end on a tiny synthetic corpus: every model type, resume, checkpoints, image queries."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model import load_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.training.datasets import ClipDataset, MixtureSampler, QueryTable
from clipsep_rt.training.index import Clip, read_index, write_index
from clipsep_rt.training.schedule import TrainingRecipe
from clipsep_rt.training.train_config import TrainConfig
from clipsep_rt.training.trainer import train

SR = 16_000
DIM = 16
RECIPE = TrainingRecipe(batch_size=4, peak_lr=3e-3, warmup_steps=0, final_lr=3e-3, decay_end=10**6)
TINY = ModelConfig(depth=5, ngf=2, channels=4, query_dim=DIM, noise_heads=2)


class FakeTextEncoder:
    encoder_id = "fake:hash"
    embedding_dim = DIM
    default_templates = ("{}",)

    def encode_text(self, texts):
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            row = np.random.default_rng(seed).standard_normal(DIM)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32)


def _sound(kind: str, variant: int, seconds: float = 4.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(variant + 10 * len(kind))
    if kind == "tone":
        wave = np.sin(2 * np.pi * (300 + 100 * variant) * t)
    elif kind == "noise":
        wave = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0)
        wave = np.convolve(wave, np.ones(4) / 4, mode="same")
    else:
        wave = np.sin(2 * np.pi * (1500 + 800 * t / seconds * (1 + variant)) * t)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


LABELS = {"tone": "a steady tone|a beeping tone", "noise": "noise bursts", "chirp": "a rising chirp"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    clips = []
    for kind, label in LABELS.items():
        for variant in range(3):
            path = root / "audio" / f"{kind}{variant}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, _sound(kind, variant), SR)
            split = "val" if variant == 2 else "train"
            clips.append(Clip(path, None, 0, label, split, f"{kind}{variant}", 4.5))
    write_index(root / "index.csv", clips)
    return root / "index.csv"


@pytest.fixture(scope="module")
def video_corpus(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("videos")
    clips = []
    for v, kind in enumerate(["tone", "noise", "chirp", "tone"]):
        audio = root / f"video{v}.wav"
        sf.write(audio, _sound(kind, v % 3), SR)
        frames = root / f"video{v}_frames"
        frames.mkdir()
        for i in range(5):
            colour = tuple(int(c) for c in np.random.default_rng(v * 10 + i).integers(0, 256, 3))
            Image.new("RGB", (32, 32), colour).save(frames / f"{i:06d}.png")
        clips.append(Clip(audio, frames, 5, "", "train" if v < 3 else "val", f"video{v}", 4.5))
    clips.append(Clip(root / "video0.wav", root / "video0_frames", 5, "", "val", "video0", 4.5))
    write_index(root / "index.csv", clips)
    return root / "index.csv"


def _config(corpus: Path, out: Path, model_type: str, steps: int = 15, **extra) -> TrainConfig:
    return TrainConfig(
        index=corpus, out_dir=out, model_type=model_type, model=TINY, recipe=RECIPE, query_encoder="fake",
        steps=steps, batch_size=4, val_every=5, val_batches=2, seed=0, **extra,
    )


def _log(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_index_round_trip_and_errors(corpus, tmp_path):
    clips = read_index(corpus)
    assert len(clips) == 9 and all(c.audio.is_absolute() and c.audio.is_file() for c in clips)
    assert clips[0].paraphrases == ("a steady tone", "a beeping tone")
    write_index(tmp_path / "copy.csv", clips)
    assert read_index(tmp_path / "copy.csv") == clips
    bad = tmp_path / "bad.csv"
    bad.write_text("audio,frames,frame_count,label,split,source,duration_s\na.wav,,0,x,training,s,1\n")
    with pytest.raises(ClipsepError, match="line 2.*split"):
        read_index(bad)
    with pytest.raises(ClipsepError, match="no such file"):
        read_index(tmp_path / "missing.csv")


def test_sampler_pairs_different_classes_and_noisy_mode(corpus):
    data = ClipDataset(corpus, "train", seed=0)
    batch = MixtureSampler(data, 6, noisy=True, seed=1).sample()
    assert batch.sources.shape == (6, 2, 65_535) and batch.noise.shape == (6, 2, 65_535)
    assert all(a != b for a, b in batch.classes)
    texts = {t for label in LABELS.values() for t in label.split("|")}
    assert all(q in texts for item in batch.queries for q in item)
    table = QueryTable.for_texts(data.clips, FakeTextEncoder())
    assert table.lookup(batch.queries).shape == (6, 2, DIM)


@pytest.fixture(scope="module")
def imbalanced_corpus(tmp_path_factory) -> Path:
    """Train split: 12 tone clips, 2 noise clips, 2 chirp clips (short, to load fast)."""
    root = tmp_path_factory.mktemp("imbalanced")
    clips = []
    for kind, count in (("tone", 12), ("noise", 2), ("chirp", 2)):
        for variant in range(count):
            path = root / f"{kind}{variant}.wav"
            sf.write(path, _sound(kind, variant % 3, seconds=0.5), SR)
            clips.append(Clip(path, None, 0, LABELS[kind], "train", f"{kind}{variant}", 0.5))
    write_index(root / "index.csv", clips)
    return root / "index.csv"


@pytest.mark.parametrize("sampling, tone_share", [("classes", 1 / 3), ("clips", 12 / 16 + 4 / 16 * 12 / 14)])
def test_sampling_draws_classes_uniformly_or_as_often_as_their_clips(imbalanced_corpus, sampling, tone_share):
    data = ClipDataset(imbalanced_corpus, "train", seed=0)
    sampler = MixtureSampler(data, 400, seed=3, sampling=sampling)
    classes = sampler.sample().classes
    assert all(a != b for a, b in classes)
    first = np.mean([a == LABELS["tone"] for a, _ in classes])
    either = np.mean([LABELS["tone"] in pair for pair in classes])
    if sampling == "classes":  # tone is either source with probability 2/3
        assert abs(first - tone_share) < 0.08 and abs(either - 2 / 3) < 0.08
    else:  # first source: 12 of 16 clips; when it is not a tone, the second is a tone 12 of 14 times
        assert abs(first - 12 / 16) < 0.08 and abs(either - tone_share) < 0.06
    with pytest.raises(ClipsepError, match="sampling must be one of"):
        MixtureSampler(data, 4, sampling="videos")


def test_resume_with_other_sampling_starts_the_best_afresh(corpus, tmp_path):
    train(_config(corpus, tmp_path, "nit", steps=10), log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    messages = []
    train(_config(corpus, tmp_path, "nit", steps=15, sampling="clips"), log=messages.append,
          text_encoder=FakeTextEncoder(), progress=False)
    assert any("sampling changed from classes to clips" in m for m in messages)
    assert torch.load(tmp_path / "last.state.pt", weights_only=False)["config"]["sampling"] == "clips"
    assert load_checkpoint(tmp_path / "best.safetensors").provenance["step"] == 15
    with pytest.raises(ClipsepError, match="sampling must be one of"):
        _config(corpus, tmp_path, "nit", sampling="videos")


@pytest.mark.parametrize("model_type", ["clipsep", "nit", "labelsep", "pit"])
def test_each_model_type_trains_and_loss_falls(corpus, tmp_path, model_type):
    best = train(_config(corpus, tmp_path, model_type), log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    rows = _log(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 16))
    losses = [float(r["loss"]) for r in rows]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    assert sum(1 for r in rows if r["val_loss"]) == 3
    checkpoint = load_checkpoint(best)
    assert checkpoint.query_encoder == {"clipsep": "fake:hash", "nit": "fake:hash"}.get(model_type, model_type)
    separator = checkpoint.build()
    assert isinstance(separator, CLIPSepSeparator)
    queries = torch.from_numpy(FakeTextEncoder().encode_text(["a rising chirp"]))
    if model_type in ("labelsep", "pit"):
        from clipsep_rt.query import load_query_embeddings

        _, vectors = load_query_embeddings(best.with_suffix(".queries.npz"))
        queries = torch.from_numpy(vectors[:1])
    with torch.no_grad():
        out = separator(torch.randn(1, 1, 256, 256), queries)
    assert out.query.shape == (1, 1, 256, 256)
    if model_type == "nit":
        assert out.noise.shape == (1, 1, 2, 256, 256)
        assert float(rows[-1]["noise_activation"]) > 0


def test_resume_continues_step_counter_and_log(corpus, tmp_path):
    messages = []
    train(_config(corpus, tmp_path, "nit", steps=10), log=messages.append, text_encoder=FakeTextEncoder(), progress=False)
    assert [int(r["step"]) for r in _log(tmp_path)] == list(range(1, 11))
    state = torch.load(tmp_path / "last.state.pt", weights_only=False)
    assert state["step"] == 10
    train(_config(corpus, tmp_path, "nit", steps=15), log=messages.append, text_encoder=FakeTextEncoder(), progress=False)
    assert any("resuming from step 10" in m for m in messages)
    assert [int(r["step"]) for r in _log(tmp_path)] == list(range(1, 16))
    assert torch.load(tmp_path / "last.state.pt", weights_only=False)["step"] == 15


def test_resume_drops_log_rows_written_after_the_last_checkpoint(corpus, tmp_path):
    train(_config(corpus, tmp_path, "nit", steps=10), log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    with open(tmp_path / "log.csv", "a", newline="") as handle:  # a run killed at step 12, after the step-10 checkpoint
        csv.writer(handle).writerows([[11, 0.001, 0.5, "", 0.5, 0.2], [12, 0.001, 0.5, "", 0.5, 0.2]])
    train(_config(corpus, tmp_path, "nit", steps=13), log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    assert [int(r["step"]) for r in _log(tmp_path)] == list(range(1, 14))


def test_noisy_targets_include_the_off_screen_sound():
    from clipsep_rt.config import SpectralConfig
    from clipsep_rt.dsp.spectral import SpectralFrontEnd
    from clipsep_rt.training.datasets import MixtureBatch
    from clipsep_rt.training.step import make_targets

    front_end = SpectralFrontEnd(SpectralConfig())
    n = 16_384
    t = torch.arange(n) / 16000
    sources = torch.stack([torch.sin(2 * torch.pi * 300 * t), torch.sin(2 * torch.pi * 3000 * t)])[None]  # (1, 2, n)
    noise = torch.zeros_like(sources)
    noise[0, 0] = torch.sin(2 * torch.pi * 6000 * t)  # off-screen sound riding on source 0
    targets = make_targets(MixtureBatch(sources, noise, [["a", "b"]], [["a", "b"]]), front_end, "cpu")
    bin_6k = int(torch.argmax(targets.mix_mag[0, :, 10]))  # the loudest log bin in the mixture
    assert targets.masks[0, 0, bin_6k].mean() == 1 and targets.masks[0, 1, bin_6k].mean() == 0


def test_precision_auto_and_explicit(corpus, tmp_path):
    from clipsep_rt.model.device import cpu_has_native_bf16
    from clipsep_rt.training.step import uses_bf16_autocast

    assert uses_bf16_autocast("auto", torch.device("cpu")) == cpu_has_native_bf16()
    assert uses_bf16_autocast("auto", torch.device("cuda")) and not uses_bf16_autocast("fp32", torch.device("cuda"))
    assert uses_bf16_autocast("bf16", torch.device("cpu"))
    with pytest.raises(ClipsepError, match="precision"):
        _config(corpus, tmp_path, "nit", precision="fp8")
    messages = []
    train(_config(corpus, tmp_path, "nit", steps=3, precision="bf16"), log=messages.append,
          text_encoder=FakeTextEncoder(), progress=False)
    assert any("bf16 autocast" in m for m in messages)


def test_tensorboard_log_has_the_csv_scalars(corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_config(corpus, tmp_path, "nit", steps=5, tensorboard=True), log=lambda _: None,
          text_encoder=FakeTextEncoder(), progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5]
    assert [round(e.value, 4) for e in loss] == [round(float(r["loss"]), 4) for r in _log(tmp_path)]
    assert {"train/noise_activation", "train/val_loss", "train/lr"} <= set(events.Tags()["scalars"])


def test_config_from_toml_and_json(corpus, tmp_path):
    (tmp_path / "train.toml").write_text(
        f'index = "{corpus.as_posix()}"\nout_dir = "run"\nmodel_type = "clipsep"\nsteps = 3\n'
        "[model]\ndepth = 5\nngf = 2\nquery_dim = 16\n[recipe]\npeak_lr = 0.002\n"
    )
    config = TrainConfig.from_file(tmp_path / "train.toml")
    assert config.out_dir == tmp_path / "run" and config.model.noise_heads == 0 and config.recipe.peak_lr == 0.002
    (tmp_path / "train.json").write_text(json.dumps({"index": str(corpus), "out_dir": "x", "bogus": 1}))
    with pytest.raises(ClipsepError, match="bogus"):
        TrainConfig.from_file(tmp_path / "train.json")


def test_image_queries_on_a_tiny_video_dataset(video_corpus, tmp_path):
    import open_clip
    from tiny_clip import tiny_clip

    from clipsep_rt.query import OpenClipEncoder

    model, tokenizer = tiny_clip(embed_dim=DIM)
    encoder = OpenClipEncoder("tiny", "random-test", model=model, tokenizer=tokenizer, preprocess=open_clip.image_transform(32, False))
    config = _config(video_corpus, tmp_path, "clipsep", steps=4, noisy=False)
    best = train(config, log=lambda _: None, image_encoder=encoder, progress=False)
    with np.load(tmp_path / "frame_embeddings.npz") as data:
        assert data["embeddings"].shape == (20, DIM)
    assert load_checkpoint(best).query_encoder == encoder.encoder_id
    assert len(_log(tmp_path)) == 4


def test_embed_frames_command_then_training_never_runs_clip(video_corpus, tmp_path, monkeypatch, capsys):
    import open_clip
    from tiny_clip import tiny_clip

    from clipsep_rt.cli import main
    from clipsep_rt.query import OpenClipEncoder

    model, tokenizer = tiny_clip(embed_dim=DIM)
    encoder = OpenClipEncoder("tiny", "random-test", model=model, tokenizer=tokenizer, preprocess=open_clip.image_transform(32, False))
    monkeypatch.setattr("clipsep_rt.query.encoders.registry.build_encoder", lambda *a, **k: encoder)
    cache = tmp_path / "frames.npz"
    assert main(["embed-frames", str(video_corpus), "-o", str(cache)]) == 0
    assert "20 frame embeddings" in capsys.readouterr().out

    def no_clip(*args, **kwargs):
        raise AssertionError("training ran CLIP although the frame embeddings were precomputed")

    monkeypatch.setattr("clipsep_rt.query.encoders.registry.build_encoder", no_clip)
    config = replace(_config(video_corpus, tmp_path / "run", "clipsep", steps=2, frame_embeddings=cache),
                     query_encoder=encoder.encoder_id)
    assert load_checkpoint(train(config, log=lambda _: None, progress=False)).query_encoder == encoder.encoder_id
    assert main(["embed-frames", str(video_corpus), "-o", str(tmp_path / "frames.npy")]) == 2
    assert "must end in .npz" in capsys.readouterr().err


def test_train_command_then_separate_with_the_result(corpus, tmp_path, capsys):
    """`clipsep-rt train --config` with the offline MiniLM text encoder, then the checkpoint
    it picked separates by text from the command line."""
    from clipsep_rt.cli import main

    (tmp_path / "train.toml").write_text(
        f'index = "{corpus.as_posix()}"\nout_dir = "run"\nmodel_type = "nit"\nsteps = 4\nbatch_size = 2\n'
        'val_every = 2\nval_batches = 1\nquery_encoder = "minilm"\n[model]\ndepth = 7\nngf = 2\nquery_dim = 384\n'
    )
    assert main(["train", "--config", str(tmp_path / "train.toml"), "--device", "cpu"]) == 0
    best = tmp_path / "run" / "best.safetensors"
    assert f"best checkpoint: {best}" in capsys.readouterr().out
    assert len(_log(tmp_path / "run")) == 4
    mixture = tmp_path / "mix.wav"
    sf.write(mixture, _sound("tone", 0) + _sound("noise", 1), SR)
    assert main(["-c", str(best), str(mixture), "-q", "a steady tone", "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "mix_a_steady_tone.wav").exists()


def test_stream_edge_emphasis_weights_the_last_frames_and_keeps_the_mean():
    from clipsep_rt.training.targets import stream_edge_emphasis

    weights = stream_edge_emphasis(256, 48, 4.0)
    assert weights.shape == (256,)
    assert float(weights.mean()) == pytest.approx(1.0)
    assert float(weights[-1] / weights[0]) == pytest.approx(4.0)
    assert torch.all(weights[:208] == weights[0]) and torch.all(weights[208:] == weights[-1])
    assert torch.equal(stream_edge_emphasis(256, 0, 4.0), torch.ones(256))
    with pytest.raises(ValueError, match="edge_frames"):
        stream_edge_emphasis(256, 300, 2.0)


def test_streaming_aware_loss_scales_the_edge_of_the_loss_weights(corpus):
    from clipsep_rt.dsp.spectral import SpectralFrontEnd
    from clipsep_rt.training.datasets import ClipDataset, MixtureSampler
    from clipsep_rt.training.targets import stream_edge_emphasis
    from clipsep_rt.training.step import make_targets

    batch = MixtureSampler(ClipDataset(read_index(corpus), "train", 65_535, 0, SR), 2, seed=0).sample()
    front_end = SpectralFrontEnd()
    plain = make_targets(batch, front_end, "cpu")
    emphasis = stream_edge_emphasis(plain.weight.shape[-1], 48, 4.0)
    weighted = make_targets(batch, front_end, "cpu", emphasis)
    assert torch.allclose(weighted.weight, plain.weight * emphasis)
    assert torch.equal(weighted.masks, plain.masks)


def test_warm_start_begins_from_the_given_weights_with_a_fresh_schedule(corpus, tmp_path):
    first = train(_config(corpus, tmp_path / "a", "nit", steps=5), log=lambda _: None,
                  text_encoder=FakeTextEncoder(), progress=False)
    messages = []
    config = _config(corpus, tmp_path / "b", "nit", steps=1, init_from=first, stream_edge_frames=48, stream_edge_weight=4.0)
    train(config, log=messages.append, text_encoder=FakeTextEncoder(), progress=False)
    assert any("starting from the weights of" in m for m in messages)
    assert [int(r["step"]) for r in _log(tmp_path / "b")] == [1]
    start = load_checkpoint(first).state_dict
    after = load_checkpoint(tmp_path / "b" / "last.safetensors").state_dict
    # one Adam step (lr 3e-3) from the warm start stays within a few lr of it; a fresh
    # initialisation would not
    for key in ("unet.down_convs.0.weight", "unet.down_convs.2.weight"):
        assert torch.allclose(after[key].float(), start[key].float(), atol=1e-2)
        assert not torch.allclose(CLIPSepSeparator(TINY).state_dict()[key], start[key].float(), atol=1e-2)
    wide = _config(corpus, tmp_path / "c", "nit", steps=1, init_from=first)
    wide.model = replace(TINY, ngf=TINY.ngf * 2)
    with pytest.raises(ClipsepError, match="init_from"):
        train(wide, log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)


def _class_of_text(text: str) -> str:
    return next(kind for kind, label in LABELS.items() if text in label.split("|"))


def test_negative_queries_name_a_class_absent_from_the_mixture(corpus):
    data = ClipDataset(corpus, "train", seed=0)
    batch = MixtureSampler(data, 12, seed=4, negatives=True).sample()
    assert len(batch.negative_queries) == 12
    for item, negative in zip(batch.queries, batch.negative_queries):
        assert _class_of_text(negative) not in {_class_of_text(q) for q in item}
    assert MixtureSampler(data, 2, seed=4).sample().negative_queries is None
    with pytest.raises(ClipsepError, match="mixing needs at least 5"):
        MixtureSampler(data, 2, noisy=True, negatives=True)


def test_negative_query_loss_scores_the_absent_class_mask_against_silence(corpus):
    from clipsep_rt.dsp.spectral import SpectralFrontEnd
    from clipsep_rt.training.baselines import source_logits
    from clipsep_rt.training.losses import negative_query_loss
    from clipsep_rt.training.step import TrainStep, make_targets

    weight = torch.rand(2, 8, 5)
    assert negative_query_loss(torch.full((2, 8, 5), -30.0), weight) < 1e-9
    assert torch.isclose(negative_query_loss(torch.zeros(2, 8, 5), weight), math.log(2) * weight.mean())

    data = ClipDataset(corpus, "train", seed=0)
    batch = MixtureSampler(data, 3, seed=5, negatives=True).sample()
    table = QueryTable.for_texts(data.clips, FakeTextEncoder())
    torch.manual_seed(0)
    model = CLIPSepSeparator(TINY).eval()
    targets = make_targets(batch, SpectralFrontEnd(), "cpu")
    classes = sorted(LABELS.values())
    with torch.no_grad():
        plain = TrainStep(_config(corpus, Path("unused"), "nit"), model, table, classes)(batch, targets, "cpu")
        weighted = TrainStep(_config(corpus, Path("unused"), "nit", negative_weight=2.0), model, table, classes)(batch, targets, "cpu")
        negative = source_logits(model, targets.log_mag, table.lookup([[q] for q in batch.negative_queries]))
        expected = 2.0 * negative_query_loss(negative.query[:, 0].float(), targets.weight)
    assert plain.negative_activation is None
    assert torch.isclose(weighted.loss - plain.loss, expected, rtol=1e-4)
    assert weighted.query_activation == pytest.approx(plain.query_activation)
    assert weighted.negative_activation == pytest.approx(torch.sigmoid(negative.query).mean().item(), rel=1e-5)


def test_training_with_negative_queries_lowers_their_masks(corpus, tmp_path):
    config = _config(corpus, tmp_path, "nit", steps=15, negative_weight=5.0)
    train(config, log=lambda _: None, text_encoder=FakeTextEncoder(), progress=False)
    activations = [float(r["negative_activation"]) for r in _log(tmp_path)]
    assert len(activations) == 15
    assert np.mean(activations[-4:]) < np.mean(activations[:4]) - 0.05, activations
    with pytest.raises(ClipsepError, match="negative_weight needs a queried model"):
        _config(corpus, tmp_path, "pit", negative_weight=1.0)
