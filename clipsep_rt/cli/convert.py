"""`clipsep-rt convert`: an original CLIPSep-NIT .pt (or a clipsep-rt checkpoint) -> .safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.config import PAPER_QUERY_ENCODER
from clipsep_rt.errors import ClipsepError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an original CLIPSep-NIT checkpoint to the clipsep-rt format (or a checkpoint to FP16)",
        description="Convert a checkpoint in the released CLIPSep-NIT layout (DataParallel state dict) "
                    "to a .safetensors file with clipsep-rt metadata, or re-save a clipsep-rt .safetensors "
                    "checkpoint (e.g. with --half).",
    )
    p.add_argument("source", type=Path, metavar="ORIGINAL.pt|CHECKPOINT.safetensors")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.safetensors")
    p.add_argument("--query-encoder", metavar="SPEC",
                   help="the encoder the model was trained with (default: the checkpoint's own for .safetensors, "
                        f"{PAPER_QUERY_ENCODER} (the paper's CLIP) for original .pt files)")
    p.add_argument("--half", action="store_true", help="store weights as FP16 (half the size)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from clipsep_rt.model.checkpoint import load_checkpoint, load_official, save_checkpoint

    if args.output.suffix != ".safetensors":
        raise ClipsepError(f"{args.output}: the output name must end in .safetensors")
    if args.output.exists() and not args.overwrite:
        raise ClipsepError(f"{args.output}: already exists (use --overwrite to replace it)")
    if not args.source.is_file():
        raise ClipsepError(f"checkpoint {args.source}: no such file")
    if args.source.suffix == ".safetensors":
        checkpoint = load_checkpoint(args.source)
        if args.query_encoder:
            checkpoint = replace(checkpoint, query_encoder=args.query_encoder)
    else:
        checkpoint = load_official(args.source, query_encoder=args.query_encoder or PAPER_QUERY_ENCODER)
    if args.source.resolve() == args.output.resolve():
        raise ClipsepError(f"{args.output}: converting a file onto itself; choose another output name")
    save_checkpoint(checkpoint, args.output, half=args.half, overwrite=args.overwrite)
    config = checkpoint.model_config
    print(
        f"converted {args.source} -> {args.output}: depth {config.depth}, ngf {config.ngf}, "
        f"{config.noise_heads} noise heads, query {config.query_dim}-d ({checkpoint.query_encoder})"
    )
    return 0
