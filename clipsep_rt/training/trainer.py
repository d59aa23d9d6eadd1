"""Mix-and-separate training of CLIPSep, CLIPSep-NIT, LabelSep and PIT.

`train(config)` writes into `config.out_dir`:

- `best.safetensors`: the project checkpoint with the best dev-set SDRi when `dev_set` is
  given (the real-sound dev set, `training.dev_score`), else with the lowest validation
  loss (its metadata names the query encoder); for labelsep/pit, `best.queries.npz` holds the
  query vectors to use with it (class labels, or "output0"/"output1"), in the
  `save_query_embeddings` format.
- `last.safetensors` + `last.state.pt` (optimizer, scheduler, step, RNG states, best val
  loss, non-separator weights): training resumes from them when run again.
- `log.csv`: step, lr, loss, val_loss, query_activation, noise_activation,
  negative_activation (mean mask of the negative queries; empty without them).
- `dev_log.csv` (with `dev_set`): every `dev_every` steps the step, mixtures seen, training
  wall time, dev SDRi (label, paraphrase), the unrelated query's level and whether it is the
  best so far.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from clipsep_rt.config import PAPER_QUERY_ENCODER, ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.checkpoint import checkpoint_from_model, load_checkpoint, save_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.optional import import_optional
from clipsep_rt.query.vectors import save_query_embeddings
from clipsep_rt.model.hardware import cpu_has_native_bf16
from clipsep_rt.dsp.spectral import SpectralFrontEnd
from clipsep_rt.training.augment import AugmentConfig, Augmenter
from clipsep_rt.training.baselines import LabelSepSeparator, PITSeparator, source_logits
from clipsep_rt.training.datasets import (
    SAMPLING_MODES,
    ClipDataset,
    MixRecipe,
    MixtureBatch,
    MixtureSampler,
    QueryTable,
    class_key,
    load_frame_embeddings,
    precompute_frame_embeddings,
    text_embedder,
)
from clipsep_rt.training.index import read_index
from clipsep_rt.training.losses import clipsep_loss, negative_query_loss, nit_loss, pit_loss
from clipsep_rt.training.schedule import TrainingRecipe, make_optimizer, make_scheduler
from clipsep_rt.training.targets import MixBatch, mix_and_warp, stream_edge_emphasis

MODEL_TYPES = ("clipsep", "nit", "labelsep", "pit")
TRAIN_PRECISIONS = ("auto", "bf16", "fp32")
PATH_KEYS = ("index", "out_dir", "clip_weights", "frame_embeddings", "init_from", "dev_set")
_LOG = logging.getLogger(__name__)
LOG_COLUMNS = ("step", "lr", "loss", "val_loss", "query_activation", "noise_activation", "negative_activation")
DEV_LOG_COLUMNS = ("step", "mixtures_seen", "wall_s", "sdri_label", "sdri_paraphrase", "unrelated_db", "best")


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


# ---------------------------------------------------------------------------- pieces


def uses_bf16_autocast(precision: str, device: torch.device) -> bool:
    """Whether the forward pass runs under bf16 autocast (losses are always computed in fp32)."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def make_targets(batch: MixtureBatch, front_end: SpectralFrontEnd, device, frame_weights: torch.Tensor | None = None) -> MixBatch:
    """Targets of a mixture batch. In noisy mode a source is its clip plus the off-screen
    sound added to it, so the target masks include that noise (as a video's audio track
    would) while the query describes the clip's class only. `frame_weights` (T,) scale the
    loss weights per frame (the streaming-aware loss)."""
    sources = batch.sources.to(device)
    if batch.noise is not None:
        sources = sources + batch.noise.to(device)
    targets = mix_and_warp(sources, front_end)
    if frame_weights is None:
        return targets
    return targets._replace(weight=targets.weight * frame_weights.to(targets.weight.device))


