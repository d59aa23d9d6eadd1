"""`clipsep-rt export`: an engine folder (ONNX FP32/FP16, optional TensorRT plan, text encoder)."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.cli.common import say


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export ONNX (FP32, FP16) and TensorRT engines of a separator and its text encoder",
        description="Write an engine folder for --engine: the separator's weights, its FP32 and FP16 ONNX "
                    "graphs (checked against torch: masks in dB SNR), optionally a TensorRT FP16 plan, the text "
                    "encoder as ONNX (the CLIP text tower, or MiniLM with its tokenizer), and manifest.json.",
    )
    p.add_argument("checkpoint", type=Path, nargs="?", metavar="CHECKPOINT",
                   help="a .safetensors checkpoint or an original CLIPSep-NIT .pt (default: the bundled model)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the FP16 graphs")
    p.add_argument("--no-text-encoder", dest="text_encoder", action="store_false",
                   help="do not export the text encoder (text queries then need its torch encoder: open_clip "
                        "and its weights, or sentence-transformers)")
    p.add_argument("--text-encoder-int8", dest="text_encoder_int8", action="store_true",
                   help="also write the text encoder as weight-only INT8 ONNX (a quarter of FP32's size; kept only at "
                        "cosine >= 0.999 with its torch encoder; runs on OpenVINO, or onnxruntime >= 1.23)")
    p.add_argument("--no-fp32-text-encoder", dest="text_encoder_fp32", action="store_false",
                   help="ship only the text encoder's compact graphs (FP16, --text-encoder-int8) that held up, "
                        "not its FP32 graph")
    p.add_argument("--tensorrt", action="store_true", help="also build a TensorRT FP16 plan (needs TensorRT and an NVIDIA GPU)")
    p.add_argument("--int8", action="store_true",
                   help="also write the INT8 CPU graph (static quantisation of the U-Net, calibrated on --calibration audio)")
    p.add_argument("--calibration", type=Path, nargs="+", default=[], metavar="AUDIO",
                   help="real audio files for the INT8 calibration (mixtures like those you will separate; "
                        "e.g. examples/dog_guitar/*.wav); needs --int8")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine folder's files")
    p.add_argument("--clip-weights", type=Path, metavar="FILE", help="a local open_clip weights file for the text tower")
    p.add_argument("--download-weights", action="store_true", help="download missing CLIP weights from the Hugging Face Hub")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.errors import OptionError
    from clipsep_rt.export.pipeline import ExportOptions, export_engines
    from clipsep_rt.query.embedder import QueryEncoderOptions

    if bool(args.int8) != bool(args.calibration):
        raise OptionError("calibration", "--int8 needs --calibration AUDIO... (real sounds), and --calibration needs --int8")
    options = ExportOptions(
        fp16=args.fp16, text_encoder=args.text_encoder, tensorrt=args.tensorrt, opset=args.opset,
        text_encoder_int8=args.text_encoder_int8, text_encoder_fp32=args.text_encoder_fp32,
        int8=args.int8, calibration=tuple(args.calibration),
        encoder=QueryEncoderOptions(clip_weights=args.clip_weights, allow_download=args.download_weights),
        overwrite=args.overwrite,
    )
    if args.checkpoint is None:
        say("exporting the bundled default model (give a CHECKPOINT to export another)")
    manifest = export_engines(args.checkpoint, args.output, options, log=print)
    print(f"exported {', '.join(manifest.files())} and manifest.json to {args.output}")
    return 0
