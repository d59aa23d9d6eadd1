"""`clipsep-rt embed`: text and image queries -> a .npz of query vectors (`--query-embedding`),
so that a runtime machine needs no query encoder. The encoder is the one the separator was
trained with: the --engine folder's (its exported ONNX text encoder when it has one), the
--checkpoint's, else the bundled default model's; --query-encoder chooses another."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.cli.common import encoder_options, query_encoder_arguments, say
from clipsep_rt.errors import ClipsepError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="precompute query embeddings into a .npz for machines without CLIP",
        description="Embed text (and image) queries once, so that a runtime machine needs neither "
                    "open_clip nor the CLIP weights: pass the file to --query-embedding.",
    )
    p.add_argument("queries", nargs="*", metavar="TEXT", help="text queries, e.g. 'orchestra' 'people yelling'")
    p.add_argument("--image", action="append", default=[], metavar="FILE", help="image queries (named after the file)")
    p.add_argument("--audio", action="append", default=[], metavar="CLIP",
                   help="query by example: a few seconds of the wanted sound (any format), fitted to the model "
                        "(-c/-e, else the bundled one) and named after the file; the .npz then names the model, "
                        "and --query-embedding refuses it for another (repeatable; not with text or --image)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE",
                   help="use the query encoder this separator was trained with (default: the bundled model's)")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR",
                   help="use the exported text encoder of this engine folder (ONNX Runtime only: no torch encoder or weights)")
    p.add_argument("-d", "--device", default="cpu", help="device for the encoder (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    query_encoder_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.query.assemble import QueryTarget, assemble_queries
    from clipsep_rt.query.embedder import QueryEmbedder
    from clipsep_rt.query.vectors import save_query_embeddings
    from clipsep_rt.runtime.engines.manifest import read_manifest

    if not args.queries and not args.image and not args.audio:
        raise ClipsepError("nothing to embed: give text queries, --image FILE and/or --audio CLIP")
    if args.output.suffix != ".npz":
        raise ClipsepError(f"{args.output}: the output name must end in .npz")
    if args.output.exists() and not args.overwrite:
        raise ClipsepError(f"{args.output}: already exists (use --overwrite to replace it)")
    if args.audio:
        return _fit_audio(args)
    engine = args.engine
    if engine is None and args.checkpoint is None and not args.query_encoder:
        from clipsep_rt.model.weights import default_engine_dir

        engine = default_engine_dir()  # the bundled model's folder: its exported text encoder, no torch
    model, trained_with, query_dim = _model(args, engine)
    spec = args.query_encoder or trained_with
    if spec is None:
        raise ClipsepError(f"{model} does not say which query encoder it was trained with: pass --query-encoder SPEC")
    options = encoder_options(args, spec=spec)
    manifest = read_manifest(engine) if engine else None
    if manifest and manifest.text_encoder and not args.query_encoder:
        exported = manifest.text_encoder.encoder(engine, spec)
        embedder = QueryEmbedder(spec, options, args.device, encoder_id=exported.encoder_id, factory=exported.build)
    else:
        embedder = QueryEmbedder(spec, options, args.device)
    names, embeddings = assemble_queries(embedder, QueryTarget(query_dim, str(args.engine or args.checkpoint or "the bundled default"),
                                                               trained_with), args.queries, args.image)
    save_query_embeddings(args.output, names, embeddings)
    print(f"embedded {len(names)} queries with {embedder.encoder_id} ({embeddings.shape[1]} values each, for {model}) -> {args.output}")
    return 0


def _model(args: argparse.Namespace, engine: Path | None) -> tuple[str, str | None, int | None]:
    """(what the queries are for, the encoder it was trained with, its query size): the engine
    folder (--engine, or the bundled model's), the --checkpoint, else the bundled default model;
    with only --query-encoder, no model."""
    if engine:
        from clipsep_rt.runtime.engines.manifest import read_manifest

        manifest = read_manifest(engine)
        return ("the bundled default model" if args.engine is None else f"engine folder {engine}",
                manifest.query_encoder, manifest.query_dim)
    if args.checkpoint is None and args.query_encoder:
        return "any separator trained with it", None, None
    from clipsep_rt.model.checkpoint import load_checkpoint

    if args.checkpoint is None:
        from clipsep_rt.model.weights import default_checkpoint

        checkpoint = load_checkpoint(default_checkpoint())
        return "the bundled default model", checkpoint.query_encoder, checkpoint.query_dim
    checkpoint = load_checkpoint(args.checkpoint)
    return f"checkpoint {args.checkpoint}", checkpoint.query_encoder, checkpoint.query_dim


def _fit_audio(args: argparse.Namespace) -> int:
    """--audio CLIP...: query vectors fitted to each clip with the model, in a self-describing .npz."""
    import time

    import numpy as np

    from clipsep_rt.api import Separator
    from clipsep_rt.io.media import load_audio
    from clipsep_rt.query.vectors import save_query_embeddings

    if args.queries or args.image or args.query_encoder:
        raise ClipsepError("--audio fits vectors to the model: give text queries, --image and --query-encoder in "
                           "another embed call")
    separator = Separator.open(checkpoint=args.checkpoint, engine_dir=args.engine, device=args.device, log=say)
    names, vectors, started = [], [], time.perf_counter()
    for clip in args.audio:
        samples = load_audio(clip, separator.sample_rate).samples
        name, vector = separator.query_from_audio(samples, separator.sample_rate, name=Path(clip).stem)
        names.append(name)
        vectors.append(vector)
    model = str(args.engine or args.checkpoint or f"the bundled default {Path(separator.name).stem}")
    metadata = {"kind": "fitted to audio", "model": model,
                "query_head": separator.pipeline.query_fitter.projection.fingerprint,
                "query_encoder": separator.query_encoder, "clips": [Path(clip).name for clip in args.audio]}
    save_query_embeddings(args.output, names, np.stack(vectors), metadata)
    print(f"fitted {len(names)} queries to audio in {time.perf_counter() - started:.1f} s ({vectors[0].shape[0]} "
          f"values each, for {model}) -> {args.output}")
    return 0
