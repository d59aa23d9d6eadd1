"""One training step's forward pass and loss, for each model type (clipsep, nit, labelsep,
pit), and the targets of a mixture batch."""

from __future__ import annotations

from typing import NamedTuple

import torch

from clipsep_rt.dsp.spectral import SpectralFrontEnd
from clipsep_rt.model.hardware import cpu_has_native_bf16
from clipsep_rt.training.baselines import source_logits
from clipsep_rt.training.datasets import MixtureBatch, QueryTable
from clipsep_rt.training.losses import clipsep_loss, negative_query_loss, nit_loss, pit_loss
from clipsep_rt.training.targets import MixBatch, mix_and_warp
from clipsep_rt.training.train_config import TrainConfig


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


class TrainStep:
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
