"""`clipsep-rt export`: an engine folder (ONNX FP32/FP16, optional TensorRT plan, text tower)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export ONNX (FP32, FP16) and TensorRT engines of a separator and its CLIP text tower",
        description="Write an engine folder for --engine: the separator's weights, its FP32 and FP16 ONNX "
                    "graphs (checked against torch), optionally a TensorRT FP16 plan, the CLIP text tower as "
                    "ONNX, and manifest.json.",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the FP16 graphs")
    p.add_argument("--no-text-encoder", dest="text_encoder", action="store_false",
                   help="do not export the CLIP text tower (text queries then need open_clip and its weights)")
    p.add_argument("--tensorrt", action="store_true", help="also build a TensorRT FP16 plan (needs TensorRT and an NVIDIA GPU)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine folder's files")
    p.add_argument("--clip-weights", type=Path, metavar="FILE", help="a local open_clip weights file for the text tower")
    p.add_argument("--download-weights", action="store_true", help="download missing CLIP weights from the Hugging Face Hub")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.export.pipeline import ExportOptions, export_engines
    from clipsep_rt.query.embedder import QueryEncoderOptions

    options = ExportOptions(
        fp16=args.fp16, text_encoder=args.text_encoder, tensorrt=args.tensorrt, opset=args.opset,
        encoder=QueryEncoderOptions(clip_weights=args.clip_weights, allow_download=args.download_weights),
        overwrite=args.overwrite,
    )
    manifest = export_engines(args.checkpoint, args.output, options, log=print)
    print(f"exported {', '.join(manifest.files())} and manifest.json to {args.output}")
    return 0
