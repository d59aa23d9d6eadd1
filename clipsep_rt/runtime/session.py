"""A separation run resolved from the command line: the separator and its prepared queries."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..api import QueryEncoderOptions, Separator
from ..errors import ClipsepError
from .batch import QuerySet
from .engine import resolve_device
from .offline import WindowingOptions

# Windows per network call: 4 is near the best in the CPU benchmark; 16 on CUDA is not yet
# measured (no GPU run so far), only chosen to fill a GPU better than 4.
CPU_BATCH, CUDA_BATCH = 4, 16


@dataclass
class Session:
    separator: Separator
    queries: QuerySet
    noise_heads: int  # noise heads per query in the output rows (0 unless asked for)
    embeddings: np.ndarray | None = None  # (Q, D) float32 query vectors, in the order of queries.names

    def describe(self) -> str:
        lines = [f"clipsep-rt: {self.separator.describe()}; queries: {', '.join(self.queries.names)}"]
        backend = self.separator.backend
        if backend is not None:
            lines += [f"clipsep-rt: skipped {reason}" for reason in backend.reasons]
        return "\n".join(lines)


def open_session(args: argparse.Namespace, noise_heads: bool) -> Session:
    from ..query import load_query_embeddings

    batch = args.batch_size or (CUDA_BATCH if resolve_device(args.device).type == "cuda" else CPU_BATCH)
    try:
        windowing = WindowingOptions(overlap_frames=args.overlap, batch_windows=batch, mask=args.mask)
    except ValueError as error:
        raise ClipsepError(str(error)) from None
    encoder = QueryEncoderOptions(
        spec=args.query_encoder, clip_weights=args.clip_weights, prompt=args.prompt,
        prompt_ensemble=args.prompt_ensemble, cache_dir=args.cache_dir, use_cache=not args.no_cache,
        allow_download=args.download_weights,
    )
    separator = Separator.open(
        checkpoint=args.checkpoint, engine_dir=args.engine, backend=args.backend, device=args.device,
        precision=args.precision, compile=args.compile, windowing=windowing, encoder=encoder,
    )
    names: list[str] = list(args.query)
    blocks = [separator.embed_text(args.query)] if args.query else []
    if args.query_image:
        names += [Path(path).stem for path in args.query_image]
        blocks.append(separator.embed_images(args.query_image))
    for path in args.query_embedding:
        file_names, embeddings = load_query_embeddings(path)
        names += file_names
        blocks.append(separator.check_embeddings(embeddings, str(path)))
    embeddings = np.concatenate(blocks)
    prepared = separator.prepare_queries(embeddings, noise_heads)
    heads = separator.noise_heads if noise_heads else 0
    return Session(separator, QuerySet(names, prepared), heads, embeddings)
