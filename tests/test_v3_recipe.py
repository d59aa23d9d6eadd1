"""The v3 mixture recipe: class hierarchy, tempered class sampling, levelled sources at a drawn
ratio, short clips looped or placed, and active-frame levels."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.dsp.levels import active_fraction, active_rms
from clipsep_rt.errors import ClipsepError
from clipsep_rt.training.datasets import ClipDataset, MixRecipe, MixtureSampler
from clipsep_rt.training.hierarchy import CONFUSABLE, PARENTS, ancestors, classes_overlap, overlaps_any
from clipsep_rt.training.index import Clip, write_index
from clipsep_rt.training.taxonomy import all_class_labels

SR = 16_000
N = 65_535


def test_hierarchy_names_only_known_classes_and_is_symmetric():
    known = set(all_class_labels())
    named = set(PARENTS) | {c for children in PARENTS.values() for c in children} | {c for g in CONFUSABLE for c in g}
    assert named <= known, named - known
    for a in sorted(named):
        for b in sorted(named):
            assert classes_overlap(a, b) == classes_overlap(b, a), (a, b)


def test_hierarchy_follows_ancestry_and_groups():
    assert "brass_section" in ancestors("trumpet") and "music" in ancestors("trumpet")
    assert classes_overlap("music", "trumpet")  # through brass_section and directly
    assert classes_overlap("string_ensemble", "violin") and classes_overlap("radio_voice", "woman_speaking")
    assert classes_overlap("river", "waterfall") and classes_overlap("death_cry", "person_screaming")
    assert not classes_overlap("violin", "cello")  # siblings under string_ensemble stay separable
    assert not classes_overlap("man_speaking", "woman_speaking")
    assert not classes_overlap("dog", "violin")
    assert classes_overlap("source:a", "source:a") and not classes_overlap("source:a", "source:b")
    assert overlaps_any("violin", ["dog", "music"]) and not overlaps_any("violin", ["dog", "rain"])


def _tone(seconds: float, freq: float, gain: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (gain * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def hierarchy_corpus(tmp_path_factory):
    """music (6 clips), violin (2), dog (2, short: 0.8 s), rain (1, quiet)."""
    root = tmp_path_factory.mktemp("hierarchy")
    labels = all_class_labels()
    spec = {"music": (6, 5.0, 0.3), "violin": (2, 5.0, 0.3), "dog": (2, 0.8, 0.5), "rain": (1, 5.0, 0.01)}
    clips = []
    for name, (count, seconds, gain) in spec.items():
        for i in range(count):
            path = root / f"{name}{i}.wav"
            sf.write(path, _tone(seconds, 200 + 150 * i + 20 * len(name), gain), SR)
            clips.append(Clip(path, None, 0, labels[name], "train", f"{name}{i}", seconds))
    write_index(root / "index.csv", clips)
    return root / "index.csv"


def _canonical(label: str) -> str:
    return {v: k for k, v in all_class_labels().items()}[label]


def test_v3_sampler_never_mixes_or_negates_overlapping_classes(hierarchy_corpus):
    data = ClipDataset(hierarchy_corpus, "train", seed=0)
    sampler = MixtureSampler(data, 200, seed=1, sampling="tempered", recipe=MixRecipe.v3(), negatives=True)
    batch = sampler.sample()
    for (a, b), negative in zip(batch.classes, batch.negative_queries):
        a, b = _canonical(a), _canonical(b)
        assert not classes_overlap(a, b), (a, b)
        negative_class = next(n for n, label in all_class_labels().items() if negative in label.split("|"))
        assert not overlaps_any(negative_class, [a, b]), (a, b, negative_class)
    # the old recipe pairs music with violin (they are only different names)
    old = MixtureSampler(data, 200, seed=1, sampling="classes").sample()
    assert any({_canonical(a), _canonical(b)} == {"music", "violin"} for a, b in old.classes)


def test_tempered_sampling_sits_between_classes_and_clips(hierarchy_corpus):
    data = ClipDataset(hierarchy_corpus, "train", seed=0)
    shares = {}
    for mode in ("classes", "tempered", "clips"):
        sampler = MixtureSampler(data, 600, seed=2, sampling=mode, sources=1)
        shares[mode] = np.mean([_canonical(c[0]) == "music" for c in sampler.sample().classes])
    expected = {"classes": 1 / 4, "clips": 6 / 11, "tempered": 6**0.5 / (6**0.5 + 2 * 2**0.5 + 1)}
    for mode, share in shares.items():
        assert abs(share - expected[mode]) < 0.06, (mode, share, expected[mode])


def test_balanced_levels_set_the_drawn_ratio_on_active_frames(hierarchy_corpus):
    data = ClipDataset(hierarchy_corpus, "train", seed=0)
    recipe = MixRecipe(levels="balanced", ratio_db=(3.0, 3.0), p_wide_ratio=0.0, level_dbfs=(-20.0, -20.0),
                       place_short=True, p_loop=1.0)
    sampler = MixtureSampler(data, 40, seed=3, recipe=recipe)
    batch = sampler.sample()
    for item in batch.sources.numpy():
        first, second = active_rms(item[0]), active_rms(item[1])
        assert 20 * np.log10(first / second) == pytest.approx(3.0, abs=0.05)
        peak = np.max(np.abs(item.sum(axis=0)))
        assert peak <= 0.99 + 1e-6
        if peak < 0.98:  # not scaled down for headroom: the levels sit 1.5 dB either side of the drawn -20 dBFS
            assert 20 * np.log10(first) == pytest.approx(-18.5, abs=0.05)
            assert 20 * np.log10(second) == pytest.approx(-21.5, abs=0.05)
        # the quiet rain clip is levelled like the others; looped short dogs fill the window but for short gaps
        assert active_fraction(item[0]) > 0.75 and active_fraction(item[1]) > 0.75


def test_short_clips_are_padded_at_the_start_or_placed(hierarchy_corpus):
    data = ClipDataset(hierarchy_corpus, "train", seed=0)
    dog = next(i for i, c in enumerate(data.clips) if _canonical(c.label) == "dog")
    rng = np.random.default_rng(0)
    padded = data.sample(dog, rng).samples
    assert np.any(padded[:100]) and not np.any(padded[int(0.8 * SR) + 10 :])
    starts = set()
    for _ in range(20):
        placed = data.sample(dog, rng, place=True, p_loop=0.0).samples
        nonzero = np.flatnonzero(placed)
        assert len(nonzero) and nonzero[-1] - nonzero[0] < int(0.8 * SR)
        starts.add(int(nonzero[0]) // SR)
    assert len(starts) > 1  # not always at the window's start
    looped = data.sample(dog, rng, place=True, p_loop=1.0).samples
    assert len(looped) == N and active_fraction(looped) > 0.75  # gaps of at most 0.25 s between 0.8 s repeats


def test_mix_recipe_rejects_bad_values():
    with pytest.raises(ClipsepError, match="levels must be one of"):
        MixRecipe.from_dict({"levels": "loud"})
    with pytest.raises(ClipsepError, match="unknown key"):
        MixRecipe.from_dict({"ratio": [0, 1]})
    with pytest.raises(ClipsepError, match="low <= high"):
        MixRecipe.from_dict({"ratio_db": [5, -5]})
    with pytest.raises(ClipsepError, match="at most 0 dBFS"):
        MixRecipe.from_dict({"level_dbfs": [-10, 6]})
    with pytest.raises(ClipsepError, match="p_loop"):
        MixRecipe.from_dict({"p_loop": 2})


def test_active_rms_ignores_silence():
    tone = _tone(1.0, 440)
    padded = np.concatenate([np.zeros(3 * SR, np.float32), tone])
    assert active_rms(padded) == pytest.approx(active_rms(tone), rel=0.01)
    assert active_rms(np.zeros(1000)) == 0.0
    assert active_fraction(padded) == pytest.approx(0.25, abs=0.01)


def test_film_starts_as_late_fusion_and_conditions_the_decoder_per_query():
    import torch

    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model.separator import CLIPSepSeparator
    from clipsep_rt.training.baselines import source_logits

    torch.manual_seed(0)
    config = ModelConfig(depth=5, ngf=4, channels=8, query_dim=16, noise_heads=2)
    film = CLIPSepSeparator(ModelConfig(**{**config.to_dict(), "film": True})).eval()
    late = CLIPSepSeparator(config).eval()
    late.load_state_dict({k: v for k, v in film.state_dict().items() if not k.startswith("unet.film")})
    log_mag, embeddings = torch.randn(2, 1, 64, 64), torch.randn(2, 3, 16)
    with torch.no_grad():
        a, b = source_logits(film, log_mag, embeddings), source_logits(late, log_mag, embeddings)
        assert a.query.shape == (2, 3, 64, 64) and a.noise.shape == (2, 3, 2, 64, 64)
        assert torch.allclose(a.query, b.query, atol=1e-5)  # zero-initialised FiLM is the identity
        film.unet.film.bias.normal_()
        moved = source_logits(film, log_mag, embeddings)
        assert not torch.allclose(moved.query, b.query, atol=1e-3)
        # one item's queries decoded together equal each decoded alone (no mixing across queries)
        alone = film(log_mag[:1], embeddings[0, 1:2])
        assert torch.allclose(alone.query[0, 0], moved.query[0, 1], atol=1e-4)
    with pytest.raises(ValueError, match="FiLM"):
        film.features(log_mag)


def test_runtime_refuses_a_film_checkpoint(tmp_path):
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model.checkpoint import checkpoint_from_model, save_checkpoint
    from clipsep_rt.model.separator import CLIPSepSeparator
    from clipsep_rt.runtime.engines.loader import open_source

    model = CLIPSepSeparator(ModelConfig(depth=5, ngf=4, channels=8, query_dim=16, noise_heads=2, film=True))
    save_checkpoint(checkpoint_from_model(model, "fake:hash"), tmp_path / "film.safetensors")
    with pytest.raises(ClipsepError, match="FiLM-conditioned"):
        open_source(tmp_path / "film.safetensors")
