"""`clipsep-rt embed-frames`: the CLIP image embeddings of a video dataset's frames, for training."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.config import PAPER_QUERY_ENCODER
from clipsep_rt.errors import ClipsepError

MAX_BATCH_FRAMES = 1024  # frames per encoder call: their 224 x 224 pixels alone are 0.6 GB


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed-frames", help="precompute the CLIP image embeddings of a video dataset's frames for training",
        description="Embed every frame of every clip of a dataset index with the frozen CLIP image encoder, once, "
                    "into a .npz that `clipsep-rt train` reads (config key frame_embeddings), so training never "
                    "runs CLIP. An existing complete file from the same encoder is kept.",
    )
    p.add_argument("index", type=Path, metavar="INDEX.csv", help="a dataset index with a frames column")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("--query-encoder", default=PAPER_QUERY_ENCODER, metavar="SPEC",
                   help=f"open_clip:MODEL/TAG or open_clip:MODEL with --clip-weights (default: {PAPER_QUERY_ENCODER})")
    p.add_argument("--clip-weights", type=Path, metavar="FILE", help="a local open_clip weights file")
    p.add_argument("--download-weights", action="store_true", help="download missing CLIP weights from the Hugging Face Hub")
    p.add_argument("-d", "--device", default="cpu", help="device for the encoder (default: cpu)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help=f"frames per encoder call, 1 to {MAX_BATCH_FRAMES} (default: 64)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.query.encoders.registry import build_encoder
    from clipsep_rt.training.datasets import precompute_frame_embeddings

    if args.output.suffix != ".npz":
        raise ClipsepError(f"{args.output}: the output name must end in .npz")
    if not 1 <= args.batch_size <= MAX_BATCH_FRAMES:
        raise ClipsepError(f"--batch-size: must be 1 to {MAX_BATCH_FRAMES} frames per encoder call, got {args.batch_size}")
    if not args.index.is_file():
        raise ClipsepError(f"index {args.index}: no such file")
    encoder = build_encoder(args.query_encoder, args.device, args.clip_weights, allow_download=args.download_weights)
    table = precompute_frame_embeddings(args.index, encoder, args.output, batch_size=args.batch_size)
    print(f"{args.output}: {len(table.keys)} frame embeddings ({table.dim}-d, {table.encoder_id})")
    return 0
