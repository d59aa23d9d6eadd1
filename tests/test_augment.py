"""Training augmentation (audiomentations): seeded determinism, ranges, config, off by default."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("audiomentations")

from clipsep_rt.errors import ClipsepError
from clipsep_rt.training.augment import AugmentConfig, Augmenter
from clipsep_rt.training.train_config import TrainConfig

SR = 16000


def _clip(seed=0, n=32000):
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def test_same_seed_same_output_and_length():
    aug = Augmenter(AugmentConfig(enabled=True, p_gain=1, p_eq=1, p_reverb=1, p_pitch=1, p_time=1), SR)
    x = _clip()
    a = aug(x, np.random.default_rng(7))
    b = aug(x, np.random.default_rng(7))
    c = aug(x, np.random.default_rng(8))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0


def test_global_random_state_untouched():
    aug = Augmenter(AugmentConfig(enabled=True, p_gain=1, p_reverb=0), SR)
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    aug(_clip(), np.random.default_rng(0))
    assert np.random.random() == expected


def test_gain_stays_in_range():
    cfg = AugmentConfig(enabled=True, gain_db=(-6.0, 3.0), p_gain=1, p_eq=0, p_reverb=0, p_pitch=0, p_time=0)
    aug = Augmenter(cfg, SR)
    x = _clip()
    rms = lambda v: float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))  # noqa: E731
    gains = [20 * np.log10(rms(aug(x, np.random.default_rng(s))) / rms(x)) for s in range(20)]
    assert min(gains) >= -6.01 and max(gains) <= 3.01 and max(gains) - min(gains) > 1.0


def test_probability_zero_is_identity():
    cfg = AugmentConfig(enabled=True, p_gain=0, p_eq=0, p_reverb=0, p_pitch=0, p_time=0)
    x = _clip()
    np.testing.assert_allclose(Augmenter(cfg, SR)(x, np.random.default_rng(1)), x, atol=1e-7)


def test_pitch_and_time_change_the_sound():
    x = _clip()
    for cfg in (AugmentConfig(enabled=True, p_gain=0, p_eq=0, p_reverb=0, p_pitch=1, p_time=0, pitch_semitones=(2, 2)),
                AugmentConfig(enabled=True, p_gain=0, p_eq=0, p_reverb=0, p_pitch=0, p_time=1, time_rate=(0.8, 0.8))):
        y = Augmenter(cfg, SR)(x, np.random.default_rng(0))
        assert y.shape == x.shape and np.abs(y - x).max() > 0.05


def test_config_validation_and_train_config(tmp_path):
    with pytest.raises(ClipsepError, match="p_gain"):
        AugmentConfig.from_dict({"p_gain": 2})
    with pytest.raises(ClipsepError, match="unknown"):
        AugmentConfig.from_dict({"reverb": 1})
    with pytest.raises(ClipsepError, match="gain_db"):
        AugmentConfig.from_dict({"gain_db": [3, -3]})
    default = TrainConfig(index=tmp_path / "i.csv", out_dir=tmp_path / "o")
    assert default.augment.enabled is False  # off unless asked
    on = TrainConfig.from_dict({"index": "i.csv", "out_dir": "o", "augment": {"enabled": True, "gain_db": [-3, 3]}}, base=tmp_path)
    assert on.augment.enabled and on.augment.gain_db == (-3.0, 3.0)
    assert TrainConfig.from_dict(on.to_dict()).augment == on.augment


def test_sampler_augments_training_sources_only_when_given(tmp_path):
    import soundfile as sf

    from clipsep_rt.training.datasets import ClipDataset, MixtureSampler
    from clipsep_rt.training.index import Clip

    clips = []
    for name, freq in (("cow", 200), ("violin", 900), ("rain", 2500)):
        path = tmp_path / f"{name}.wav"
        sf.write(path, 0.3 * np.sin(2 * np.pi * freq * np.arange(40000) / SR), SR)
        clips.append(Clip(path, None, 0, name, "train", name, 2.5))
    data = ClipDataset(clips, "train", clip_samples=16000)
    aug = Augmenter(AugmentConfig(enabled=True, p_gain=1, gain_db=(-12, -6), p_eq=0, p_reverb=0, p_pitch=0, p_time=0), SR)
    plain = MixtureSampler(data, 2, seed=3).sample().sources
    augmented = MixtureSampler(data, 2, seed=3, augment=aug).sample().sources
    again = MixtureSampler(data, 2, seed=3, augment=aug).sample().sources
    assert plain.shape == augmented.shape
    assert float(augmented.abs().max()) < float(plain.abs().max())  # 6-12 dB quieter
    assert torch_equal(augmented, again)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())
