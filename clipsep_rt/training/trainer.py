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
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.spectral import SpectralFrontEnd
from clipsep_rt.errors import ClipsepError
from clipsep_rt.optional import import_optional
from clipsep_rt.training.build import ModelParts, TrainingData, build_model, load_training_data
from clipsep_rt.training.datasets import MixtureBatch, MixtureSampler
from clipsep_rt.training.run_state import (
    Progress,
    RunPaths,
    Trainables,
    begin_run,
    save_model,
    save_state,
    separator_of,
)
from clipsep_rt.training.schedule import make_optimizer, make_scheduler
from clipsep_rt.training.step import StepResult, TrainStep, make_targets, uses_bf16_autocast
from clipsep_rt.training.targets import stream_edge_emphasis
from clipsep_rt.training.train_config import TrainConfig

__all__ = ["train"]

_LOG = logging.getLogger(__name__)


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
    config.out_dir.mkdir(parents=True, exist_ok=True)
    spectral = SpectralConfig()
    data = load_training_data(config, spectral, log)
    parts = build_model(config, data.clips, data.sampler.query_type, device, text_encoder, image_encoder, log)
    return _TrainingRun(config, data, parts, spectral, device, log).run(progress)


class _Row(NamedTuple):
    """One step's log.csv row."""

    step: int
    lr: float
    loss: float
    val_loss: float | None
    query_activation: float
    noise_activation: float
    negative_activation: float | None

    def csv(self) -> list:
        return [self.step, f"{self.lr:.6g}", f"{self.loss:.6f}", "" if self.val_loss is None else f"{self.val_loss:.6f}",
                f"{self.query_activation:.4f}", f"{self.noise_activation:.4f}",
                "" if self.negative_activation is None else f"{self.negative_activation:.4f}"]

    def scalars(self) -> dict[str, float]:
        """The TensorBoard scalars (train/NAME)."""
        scalars = {"lr": self.lr, "loss": self.loss, "query_activation": self.query_activation,
                   "noise_activation": self.noise_activation}
        if self.negative_activation is not None:
            scalars["negative_activation"] = self.negative_activation
        if self.val_loss is not None:
            scalars["val_loss"] = self.val_loss
        return scalars


