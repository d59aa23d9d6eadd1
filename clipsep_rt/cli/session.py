"""A separation run resolved from the `separate` command line: the separator and its queries."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.api import Exclusions, Queries, Separator, WindowingOptions
from clipsep_rt.cli.common import encoder_options, say
from clipsep_rt.errors import ClipsepError


@dataclass
class Session:
    separator: Separator
    queries: Queries  # names, (Q, D) vectors, prepared (with noise heads when asked for)
    model: str  # which model runs, for summaries: the bundled one's name, or the -c/-e path given

    def describe(self) -> str:
        lines = [f"clipsep-rt: {self.separator.describe()}; queries: {', '.join(self.queries.labels)}"]
        backend = self.separator.backend
        lines += [f"clipsep-rt: {line}" for line in (backend.explanation() if backend else [])]
        return "\n".join(lines)


def open_session(args: argparse.Namespace, noise_heads: bool, stream_latency: str | None = None) -> Session:
    """The separator of --checkpoint/--engine/--backend/... with the --query, --query-image and
    --query-embedding queries prepared (with their noise heads if `noise_heads`); `stream_latency`:
    the --latency preset of a stream (backend auto then ranks CPU backends by measured hop time)."""
    windowing = WindowingOptions(overlap_frames=args.overlap, batch_windows=args.batch_size, mask=args.mask)
    separator = Separator.open(
        checkpoint=args.checkpoint, engine_dir=args.engine, backend=args.backend, device=args.device,
        precision=args.precision, compile=args.compile, threads=args.threads, windowing=windowing,
        encoder=encoder_options(args), engine_cache=args.engine_cache, log=_quiet if args.quiet else say,
        stream_latency=stream_latency,
    )
    exclude = Exclusions(args.exclude, args.exclude_image, args.exclude_embedding)  # --exclude...: left out of every output
    queries = separator.queries(args.query, args.query_image, args.query_embedding, fitted_queries(args, separator),
                                noise_heads=noise_heads, exclude=exclude)
    given = args.engine or args.checkpoint
    model = str(given) if given else f"the bundled default {Path(separator.name).stem} (see its MODEL_CARD.md)"
    return Session(separator, queries, model)


def _quiet(line: str) -> None:
    """--quiet: what loading the separator would say (a compile, a backend timing) goes unsaid."""


def fitted_queries(args: argparse.Namespace, separator: Separator) -> dict[str, np.ndarray] | None:
    """--query-audio CLIP (named after the file) and --query-span START-END (of the one input):
    name -> (D,) query vector fitted to the audio; None when neither is given."""
    from clipsep_rt.io.media import load_audio

    clips = getattr(args, "query_audio", [])
    span = getattr(args, "query_span", None)
    if not clips and span is None:
        return None
    rate = separator.sample_rate
    fitted = dict(separator.query_from_audio(load_audio(clip, rate).samples, rate, name=Path(clip).stem)
                  for clip in clips)
    if span is not None:
        inputs = [*args.inputs, *args.more_inputs]
        if len(inputs) != 1 or not Path(inputs[0]).is_file():
            raise ClipsepError(f"--query-span {span[0]:g}-{span[1]:g}: a span is of one input file; give exactly one")
        audio = load_audio(inputs[0], rate).samples
        try:
            name, vector = separator.query_from_span(audio, rate, *span)
        except ClipsepError as error:
            raise ClipsepError(f"--query-span of {inputs[0]}: {error}") from None
        fitted[name] = vector
    return fitted

