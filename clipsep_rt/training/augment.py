"""Training-time augmentation of source clips through audiomentations (off by default).

Gain, seven-band parametric equalisation, room reverberation (pyroomacoustics' image-source
room simulator, through audiomentations' RoomSimulator), pitch shift and time stretch, each
applied with its own probability, seeded: the same seed and input give the same output.
Only the training sampler uses it (`MixtureSampler(augment=...)`); validation and evaluation
never do. Why audiomentations: it is maintained, works on numpy mono clips at any rate with
per-transform probabilities and ranges, and wraps pyroomacoustics for rooms, so nothing here
reimplements DSP.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

import numpy as np

from clipsep_rt.errors import ClipsepError


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = False
    gain_db: tuple[float, float] = (-6.0, 6.0)
    p_gain: float = 0.5
    eq_db: tuple[float, float] = (-6.0, 6.0)  # per band of the seven-band EQ
    p_eq: float = 0.3
    p_reverb: float = 0.25
    room_rt60_s: tuple[float, float] = (0.2, 0.8)
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    p_pitch: float = 0.2
    time_rate: tuple[float, float] = (0.9, 1.1)
    p_time: float = 0.2

    @classmethod
    def from_dict(cls, data: dict | None) -> AugmentConfig:
        return settings_from_dict(cls, data, "augment config")

    def validate(self) -> None:
        for name in ("p_gain", "p_eq", "p_reverb", "p_pitch", "p_time"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ClipsepError(f"augment config: {name} must be in [0, 1], got {value}")
        for name in ("gain_db", "eq_db", "room_rt60_s", "pitch_semitones", "time_rate"):
            low, high = getattr(self, name)
            if low > high:
                raise ClipsepError(f"augment config: {name} must be (low, high) with low <= high, got {(low, high)}")
        if self.time_rate[0] <= 0 or self.room_rt60_s[0] <= 0:
            raise ClipsepError("augment config: time_rate and room_rt60_s must be positive")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def settings_from_dict(cls, data, what: str):
    """A frozen settings dataclass with a `validate()` from a config table (TOML/JSON): None gives
    the defaults, an instance is kept, unknown keys are refused naming `what`, lists become
    float tuples (ranges), and the result is validated."""
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ClipsepError(f"{what}: unknown key(s) {', '.join(sorted(unknown))}")
    values = {k: tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v for k, v in data.items()}
    settings = cls(**values)
    settings.validate()
    return settings


class Augmenter:
    """Seeded augmentation of mono float32 clips: `__call__(x, rng)` keeps the length."""

    def __init__(self, config: AugmentConfig, sample_rate: int = 16000):
        try:
            import audiomentations as am
        except ImportError as error:
            raise ClipsepError(f"augmentation needs audiomentations (the train extra): {error}") from None
        config.validate()
        self.config = config
        self.sample_rate = sample_rate
        c = config
        steps = [
            am.Gain(min_gain_db=c.gain_db[0], max_gain_db=c.gain_db[1], p=c.p_gain),
            am.SevenBandParametricEQ(min_gain_db=c.eq_db[0], max_gain_db=c.eq_db[1], p=c.p_eq),
            am.PitchShift(min_semitones=c.pitch_semitones[0], max_semitones=c.pitch_semitones[1], p=c.p_pitch),
            am.TimeStretch(min_rate=c.time_rate[0], max_rate=c.time_rate[1], leave_length_unchanged=True, p=c.p_time),
        ]
        if c.p_reverb > 0:
            try:
                import pyroomacoustics  # noqa: F401
            except ImportError as error:
                raise ClipsepError(f"room reverberation needs pyroomacoustics (the train extra): {error}") from None
            steps.append(am.RoomSimulator(calculation_mode="rt60", min_target_rt60=c.room_rt60_s[0],
                                          max_target_rt60=c.room_rt60_s[1], use_ray_tracing=False,
                                          leave_length_unchanged=True, max_order=6, p=c.p_reverb))
        self.chain = am.Compose(steps, shuffle=False)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0 or not np.any(x):
            return x
        # audiomentations draws from Python's `random` and numpy's global generator: seed both
        # from `rng` for this call, and restore them so the caller's global state is untouched.
        seed = int(rng.integers(0, 2**31 - 1))
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            y = self.chain(samples=x, sample_rate=self.sample_rate)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        if len(y) != len(x):  # guard: every step leaves the length unchanged, keep it so
            y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(np.max(np.abs(y), initial=0.0))
        return y / peak if peak > 1.0 else y
