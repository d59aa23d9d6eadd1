"""A separation run resolved from the `separate` command line: the separator and its queries."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.api import Queries, Separator, WindowingOptions
from clipsep_rt.cli.common import encoder_options


@dataclass
class Session:
    separator: Separator
    queries: Queries  # names, (Q, D) vectors, prepared (with noise heads when asked for)
    model: str  # which model runs, for summaries: the bundled one's name, or the -c/-e path given

    def describe(self) -> str:
        lines = [f"clipsep-rt: {self.separator.describe()}; queries: {', '.join(self.queries.names)}"]
        backend = self.separator.backend
        lines += [f"clipsep-rt: skipped {reason}" for reason in (backend.reasons if backend else [])]
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
    queries = separator.queries(args.query, args.query_image, args.query_embedding, noise_heads=noise_heads)
    given = args.engine or args.checkpoint
    model = str(given) if given else f"the bundled default {Path(separator.name).stem} (see its MODEL_CARD.md)"
    return Session(separator, queries, model)
