"""A separation run resolved from the `separate` command line: the separator and its queries."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.api import Separator
from clipsep_rt.cli.common import encoder_options
from clipsep_rt.jobs.batch import QuerySet
from clipsep_rt.runtime.offline import WindowingOptions

@dataclass
class Session:
    separator: Separator
    queries: QuerySet
    noise_heads: int  # noise heads per query in the output rows (0 unless asked for)
    embeddings: np.ndarray  # (Q, D) float32 query vectors, in the order of queries.names
    model: str  # which model runs, for summaries: the bundled one's name, or the -c/-e path given

    def describe(self) -> str:
        lines = [f"clipsep-rt: {self.separator.describe()}; queries: {', '.join(self.queries.names)}"]
        backend = self.separator.backend
        if backend is not None:
            lines += [f"clipsep-rt: skipped {reason}" for reason in backend.reasons]
        return "\n".join(lines)


def open_session(args: argparse.Namespace, noise_heads: bool) -> Session:
    """The separator of --checkpoint/--engine/--backend/... with the --query, --query-image and
    --query-embedding queries prepared (with their noise heads if `noise_heads`)."""
    windowing = WindowingOptions(overlap_frames=args.overlap, batch_windows=args.batch_size, mask=args.mask)
    separator = Separator.open(
        checkpoint=args.checkpoint, engine_dir=args.engine, backend=args.backend, device=args.device,
        precision=args.precision, compile=args.compile, threads=args.threads, windowing=windowing,
        encoder=encoder_options(args),
    )
    names, embeddings = separator.embed_queries(args.query, args.query_image, args.query_embedding)
    prepared = separator.prepare_queries(embeddings, noise_heads)
    heads = separator.noise_heads if noise_heads else 0
    given = args.engine or args.checkpoint
    model = str(given) if given else f"the bundled default {Path(separator.name).stem} (see its MODEL_CARD.md)"
    return Session(separator, QuerySet(names, prepared), heads, embeddings, model)
