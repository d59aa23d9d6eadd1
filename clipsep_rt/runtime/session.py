"""Everything a separation run needs, resolved once from the command line.

Loads the checkpoint, builds the engine, and turns text queries (through the query
encoder and its on-disk cache) and embedding files into head vectors.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ClipsepError
from ..model.checkpoint import Checkpoint, load_checkpoint
from .batch import QuerySet
from .engine import TorchEngine
from .offline import OfflineSeparator, WindowingOptions

NO_DEFAULT_MODEL = (
    "no --checkpoint given and no default model is bundled yet: pass a .safetensors checkpoint "
    "or an original CLIPSep-NIT .pt file (convert one with `clipsep-rt convert`)"
)


@dataclass
class Session:
    checkpoint_path: Path
    checkpoint: Checkpoint
    engine: TorchEngine
    separator: OfflineSeparator
    queries: QuerySet
    noise_heads: int  # noise heads per query in the output rows (0 unless asked for)

    def describe(self) -> str:
        config = self.checkpoint.model_config
        kind = "CLIPSep-NIT" if config.noise_heads else "CLIPSep"
        return (
            f"clipsep-rt: {kind} (depth {config.depth}, ngf {config.ngf}) from {self.checkpoint_path} "
            f"on {self.engine.device} ({self.engine.precision}); queries: {', '.join(self.queries.names)}"
        )


def open_session(args: argparse.Namespace, noise_heads: bool) -> Session:
    if args.checkpoint is None:
        raise ClipsepError(NO_DEFAULT_MODEL)
    checkpoint = load_checkpoint(args.checkpoint)
    if noise_heads and not checkpoint.model_config.noise_heads:
        raise ClipsepError(f"checkpoint {args.checkpoint} is a plain CLIPSep model: it has no noise heads")
    engine = TorchEngine(checkpoint.build(), args.device, args.precision)
    try:
        options = WindowingOptions(overlap_frames=args.overlap, batch_windows=args.batch_size, mask=args.mask)
        separator = OfflineSeparator(engine, checkpoint.spectral_config, options)
    except ValueError as error:
        raise ClipsepError(str(error)) from None
    names, embeddings = resolve_queries(args, checkpoint, str(args.checkpoint))
    vectors = engine.head_vectors(torch.from_numpy(embeddings), noise_heads)
    heads = checkpoint.model_config.noise_heads if noise_heads else 0
    return Session(args.checkpoint, checkpoint, engine, separator, QuerySet(names, vectors), heads)


def resolve_queries(args: argparse.Namespace, checkpoint: Checkpoint, checkpoint_name: str) -> tuple[list[str], np.ndarray]:
    """Text queries (embedded, cached) then embedding files -> (names, (Q, D) float32)."""
    from ..query import check_embedding_dim, load_query_embeddings

    names: list[str] = []
    blocks: list[np.ndarray] = []
    if args.query:
        embeddings, encoder_id = embed_text_queries(args, checkpoint)
        check_embedding_dim(embeddings, checkpoint.query_dim, checkpoint.query_encoder, checkpoint_name, encoder_id)
        names += args.query
        blocks.append(embeddings)
    for path in args.query_embedding:
        file_names, embeddings = load_query_embeddings(path)
        check_embedding_dim(embeddings, checkpoint.query_dim, checkpoint.query_encoder, checkpoint_name, str(path))
        names += file_names
        blocks.append(embeddings)
    return names, np.concatenate(blocks).astype(np.float32)


def embed_text_queries(args: argparse.Namespace, checkpoint: Checkpoint) -> tuple[np.ndarray, str]:
    """Embed --query texts with the checkpoint's (or the chosen) encoder; returns (embeddings, encoder id)."""
    from ..query import ENSEMBLE_TEMPLATES, EmbeddingCache, build_encoder, default_templates_for, embed_queries, encoder_id_for
    from ..query.prompts import check_template

    spec = args.query_encoder or checkpoint.query_encoder
    if spec is None:
        raise ClipsepError(
            f"checkpoint {args.checkpoint} does not say which query encoder it was trained with: "
            "pass --query-encoder, or use --query-embedding"
        )
    encoder_id = encoder_id_for(spec, args.clip_weights)
    if args.prompt_ensemble:
        templates = ENSEMBLE_TEMPLATES
    elif args.prompt:
        templates = (check_template(args.prompt),)
    else:
        templates = default_templates_for(spec)
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir)
    device = "cuda" if args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    embeddings = embed_queries(
        args.query,
        lambda: build_encoder(spec, device, args.clip_weights, allow_download=args.download_weights),
        encoder_id,
        templates=templates,
        cache=cache,
        dim=checkpoint.query_dim,
    )
    return embeddings, encoder_id
