"""The training configuration: `TrainConfig`, read from a TOML or JSON file (`clipsep-rt train`)
and saved with each run's state (`to_dict`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from clipsep_rt.config import PAPER_QUERY_ENCODER, ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.training.augment import AugmentConfig
from clipsep_rt.training.datasets import SAMPLING_MODES, MixRecipe
from clipsep_rt.training.schedule import TrainingRecipe

MODEL_TYPES = ("clipsep", "nit", "labelsep", "pit")
TRAIN_PRECISIONS = ("auto", "bf16", "fp32")
PATH_KEYS = ("index", "out_dir", "clip_weights", "frame_embeddings", "init_from", "dev_set")


@dataclass
class TrainConfig:
    index: Path  # the index CSV (see training.index)
    out_dir: Path
    model_type: str = "nit"  # clipsep | nit | labelsep | pit
    model: ModelConfig = field(default_factory=ModelConfig)
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    query_encoder: str = PAPER_QUERY_ENCODER  # encoder spec (clipsep/nit)
    clip_weights: Path | None = None  # local open_clip weights for query_encoder
    frame_embeddings: Path | None = None  # image queries: `clipsep-rt embed-frames` cache (default out_dir/frame_embeddings.npz)
    steps: int | None = None  # None: recipe.steps
    batch_size: int | None = None  # None: recipe.batch_size
    val_every: int = 1000
    val_batches: int = 4
    checkpoint_every: int | None = None  # None: val_every
    out_dir_resume: bool = True  # resume from out_dir/last.state.pt when present
    device: str = "cpu"
    tensorboard: bool = False  # also log to out_dir/tensorboard (needs the train extra)
    precision: str = "auto"  # auto (bf16 autocast on CUDA and on CPUs with native bf16) | bf16 | fp32
    noisy: bool = False
    sampling: str = "classes"  # classes (each class a target equally often) | clips (as often as it has clips) | tempered
    class_exponent: float = 0.5  # tempered sampling: a class is drawn as often as (its clips) ** class_exponent
    mix: MixRecipe = field(default_factory=MixRecipe)  # levels, ratios, short clips, class hierarchy (datasets.MixRecipe)
    # The real-sound dev set (`training.devset`, a devset.json): scored every `dev_every` steps
    # (None: val_every) and best.safetensors chosen on its label-query SDRi.
    dev_set: Path | None = None
    dev_every: int | None = None
    # Streaming-aware loss: the last `stream_edge_frames` frames of each window count
    # `stream_edge_weight` times as much (targets.stream_edge_emphasis); 0 frames: uniform.
    stream_edge_frames: int = 0
    stream_edge_weight: float = 1.0
    # Negative queries (clipsep/nit): each item also queries a class absent from its mixture;
    # that mask's BCE against silence is added `negative_weight` times (losses.negative_query_loss).
    negative_weight: float = 0.0
    init_from: Path | None = None  # warm start: separator weights to begin with (a fresh run only, not a resume)
    seed: int = 0
    clip_samples: int = 65_535
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training sources only; off by default (see training.augment)

    def __post_init__(self) -> None:
        self.index = Path(self.index)
        self.out_dir = Path(self.out_dir)
        for key in ("clip_weights", "frame_embeddings", "init_from", "dev_set"):
            if getattr(self, key) is not None:
                setattr(self, key, Path(getattr(self, key)))
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig.from_dict(self.augment)
        self.mix = MixRecipe.from_dict(self.mix)
        if self.class_exponent < 0:
            raise ClipsepError(f"train config: class_exponent must be >= 0, got {self.class_exponent}")
        if self.dev_every is not None and self.dev_every < 1:
            raise ClipsepError("train config: dev_every must be positive")
        if isinstance(self.recipe, dict):
            known = {f.name for f in fields(TrainingRecipe)}
            unknown = set(self.recipe) - known
            if unknown:
                raise ClipsepError(f"train config: unknown recipe key(s) {', '.join(sorted(unknown))}")
            self.recipe = TrainingRecipe(**self.recipe)
        if self.model_type not in MODEL_TYPES:
            raise ClipsepError(f"train config: model_type must be one of {', '.join(MODEL_TYPES)}, got {self.model_type!r}")
        if self.model_type == "nit" and self.model.noise_heads < 2:
            raise ClipsepError("train config: model_type nit needs model.noise_heads >= 2")
        if self.model_type != "nit" and self.model.noise_heads:
            self.model = replace(self.model, noise_heads=0)
        if self.sampling not in SAMPLING_MODES:
            raise ClipsepError(f"train config: sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ClipsepError(f"train config: precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {self.precision!r}")
        if self.stream_edge_frames < 0 or self.stream_edge_weight <= 0:
            raise ClipsepError("train config: stream_edge_frames must be >= 0 and stream_edge_weight positive")
        if self.negative_weight < 0:
            raise ClipsepError("train config: negative_weight must be >= 0")
        if self.negative_weight and self.model_type not in ("clipsep", "nit"):
            raise ClipsepError(f"train config: negative_weight needs a queried model (clipsep, nit), not {self.model_type}")
        if self.total_steps < 1 or self.batch < 1 or self.val_every < 1:
            raise ClipsepError("train config: steps, batch_size and val_every must be positive")

    @property
    def total_steps(self) -> int:
        return int(self.steps if self.steps is not None else self.recipe.steps)

    @property
    def batch(self) -> int:
        return int(self.batch_size if self.batch_size is not None else self.recipe.batch_size)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["augment"] = self.augment.to_dict()
        data["mix"] = self.mix.to_dict()
        for key in PATH_KEYS:
            data[key] = None if data[key] is None else str(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict, base: Path | None = None) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ClipsepError(f"train config: unknown key(s) {', '.join(sorted(unknown))}")
        data = dict(data)
        for key in PATH_KEYS:
            if data.get(key) is not None and base is not None and not Path(data[key]).is_absolute():
                data[key] = base / data[key]
        try:
            return cls(**data)
        except TypeError as error:
            raise ClipsepError(f"train config: {error}") from None
        except ValueError as error:
            raise ClipsepError(f"train config: {error}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """A .json or .toml file; relative paths are relative to the file's folder."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ClipsepError(f"train config {path}: cannot be read ({error.strerror or error})") from None
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as error:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
            raise ClipsepError(f"train config {path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({error})") from None
        if not isinstance(data, dict):
            raise ClipsepError(f"train config {path}: expected a table of settings")
        return cls.from_dict(data, base=path.resolve().parent)
