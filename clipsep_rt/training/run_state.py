"""What a training run keeps in its folder and resumes from: the checkpoints (with the query
vectors of labelsep / pit), `last.state.pt` (optimizer, scheduler, progress, RNG states,
non-separator weights, the config), the logs, and a warm start from other weights."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.checkpoint import checkpoint_from_model, load_checkpoint, save_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.query.vectors import save_query_embeddings
from clipsep_rt.training.datasets import MixtureSampler
from clipsep_rt.training.train_config import TrainConfig

LOG_COLUMNS = ("step", "lr", "loss", "val_loss", "query_activation", "noise_activation", "negative_activation")
DEV_LOG_COLUMNS = ("step", "mixtures_seen", "wall_s", "sdri_label", "sdri_paraphrase", "unrelated_db", "best")


@dataclass(frozen=True)
class RunPaths:
    """The files of a run in `out`."""

    out: Path

    @property
    def last_ckpt(self) -> Path:
        return self.out / "last.safetensors"

    @property
    def last_state(self) -> Path:
        return self.out / "last.state.pt"

    @property
    def best_ckpt(self) -> Path:
        return self.out / "best.safetensors"

    @property
    def log(self) -> Path:
        return self.out / "log.csv"

    @property
    def dev_log(self) -> Path:
        return self.out / "dev_log.csv"


@dataclass
class Progress:
    """How far a run is: saved with its state and restored on resume."""

    step: int = 0
    best_val: float = math.inf
    best_dev: float = -math.inf
    wall_s: float = 0.0  # training time, without validation and checkpoints
    mixtures_seen: int = 0


@dataclass
class Trainables:
    """What a step changes and a resume restores."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object  # a torch LR scheduler
    samplers: dict[str, MixtureSampler]


def separator_of(model: torch.nn.Module) -> CLIPSepSeparator:
    """The CLIPSep separator inside a trained model (itself, or a baseline's `separator`)."""
    return model if isinstance(model, CLIPSepSeparator) else model.separator


def begin_run(config: TrainConfig, paths: RunPaths, parts: Trainables, encoder_id: str | None, dev: bool,
              log: Callable[[str], None]) -> Progress:
    """Resume from the run's last state when there is one (and `config.out_dir_resume`), else
    start afresh (from `config.init_from`'s weights when given) with new logs."""
    if config.out_dir_resume and paths.last_state.is_file() and paths.last_ckpt.is_file():
        return _resume(config, paths, parts, dev, log)
    if config.init_from is not None:
        warm_start(separator_of(parts.model), config.init_from, encoder_id)
        log(f"starting from the weights of {config.init_from} (fresh optimiser and schedule)")
    with open(paths.log, "w", newline="") as handle:
        csv.writer(handle).writerow(LOG_COLUMNS)
    if dev:
        with open(paths.dev_log, "w", newline="") as handle:
            csv.writer(handle).writerow(DEV_LOG_COLUMNS)
    return Progress()


def _resume(config: TrainConfig, paths: RunPaths, parts: Trainables, dev: bool, log: Callable[[str], None]) -> Progress:
    state = torch.load(paths.last_state, map_location="cpu", weights_only=False)
    if state.get("model_type") != config.model_type:
        raise ClipsepError(f"{paths.last_state}: was trained as {state.get('model_type')}, not {config.model_type}")
    model = parts.model
    separator_of(model).load_state_dict(load_checkpoint(paths.last_ckpt).state_dict)
    if state.get("extra"):
        model.load_state_dict(state["extra"], strict=False)
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"], parts.samplers)
    start = int(state["step"])
    progress = Progress(
        step=start, best_val=float(state["best_val"]), best_dev=float(state.get("best_dev", -math.inf)),
        wall_s=float(state.get("wall_s", 0.0)), mixtures_seen=int(state.get("mixtures_seen", start * config.batch)),
    )
    log(f"resuming from step {start} (best val loss {progress.best_val:.4f}, best dev SDRi {progress.best_dev:.2f} dB)")
    trained_sampling = state.get("config", {}).get("sampling", "classes")
    if trained_sampling != config.sampling:
        progress.best_val = math.inf  # the validation mixtures are drawn differently now
        log(f"sampling changed from {trained_sampling} to {config.sampling}: the best validation loss starts afresh")
    truncate_log(paths.log, start)
    if dev:
        truncate_log(paths.dev_log, start, DEV_LOG_COLUMNS)
    return progress


def save_state(path: Path, config: TrainConfig, parts: Trainables, progress: Progress) -> None:
    """The state a run resumes from (with the last checkpoint), written atomically."""
    state = {
        "model_type": config.model_type,
        "step": progress.step,
        "best_val": progress.best_val,
        "best_dev": progress.best_dev,
        "wall_s": progress.wall_s,
        "mixtures_seen": progress.mixtures_seen,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "rng": rng_state(parts.samplers),
        "extra": extra_state(parts.model),
        "config": config.to_dict(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_model(path: Path, config: TrainConfig, model: torch.nn.Module, classes: list[str], encoder_id: str | None,
               spectral: SpectralConfig, facts: dict) -> None:
    """The separator's checkpoint (with `facts` in its metadata), and for labelsep / pit the
    query vectors beside it (`<name>.queries.npz`)."""
    save_checkpoint(checkpoint_from_model(separator_of(model), encoder_id, spectral, facts), path)
    vectors = query_vectors(config, model, classes)
    if vectors is not None:
        save_query_embeddings(path.with_suffix(".queries.npz"), *vectors)


def warm_start(separator: CLIPSepSeparator, path: Path, encoder_id: str | None) -> None:
    """Load `path`'s weights into `separator`: same architecture and query encoder, or an error."""
    checkpoint = load_checkpoint(path)
    if checkpoint.model_config != separator.config:
        raise ClipsepError(f"init_from {path}: its model {checkpoint.model_config} differs from the config's {separator.config}")
    if encoder_id is not None and checkpoint.query_encoder != encoder_id:
        raise ClipsepError(f"init_from {path}: trained with query encoder {checkpoint.query_encoder}, not {encoder_id}")
    separator.load_state_dict(checkpoint.state_dict)


def extra_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A baseline's weights outside its separator (learned labels or queries); {} for CLIPSep."""
    if isinstance(model, CLIPSepSeparator):
        return {}
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("separator.")}


def query_vectors(config: TrainConfig, model: torch.nn.Module, classes: list[str]) -> tuple[list[str], np.ndarray] | None:
    """The names and vectors to query a labelsep / pit model with; None for a text-queried one."""
    if config.model_type == "labelsep":
        return classes, model.labels.weight.detach().float().cpu().numpy()
    if config.model_type == "pit":
        vectors = model.queries.detach().float().cpu().numpy()
        return [f"output{i}" for i in range(len(vectors))], vectors
    return None


def rng_state(samplers: dict[str, MixtureSampler]) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "samplers": {name: json.dumps(s.rng.bit_generator.state) for name, s in samplers.items()},
    }


def restore_rng(state: dict, samplers: dict[str, MixtureSampler]) -> None:
    torch.set_rng_state(state["torch"])
    for name, text in state.get("samplers", {}).items():
        if name in samplers:
            samplers[name].rng.bit_generator.state = json.loads(text)


def truncate_log(log_path: Path, step: int, columns: tuple[str, ...] = LOG_COLUMNS) -> None:
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


def read_dev_log(run_dir: Path) -> list[dict]:
    """The rows of a run's dev_log.csv (DEV_LOG_COLUMNS, as strings); [] without one."""
    path = Path(run_dir) / "dev_log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
