"""Reading a built dev set back: `load_devset` (its folder or devset.json) gives a `DevSet` of
`DevMixture` rows whose target and interference audio `DevSet.load_mixture` reads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError

VERSION = 1


@dataclass(frozen=True)
class DevMixture:
    index: int
    target_class: str
    target_labels: list[str]
    paraphrase: str
    interference_class: str
    interference_labels: list[str]
    unrelated_class: str
    unrelated_labels: list[str]
    tir_db: float
    target_audio: str
    interference_audio: str
    target_source: str
    interference_source: str
    target_category: str
    extra: dict = field(default_factory=dict)


_MIXTURE_FIELDS = tuple(f for f in DevMixture.__dataclass_fields__ if f != "extra")


@dataclass(frozen=True)
class DevSet:
    root: Path
    sample_rate: int
    window_samples: int
    seed: int
    classes: dict[str, int]
    mixtures: list[DevMixture]

    def __len__(self) -> int:
        return len(self.mixtures)

    def load_mixture(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(target, interference) float32 arrays of `window_samples`; their sum is the mixture."""
        import soundfile as sf

        mixture = self.mixtures[index]
        out = []
        for rel in (mixture.target_audio, mixture.interference_audio):
            path = self.root / rel
            try:
                samples, rate = sf.read(path, dtype="float32", always_2d=False)
            except (OSError, RuntimeError) as exc:
                raise ClipsepError(f"{path}: cannot read dev-set audio ({exc})") from None
            if rate != self.sample_rate or samples.ndim != 1 or len(samples) != self.window_samples:
                raise ClipsepError(f"{path}: expected mono {self.window_samples} samples at {self.sample_rate} Hz, "
                                   f"got shape {samples.shape} at {rate} Hz")
            out.append(samples)
        return out[0], out[1]


def load_devset(path: str | os.PathLike) -> DevSet:
    """Read a dev set (its folder or its devset.json)."""
    path = Path(path)
    manifest_path = path / "devset.json" if path.is_dir() else path
    try:
        data = json.loads(manifest_path.read_text())
    except OSError as exc:
        raise ClipsepError(f"{manifest_path}: cannot read the dev set ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ClipsepError(f"{manifest_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ClipsepError(f"{manifest_path}: not a version-{VERSION} dev set manifest")
    try:
        mixtures = [
            DevMixture(**{k: m[k] for k in _MIXTURE_FIELDS}, extra={k: v for k, v in m.items() if k not in _MIXTURE_FIELDS})
            for m in data["mixtures"]
        ]
        return DevSet(manifest_path.parent, int(data["sample_rate"]), int(data["window_samples"]), int(data["seed"]),
                      dict(data["classes"]), mixtures)
    except (KeyError, TypeError) as exc:
        raise ClipsepError(f"{manifest_path}: dev set manifest lacks a field ({exc})") from None