class _TrainingRun:
    """The optimiser, validation, dev scoring and checkpoints around the model of one run."""

    def __init__(self, config: TrainConfig, data: TrainingData, parts: ModelParts, spectral: SpectralConfig,
                 device: torch.device, log: Callable[[str], None]):
        self.config, self.parts, self.spectral, self.device, self.log = config, parts, spectral, device, log
        model = self.model = parts.model
        model.to(device)
        self.front_end = SpectralFrontEnd(spectral).to(device)
        optimizer = make_optimizer(model.parameters(), config.recipe)
        self.trainables = Trainables(model, optimizer, make_scheduler(optimizer, config.recipe), {"train": data.sampler})
        self.sampler = data.sampler
        self.step_fn = TrainStep(config, model, parts.queries, parts.classes)
        val_sampler = MixtureSampler(data.val_data, config.batch, config.noisy, config.seed + 1, **data.mixing)
        self.val_set = [val_sampler.sample() for _ in range(config.val_batches)]
        self.dev = _dev_scorer(config, parts.embed_texts, log)
        self.paths = RunPaths(config.out_dir)
        self.progress: Progress = begin_run(config, self.paths, self.trainables, parts.encoder_id, self.dev is not None,
                                            log)
        self.provenance = {"trained_by": "clipsep-rt train", "model_type": config.model_type, "index": str(config.index)}
        self.use_amp = uses_bf16_autocast(config.precision, device)
        log(f"training on {device} in {'bf16 autocast' if self.use_amp else 'fp32'}")
        self.frame_weights = None
        if config.stream_edge_frames:
            window_frames = config.clip_samples // spectral.hop_length + 1
            self.frame_weights = stream_edge_emphasis(window_frames, config.stream_edge_frames, config.stream_edge_weight)

    def run(self, progress_bar: bool) -> Path:
        """Train from the current step to `config.total_steps`; the best checkpoint's path."""
        config, paths = self.config, self.paths
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.total_steps, initial=self.progress.step, desc=f"train {config.model_type}", leave=False)
        board = _tensorboard_writer(paths.out / "tensorboard") if config.tensorboard else None
        self.model.train()
        try:
            with open(paths.log, "a", newline="") as handle:
                writer = csv.writer(handle)
                for step in range(self.progress.step + 1, config.total_steps + 1):
                    row = self._step(step)
                    writer.writerow(row.csv())
                    handle.flush()
                    if board is not None:
                        for name, value in row.scalars().items():
                            board.add_scalar(f"train/{name}", value, step)
                    self._checkpoint(step, row.val_loss)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{row.loss:.4f}")
        finally:
            if bar is not None:
                bar.close()
            if board is not None:
                board.close()
        if not paths.best_ckpt.is_file():
            self._save(paths.best_ckpt, config.total_steps, None)
        return paths.best_ckpt

    def _step(self, step: int) -> _Row:
        """One optimiser step, and validation when it is due."""
        config, progress, trainables = self.config, self.progress, self.trainables
        step_started = time.monotonic()
        lr = trainables.optimizer.param_groups[0]["lr"]
        loss, query_act, noise_act, negative_act = self._forward(self.sampler.sample())
        if not torch.isfinite(loss):
            raise ClipsepError(f"training diverged at step {step}: loss is {loss.item()}")
        trainables.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.recipe.grad_clip)
        trainables.optimizer.step()
        trainables.scheduler.step()
        progress.step = step
        progress.mixtures_seen += config.batch
        progress.wall_s += time.monotonic() - step_started
        val_loss = None
        if step % config.val_every == 0 or step == config.total_steps:
            val_loss = self._validate()
            if val_loss < progress.best_val:
                progress.best_val = val_loss
                if self.dev is None:
                    self._save(self.paths.best_ckpt, step, val_loss)
            self.log(f"step {step}: loss {loss.item():.4f} val {val_loss:.4f} (best {progress.best_val:.4f})")
        return _Row(step, lr, loss.item(), val_loss, query_act, noise_act, negative_act)

    def _checkpoint(self, step: int, val_loss: float | None) -> None:
        """Score the dev set and save the last checkpoint and state, when they are due."""
        config = self.config
        dev_every = config.dev_every or config.val_every
        if self.dev is not None and (step % dev_every == 0 or step == config.total_steps):
            self._score_dev(step)
        if step % (config.checkpoint_every or config.val_every) == 0 or step == config.total_steps:
            self._save(self.paths.last_ckpt, step, val_loss)
            save_state(self.paths.last_state, config, self.trainables, self.progress)

    def _forward(self, batch: MixtureBatch) -> StepResult:
        targets = make_targets(batch, self.front_end, self.device, self.frame_weights)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            return self.step_fn(batch, targets, self.device)

    def _validate(self) -> float:
        self.model.eval()
        with torch.no_grad():
            losses = [self._forward(batch).loss.item() for batch in self.val_set]
        self.model.train()
        return float(np.mean(losses))

    def _save(self, path: Path, step: int, val: float | None, dev_score=None) -> None:
        progress = self.progress
        facts = {**self.provenance, "step": step, "val_loss": val, "mixtures_seen": progress.mixtures_seen,
                 "train_wall_s": round(progress.wall_s)}
        if dev_score is not None:
            facts["dev"] = dev_score.as_row()
        save_model(path, self.config, self.model, self.parts.classes, self.parts.encoder_id, self.spectral, facts)

    def _score_dev(self, step: int) -> None:
        progress = self.progress
        score = self.dev.score(separator_of(self.model))
        better = score.sdri_label > progress.best_dev
        if better:
            progress.best_dev = score.sdri_label
            self._save(self.paths.best_ckpt, step, None, score)
        self.log(f"step {step}: {score}{' (best)' if better else ''}")
        with open(self.paths.dev_log, "a", newline="") as handle:
            csv.writer(handle).writerow([step, progress.mixtures_seen, f"{progress.wall_s:.0f}",
                                         *(f"{v:.3f}" for v in score.as_row().values()), int(better)])


def _dev_scorer(config: TrainConfig, embed_texts: Callable | None, log: Callable[[str], None]):
    """The dev-set scorer of `config.dev_set` (None without one)."""
    if config.dev_set is None:
        return None
    if embed_texts is None:
        raise ClipsepError(f"dev_set needs a text-queried model (clipsep or nit with text labels), not {config.model_type}")
    from clipsep_rt.training.dev_score import DevScorer

    dev = DevScorer(config.dev_set, embed_texts)
    log(f"dev set {config.dev_set}: {len(dev)} mixtures, scored every {config.dev_every or config.val_every} steps")
    return dev


def _tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter on `folder` (a resumed run appends to the same folder)."""
    import_optional("tensorboard", "train")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))
