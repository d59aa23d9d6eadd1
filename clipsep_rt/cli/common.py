"""What several commands share: exit codes, status lines, the device and query-encoder
options, and the output-rate argument type.

Nothing here imports torch or the runtime: `clipsep-rt --help` builds every parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_FAILURES = 1  # some inputs (or every benchmark row) failed
EXIT_USAGE = 2  # a bad command line or setting
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM (128 + 15, as a shell reports a process it ended)


class Terminated(KeyboardInterrupt):
    """SIGTERM while a command runs: unwinds like Ctrl-C, so the same clean-up runs."""

TORCH_PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # what the torch backend runs (eval, train)
PRECISIONS = (*TORCH_PRECISIONS, "int8")  # int8: an engine folder's quantised ONNX graph


def say(line: str) -> None:
    """One status line on stderr: `clipsep-rt: LINE`."""
    print(f"clipsep-rt: {line}", file=sys.stderr, flush=True)


def say_error(message: str) -> None:
    """One error line on stderr: `clipsep-rt: error: MESSAGE`."""
    print(f"clipsep-rt: error: {message}", file=sys.stderr, flush=True)


def model_arguments(p: argparse.ArgumentParser, backend_help: str) -> None:
    """The options that say which separator runs and how: -c/--checkpoint, -e/--engine, -b/--backend,
    -d/--device, --precision, --no-engine-cache, --threads (`separate`, `serve`)."""
    from clipsep_rt.runtime.engines.choice import BACKENDS

    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE",
                   help="separator: a .safetensors checkpoint or an original CLIPSep-NIT .pt (default: the bundled model, "
                        "see clipsep_rt/model/weights/MODEL_CARD.md)")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR", help="an engine folder made by `clipsep-rt export` (needs nothing else)")
    p.add_argument("-b", "--backend", default="auto", choices=BACKENDS, help=backend_help)
    device_argument(p)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="network precision; auto = fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    p.add_argument("--no-engine-cache", dest="engine_cache", action="store_false",
                   help="run a --checkpoint as it is, on torch, instead of its graph compiled once into the user cache "
                        "(~/.cache/clipsep-rt/engines; README, Compile once)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for the network, 1 to the cores this process may use (default: the backend's choice)")


def device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def output_rate(text: str) -> int | None:
    """--sample-rate: 'input' (None: keep the input's rate) or a rate in Hz."""
    if text == "input":
        return None
    if not text.isdigit() or not 1000 <= int(text) <= 384000:
        raise argparse.ArgumentTypeError(f"expected 'input' or a rate in Hz (1000..384000), got {text!r}")
    return int(text)


def query_encoder_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("query encoder (text queries)")
    g.add_argument("--query-encoder", metavar="SPEC",
                   help="open_clip:MODEL/TAG (e.g. open_clip:ViT-B-32/openai), open_clip:MODEL with --clip-weights, "
                        "open_clip:hf-hub:ORG/REPO, or minilm (default: the encoder the checkpoint was trained with)")
    g.add_argument("--clip-weights", type=Path, metavar="FILE", help="a local open_clip weights file for the --query-encoder model")
    g.add_argument("--download-weights", action="store_true",
                   help="download missing CLIP weights from the Hugging Face Hub (off by default: weights come from the local cache)")
    g.add_argument("--prompt", metavar="TEMPLATE", help="prompt template with {} for the query (default: the encoder's, 'a photo of {}' for CLIP)")
    g.add_argument("--prompt-ensemble", action="store_true", help="average the embeddings of several prompt templates")
    g.add_argument("--cache-dir", type=Path, metavar="DIR", help="query embedding cache (default: ~/.cache/clipsep-rt/embeddings)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")


def encoder_options(args: argparse.Namespace, **overrides):
    """The QueryEncoderOptions of the `query_encoder_arguments` group (fields in `overrides` replace them)."""
    from clipsep_rt.query.embedder import QueryEncoderOptions

    chosen = dict(
        spec=args.query_encoder, clip_weights=args.clip_weights, prompt=args.prompt,
        prompt_ensemble=args.prompt_ensemble, cache_dir=args.cache_dir, use_cache=not args.no_cache,
        allow_download=args.download_weights,
    )
    return QueryEncoderOptions(**{**chosen, **overrides})