class StepResult(NamedTuple):
    loss: torch.Tensor  # scalar
    query_activation: float  # mean query mask of the mixture's own queries
    noise_activation: float  # mean noise-head mask (nit), else 0
    negative_activation: float | None  # mean query mask of the negative queries, None without them


class _Step:
    """Forward + loss for one model type."""

    def __init__(self, config: TrainConfig, model: torch.nn.Module, queries: QueryTable | None, classes: list[str]):
        self.config = config
        self.model = model
        self.queries = queries
        self.class_row = {name: i for i, name in enumerate(classes)}

    def __call__(self, batch: MixtureBatch, targets: MixBatch, device) -> StepResult:
        kind = self.config.model_type
        recipe = self.config.recipe
        if kind == "pit":
            logits = self.model(targets.log_mag).float()
            loss = pit_loss(logits, targets.masks, targets.weight).loss
            return StepResult(loss, torch.sigmoid(logits).mean().item(), 0.0, None)
        use_negatives = self.config.negative_weight > 0 and batch.negative_queries is not None
        if kind == "labelsep":
            labels = torch.tensor([[self.class_row[c] for c in item] for item in batch.classes], device=device)
            out = self.model(targets.log_mag, labels)
        else:
            queries = batch.queries
            if use_negatives:  # the absent class rides along as one more source slot: (B, S + 1, D)
                queries = [[*item, negative] for item, negative in zip(batch.queries, batch.negative_queries)]
            embeddings = self.queries.lookup(queries).to(device)
            out = source_logits(self.model, targets.log_mag, embeddings, noise_heads=(kind == "nit"))
        query = out.query.float()
        noise = out.noise.float()
        extra, negative_activation = 0.0, None
        if use_negatives:
            negative = query[:, -1]  # (B, F, T)
            query, noise = query[:, :-1], noise[:, :-1]
            extra = self.config.negative_weight * negative_query_loss(negative, targets.weight)
            negative_activation = torch.sigmoid(negative).mean().item()
        if kind == "nit":
            result = nit_loss(query, noise, targets.masks, targets.weight, recipe.gamma, recipe.reg_weight)
            return StepResult(result.loss + extra, torch.sigmoid(query).mean().item(), result.noise_activation.item(), negative_activation)
        loss = clipsep_loss(query, targets.masks, targets.weight) + extra
        return StepResult(loss, torch.sigmoid(query).mean().item(), 0.0, negative_activation)


def _warm_start(separator: CLIPSepSeparator, path: Path, encoder_id: str | None) -> None:
    """Load `path`'s weights into `separator`: same architecture and query encoder, or an error."""
    checkpoint = load_checkpoint(path)
    if checkpoint.model_config != separator.config:
        raise ClipsepError(f"init_from {path}: its model {checkpoint.model_config} differs from the config's {separator.config}")
    if encoder_id is not None and checkpoint.query_encoder != encoder_id:
        raise ClipsepError(f"init_from {path}: trained with query encoder {checkpoint.query_encoder}, not {encoder_id}")
    separator.load_state_dict(checkpoint.state_dict)


def _separator(model: torch.nn.Module) -> CLIPSepSeparator:
    return model if isinstance(model, CLIPSepSeparator) else model.separator


def _extra_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("separator.")} if not isinstance(
        model, CLIPSepSeparator
    ) else {}


def _query_vectors(config: TrainConfig, model: torch.nn.Module, classes: list[str]) -> tuple[list[str], np.ndarray] | None:
    if config.model_type == "labelsep":
        return classes, model.labels.weight.detach().float().cpu().numpy()
    if config.model_type == "pit":
        vectors = model.queries.detach().float().cpu().numpy()
        return [f"output{i}" for i in range(len(vectors))], vectors
    return None


def _rng_state(samplers: dict[str, MixtureSampler]) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "samplers": {name: json.dumps(s.rng.bit_generator.state) for name, s in samplers.items()},
    }


