"""`clipsep-rt embed`: text and image queries -> a .npz of query vectors (`--query-embedding`),
so that a runtime machine needs neither open_clip nor the CLIP weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.cli.common import encoder_options, query_encoder_arguments
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
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE", help="use the query encoder this separator was trained with")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR",
                   help="use the exported CLIP text tower of this engine folder (no CLIP weights needed)")
    p.add_argument("-d", "--device", default="cpu", help="device for the encoder (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    query_encoder_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.model.checkpoint import load_checkpoint
    from clipsep_rt.query.assemble import assemble_queries
    from clipsep_rt.query.embedder import QueryEmbedder
    from clipsep_rt.query.vectors import save_query_embeddings
    from clipsep_rt.runtime.engines.manifest import read_manifest

    if not args.queries and not args.image:
        raise ClipsepError("nothing to embed: give text queries and/or --image FILE")
    if args.output.suffix != ".npz":
        raise ClipsepError(f"{args.output}: the output name must end in .npz")
    if args.output.exists() and not args.overwrite:
        raise ClipsepError(f"{args.output}: already exists (use --overwrite to replace it)")
    manifest = read_manifest(args.engine) if args.engine else None
    trained_with = manifest.query_encoder if manifest else load_checkpoint(args.checkpoint).query_encoder if args.checkpoint else None
    spec = args.query_encoder or trained_with
    if spec is None:
        raise ClipsepError("which encoder? pass --query-encoder SPEC, the separator's --checkpoint or its --engine folder")
    options = encoder_options(args, spec=spec)
    if manifest and manifest.text_encoder and not args.query_encoder:
        from clipsep_rt.query.encoders.onnx_text import OnnxTextEncoder

        text_onnx, tokenizer = args.engine / manifest.text_encoder.onnx, manifest.text_encoder.tokenizer
        embedder = QueryEmbedder(spec, options, args.device, encoder_id=spec,
                                 factory=lambda: OnnxTextEncoder(text_onnx, tokenizer, encoder_id=spec))
    else:
        embedder = QueryEmbedder(spec, options, args.device)
    names, embeddings = assemble_queries(args.queries, args.image, embed_text=embedder.embed_text,
                                         embed_images=embedder.embed_images)
    save_query_embeddings(args.output, names, embeddings)
    print(f"embedded {len(names)} queries with {embedder.encoder_id} ({embeddings.shape[1]} values each) -> {args.output}")
    return 0
