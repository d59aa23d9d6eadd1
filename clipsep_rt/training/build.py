"""What a training run is made of: its data (the clips of the index, the training sampler,
the validation clips) and its model (CLIPSep with a query table, LabelSep or PIT)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.training.augment import Augmenter
from clipsep_rt.training.baselines import LabelSepSeparator, PITSeparator
from clipsep_rt.training.datasets import (
    ClipDataset,
    MixtureSampler,
    QueryTable,
    class_key,
    load_frame_embeddings,
    precompute_frame_embeddings,
    text_embedder,
)
from clipsep_rt.training.index import Clip, read_index
from clipsep_rt.training.train_config import TrainConfig


class TrainingData(NamedTuple):
    clips: list[Clip]  # the whole index
    sampler: MixtureSampler  # training mixtures
    val_data: ClipDataset  # the val split (or the train split, when the index has none)
    mixing: dict  # how both draw their mixtures (MixtureSampler's keyword arguments)


def load_training_data(config: TrainConfig, spectral: SpectralConfig, log: Callable[[str], None]) -> TrainingData:
    """The index's clips, the training sampler (augmented when configured) and the validation clips."""
    clips = read_index(config.index)
    train_data = ClipDataset(clips, "train", config.clip_samples, config.seed, spectral.sample_rate)
    val_split = "val" if any(c.split == "val" for c in clips) else "train"
    if val_split == "train":
        log("no val split in the index: validating on fixed train batches")
    val_data = ClipDataset(clips, val_split, config.clip_samples, config.seed + 1, spectral.sample_rate)
    augment = Augmenter(config.augment, spectral.sample_rate) if config.augment.enabled else None
    negatives = config.negative_weight > 0
    mixing = dict(sampling=config.sampling, class_exponent=config.class_exponent, recipe=config.mix, negatives=negatives)
    sampler = MixtureSampler(train_data, config.batch, config.noisy, config.seed, augment=augment, **mixing)
    return TrainingData(clips, sampler, val_data, mixing)


class ModelParts(NamedTuple):
    model: torch.nn.Module  # CLIPSepSeparator, LabelSepSeparator or PITSeparator (on the CPU)
    queries: QueryTable | None  # clipsep / nit: the query of each clip
    classes: list[str]  # the class keys, sorted (labelsep's rows)
    encoder_id: str  # the query encoder, or "labelsep" / "pit"
    embed_texts: Callable | None  # texts -> embeddings as training embeds its labels (text queries only)


def build_model(config: TrainConfig, clips: list[Clip], query_type: str, device: torch.device, text_encoder=None,
                image_encoder=None, log: Callable[[str], None] = lambda line: None) -> ModelParts:
    """The model of `config.model_type`; for clipsep / nit the query table of the clips (text
    labels, or image frames for a video index), embedded by `text_encoder` / `image_encoder`
    or by `config.query_encoder`."""
    classes = sorted({class_key(c) for c in clips})
    if config.model_type in ("clipsep", "nit"):
        queries, embed_texts = _query_table(config, clips, query_type, device, text_encoder, image_encoder)
        if queries.dim != config.model.query_dim:
            raise ClipsepError(
                f"query encoder {queries.encoder_id} gives {queries.dim}-d embeddings but model.query_dim is {config.model.query_dim}"
            )
        return ModelParts(CLIPSepSeparator(config.model), queries, classes, queries.encoder_id, embed_texts)
    if config.model_type == "labelsep":
        if query_type != "text":
            log("labelsep on a video dataset: one learned query per source id")
        return ModelParts(LabelSepSeparator(len(classes), config.model), None, classes, "labelsep", None)
    return ModelParts(PITSeparator(config.model), None, classes, "pit", None)


def _query_table(config: TrainConfig, clips: list[Clip], query_type: str, device: torch.device, text_encoder,
                 image_encoder) -> tuple[QueryTable, Callable | None]:
    """The clips' query table, and (text queries) the function that embeds texts as it did."""
    if query_type == "image":
        cache = config.frame_embeddings or config.out_dir / "frame_embeddings.npz"
        queries = None if image_encoder is not None else load_frame_embeddings(clips, cache, config.query_encoder)
        if queries is None:
            encoder = image_encoder
            if encoder is None:
                from clipsep_rt.query.encoders.registry import build_encoder

                encoder = build_encoder(config.query_encoder, str(device), config.clip_weights)
            queries = precompute_frame_embeddings(clips, encoder, cache)
        return queries, None
    from clipsep_rt.query.embedder import QueryEncoderOptions

    options = QueryEncoderOptions(clip_weights=config.clip_weights)
    embed_texts, _ = text_embedder(text_encoder, config.query_encoder, options, str(device))
    return QueryTable.for_texts(clips, text_encoder, config.query_encoder, options, str(device)), embed_texts