def _restore_rng(state: dict, samplers: dict[str, MixtureSampler]) -> None:
    torch.set_rng_state(state["torch"])
    for name, text in state.get("samplers", {}).items():
        if name in samplers:
            samplers[name].rng.bit_generator.state = json.loads(text)


def _tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter on `folder` (a resumed run appends to the same folder)."""
    import_optional("tensorboard", "train")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))


def read_dev_log(run_dir: Path) -> list[dict]:
    """The rows of a run's dev_log.csv (DEV_LOG_COLUMNS, as strings); [] without one."""
    path = Path(run_dir) / "dev_log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _truncate_log(log_path: Path, step: int, columns: tuple[str, ...] = LOG_COLUMNS) -> None:
    """Drop the log rows after `step` (written by a run stopped after its last checkpoint)."""
    if not log_path.is_file():
        with open(log_path, "w", newline="") as handle:
            csv.writer(handle).writerow(columns)
        return
    with open(log_path, newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) <= step]
    tmp = log_path.with_name(log_path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)
    os.replace(tmp, log_path)


# ---------------------------------------------------------------------------- train


def train(
    config: TrainConfig,
    log: Callable[[str], None] = _LOG.info,
    text_encoder=None,
    image_encoder=None,
    progress: bool = True,
) -> Path:
    """Train; returns the best checkpoint's path. `text_encoder` / `image_encoder` replace
    building `config.query_encoder` (an object with encode_text / encode_image and encoder_id)."""
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    clips = read_index(config.index)
    spectral = SpectralConfig()
    train_data = ClipDataset(clips, "train", config.clip_samples, config.seed, spectral.sample_rate)
    val_split = "val" if any(c.split == "val" for c in clips) else "train"
    if val_split == "train":
        log("no val split in the index: validating on fixed train batches")
    val_data = ClipDataset(clips, val_split, config.clip_samples, config.seed + 1, spectral.sample_rate)
    augment = Augmenter(config.augment, spectral.sample_rate) if config.augment.enabled else None
    negatives = config.negative_weight > 0
    mixing = dict(sampling=config.sampling, class_exponent=config.class_exponent, recipe=config.mix, negatives=negatives)
    sampler = MixtureSampler(train_data, config.batch, config.noisy, config.seed, augment=augment, **mixing)
    query_type = sampler.query_type

    classes = sorted({class_key(c) for c in clips})
    queries: QueryTable | None = None
    embed_texts = None  # texts -> embeddings, as training embeds its labels (for the dev set)
    encoder_id: str | None
    if config.model_type in ("clipsep", "nit"):
        if query_type == "image":
            cache = config.frame_embeddings or out / "frame_embeddings.npz"
            queries = None if image_encoder is not None else load_frame_embeddings(clips, cache, config.query_encoder)
            if queries is None:
                encoder = image_encoder
                if encoder is None:
                    from clipsep_rt.query.encoders.registry import build_encoder

                    encoder = build_encoder(config.query_encoder, str(device), config.clip_weights)
                queries = precompute_frame_embeddings(clips, encoder, cache)
        else:
            from clipsep_rt.query.embedder import QueryEncoderOptions

            options = QueryEncoderOptions(clip_weights=config.clip_weights)
            embed_texts, _ = text_embedder(text_encoder, config.query_encoder, options, str(device))
            queries = QueryTable.for_texts(clips, text_encoder, config.query_encoder, options, str(device))
        if queries.dim != config.model.query_dim:
            raise ClipsepError(
                f"query encoder {queries.encoder_id} gives {queries.dim}-d embeddings but model.query_dim is {config.model.query_dim}"
            )
        encoder_id = queries.encoder_id
        model: torch.nn.Module = CLIPSepSeparator(config.model)
    elif config.model_type == "labelsep":
        if query_type != "text":
            log("labelsep on a video dataset: one learned query per source id")
        model = LabelSepSeparator(len(classes), config.model)
        encoder_id = "labelsep"
    else:
        model = PITSeparator(config.model)
        encoder_id = "pit"
    model.to(device)
    front_end = SpectralFrontEnd(spectral).to(device)
    optimizer = make_optimizer(model.parameters(), config.recipe)
    scheduler = make_scheduler(optimizer, config.recipe)
    step_fn = _Step(config, model, queries, classes)

    val_sampler = MixtureSampler(val_data, config.batch, config.noisy, config.seed + 1, **mixing)
    val_set = [val_sampler.sample() for _ in range(config.val_batches)]
    dev = None
    if config.dev_set is not None:
        if embed_texts is None:
            raise ClipsepError(f"dev_set needs a text-queried model (clipsep or nit with text labels), not {config.model_type}")
        from clipsep_rt.training.dev_score import DevScorer

        dev = DevScorer(config.dev_set, embed_texts)
        log(f"dev set {config.dev_set}: {len(dev)} mixtures, scored every {config.dev_every or config.val_every} steps")

    last_ckpt, last_state, best_ckpt = out / "last.safetensors", out / "last.state.pt", out / "best.safetensors"
    log_path, dev_log_path = out / "log.csv", out / "dev_log.csv"
    start, best_val, best_dev, wall_s, mixtures_seen = 0, math.inf, -math.inf, 0.0, 0
    samplers = {"train": sampler}
    if config.out_dir_resume and last_state.is_file() and last_ckpt.is_file():
        state = torch.load(last_state, map_location="cpu", weights_only=False)
        if state.get("model_type") != config.model_type:
            raise ClipsepError(f"{last_state}: was trained as {state.get('model_type')}, not {config.model_type}")
        _separator(model).load_state_dict(load_checkpoint(last_ckpt).state_dict)
        if state.get("extra"):
            model.load_state_dict(state["extra"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _restore_rng(state["rng"], samplers)
        start, best_val = int(state["step"]), float(state["best_val"])
        best_dev, wall_s = float(state.get("best_dev", -math.inf)), float(state.get("wall_s", 0.0))
        mixtures_seen = int(state.get("mixtures_seen", start * config.batch))
        log(f"resuming from step {start} (best val loss {best_val:.4f}, best dev SDRi {best_dev:.2f} dB)")
        trained_sampling = state.get("config", {}).get("sampling", "classes")
        if trained_sampling != config.sampling:
            best_val = math.inf  # the validation mixtures are drawn differently now
            log(f"sampling changed from {trained_sampling} to {config.sampling}: the best validation loss starts afresh")
        _truncate_log(log_path, start)
        if dev is not None:
            _truncate_log(dev_log_path, start, DEV_LOG_COLUMNS)
    else:
        if config.init_from is not None:
            _warm_start(_separator(model), config.init_from, encoder_id)
            log(f"starting from the weights of {config.init_from} (fresh optimiser and schedule)")
        with open(log_path, "w", newline="") as handle:
            csv.writer(handle).writerow(LOG_COLUMNS)
        if dev is not None:
            with open(dev_log_path, "w", newline="") as handle:
                csv.writer(handle).writerow(DEV_LOG_COLUMNS)

    provenance = {"trained_by": "clipsep-rt train", "model_type": config.model_type, "index": str(config.index)}
    use_amp = uses_bf16_autocast(config.precision, device)
    log(f"training on {device} in {'bf16 autocast' if use_amp else 'fp32'}")

    window_frames = config.clip_samples // spectral.hop_length + 1
    frame_weights = None
    if config.stream_edge_frames:
        frame_weights = stream_edge_emphasis(window_frames, config.stream_edge_frames, config.stream_edge_weight)

    def forward(batch: MixtureBatch):
        targets = make_targets(batch, front_end, device, frame_weights)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return step_fn(batch, targets, device)

    def validate() -> float:
        model.eval()
        with torch.no_grad():
            losses = [forward(batch).loss.item() for batch in val_set]
        model.train()
        return float(np.mean(losses))

    def save(path: Path, step: int, val: float | None, dev_score=None) -> None:
        facts = {**provenance, "step": step, "val_loss": val, "mixtures_seen": mixtures_seen, "train_wall_s": round(wall_s)}
        if dev_score is not None:
            facts["dev"] = dev_score.as_row()
        ckpt = checkpoint_from_model(_separator(model), encoder_id, spectral, facts)
        save_checkpoint(ckpt, path)
        vectors = _query_vectors(config, model, classes)
        if vectors is not None:
            save_query_embeddings(path.with_suffix(".queries.npz"), *vectors)

    def score_dev(step: int) -> None:
        nonlocal best_dev
        score = dev.score(_separator(model))
        better = score.sdri_label > best_dev
        if better:
            best_dev = score.sdri_label
            save(best_ckpt, step, None, score)
        log(f"step {step}: {score}{' (best)' if better else ''}")
        with open(dev_log_path, "a", newline="") as handle:
            csv.writer(handle).writerow([step, mixtures_seen, f"{wall_s:.0f}", *(f"{v:.3f}" for v in score.as_row().values()), int(better)])

    checkpoint_every = config.checkpoint_every or config.val_every
    dev_every = config.dev_every or config.val_every
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.total_steps, initial=start, desc=f"train {config.model_type}", leave=False)
    board = _tensorboard_writer(out / "tensorboard") if config.tensorboard else None
    model.train()
    try:
        with open(log_path, "a", newline="") as handle:
            writer = csv.writer(handle)
            for step in range(start + 1, config.total_steps + 1):
                step_started = time.monotonic()
                lr = optimizer.param_groups[0]["lr"]
                batch = sampler.sample()
                loss, query_act, noise_act, negative_act = forward(batch)
                if not torch.isfinite(loss):
                    raise ClipsepError(f"training diverged at step {step}: loss is {loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.recipe.grad_clip)
                optimizer.step()
                scheduler.step()
                mixtures_seen += config.batch
                wall_s += time.monotonic() - step_started
                val_loss = None
                if step % config.val_every == 0 or step == config.total_steps:
                    val_loss = validate()
                    if val_loss < best_val:
                        best_val = val_loss
                        if dev is None:
                            save(best_ckpt, step, val_loss)
                    log(f"step {step}: loss {loss.item():.4f} val {val_loss:.4f} (best {best_val:.4f})")
                writer.writerow(
                    [step, f"{lr:.6g}", f"{loss.item():.6f}", "" if val_loss is None else f"{val_loss:.6f}",
                     f"{query_act:.4f}", f"{noise_act:.4f}", "" if negative_act is None else f"{negative_act:.4f}"]
                )
                handle.flush()
                if board is not None:
                    scalars = {"lr": lr, "loss": loss.item(), "query_activation": query_act, "noise_activation": noise_act}
                    if negative_act is not None:
                        scalars["negative_activation"] = negative_act
                    if val_loss is not None:
                        scalars["val_loss"] = val_loss
                    for name, value in scalars.items():
                        board.add_scalar(f"train/{name}", value, step)
                if dev is not None and (step % dev_every == 0 or step == config.total_steps):
                    score_dev(step)
                if step % checkpoint_every == 0 or step == config.total_steps:
                    save(last_ckpt, step, val_loss)
                    state = {
                        "model_type": config.model_type,
                        "step": step,
                        "best_val": best_val,
                        "best_dev": best_dev,
                        "wall_s": wall_s,
                        "mixtures_seen": mixtures_seen,
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": _rng_state(samplers),
                        "extra": _extra_state(model),
                        "config": config.to_dict(),
                    }
                    tmp = last_state.with_name(last_state.name + ".tmp")
                    torch.save(state, tmp)
                    os.replace(tmp, last_state)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.4f}")
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    if not best_ckpt.is_file():
        save(best_ckpt, config.total_steps, None)
    return best_ckpt
