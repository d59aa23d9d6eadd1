"""The `clipsep-rt` command.

    clipsep-rt --query "violin" [--query ...] --input PATH [PATH|DIR|GLOB ...] -o OUTDIR
    clipsep-rt convert ORIGINAL.pt -o model.safetensors

Bad input is reported as one line on stderr (`clipsep-rt: error: ...`) with a non-zero
exit status: 1 when some inputs failed, 2 for a bad command line or setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import weakref
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ClipsepError
from .fileio import atomic_output
from .runtime.streaming import PRESETS

SUBCOMMANDS = ("separate", "convert", "embed", "embed-frames", "export", "bench", "eval", "train")
EXIT_FAILURES = 1
EXIT_USAGE = 2
PAPER_ENCODER = "open_clip:ViT-B-32/openai"


def _separate_parser(sub) -> None:
    p = sub.add_parser(
        "separate",
        help="separate files by text query (the default command)",
        description="Separate the sound named by each query out of audio and video files.",
    )
    p.add_argument("inputs", nargs="*", metavar="PATH", help="input files, directories or glob patterns")
    p.add_argument("-i", "--input", dest="more_inputs", action="extend", nargs="+", default=[], metavar="PATH",
                   help="more inputs (same as positional PATHs)")
    p.add_argument("-q", "--query", action="append", default=[], metavar="TEXT", help="what to separate, e.g. 'dog barking' (repeatable)")
    p.add_argument("--query-image", action="append", default=[], metavar="FILE",
                   help="a picture of the sound source, embedded by the CLIP image encoder (repeatable)")
    p.add_argument("--query-embedding", action="append", default=[], metavar="FILE",
                   help="query vectors computed elsewhere: .npy of shape (D,) or (N, D), or .npz of named vectors")
    p.add_argument("-o", "--output", action="append", default=None, metavar="DIR|FILE|speakers",
                   help="batch: output directory (default: ./separated); streaming: a .wav file and/or 'speakers' (repeatable)")
    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE", help="separator: a .safetensors checkpoint or an original CLIPSep-NIT .pt (default: the bundled model, see clipsep_rt/models/MODEL_CARD.md)")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR", help="an engine folder made by `clipsep-rt export` (needs nothing else)")
    p.add_argument("-b", "--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"),
                   help="auto picks the fastest available and says why faster ones were skipped (default: auto)")
    p.add_argument("-d", "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="network precision; auto = fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    p.add_argument("--compile", action="store_true", help="torch backend: run the U-Net through torch.compile (slow start)")
    p.add_argument("--mask", default="soft", choices=("soft", "binary"), help="soft (sigmoid) or binary (> 0.5) masks (default: soft)")
    p.add_argument("--noise-heads", action="store_true", help="also write CLIPSep-NIT's two noise-head outputs per query")
    p.add_argument("--residual", action="store_true", help="also write the mixture minus each selection")
    p.add_argument("--combine", action="store_true", help="also write one output for the union of all queries")
    p.add_argument("--video", action="store_true", help="write video inputs back as videos with the separated audio")
    p.add_argument("--format", dest="audio_format", default="wav", choices=("wav", "flac"), help="audio output format: float32 wav or 24-bit flac")
    p.add_argument("--sample-rate", type=_output_rate, default=None, metavar="HZ|input",
                   help="output sample rate (default: input, the input's own rate; the model works at 16000)")
    p.add_argument("--overlap", type=int, default=64, metavar="FRAMES", help="crossfade between network windows, 0..128 frames (default: 64)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="network windows per batch (default: 4 on CPU, 16 on CUDA)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    _report_arguments(p)
    _streaming_arguments(p)
    _query_encoder_arguments(p)
    p.set_defaults(handler=_run_separate)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report (a static HTML page with spectrograms and players; needs clipsep-rt[report])")
    g.add_argument("--report", type=Path, metavar="DIR",
                   help="also write DIR/index.html: log-frequency spectrograms and audio of the mixture, each prediction "
                        "and noise head, per query (open it in a browser)")
    g.add_argument("--reference", type=Path, metavar="FILE",
                   help="with --report and one input: the true sound of the first query (adds SDRi)")
    g.add_argument("--interference", type=Path, metavar="FILE",
                   help="with --report and one input: the other sound in the mixture")


def _streaming_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("streaming (--input mic, or a file with --stream)")
    g.add_argument("--stream", action="store_true", help="send a file through the low-latency streaming path")
    g.add_argument("--realtime", action="store_true", help="with --stream: pace the file like a live stream")
    g.add_argument("--latency", default="balanced", choices=sorted(PRESETS),
                   help="preset hop / look-ahead: low (96 ms, GPU), balanced (304 ms), quality (816 ms)")
    g.add_argument("--hop-frames", type=int, metavar="H", help="network run every H STFT frames (overrides --latency)")
    g.add_argument("--lookahead-frames", type=int, metavar="L", help="frames of look-ahead after those H (overrides --latency)")
    g.add_argument("--stats", type=Path, metavar="FILE.json", help="write per-hop timings, latency and overruns")
    g.add_argument("--input-device", metavar="NAME|ID", help="audio input device for --input mic (default: the system's)")
    g.add_argument("--output-device", metavar="NAME|ID", help="audio output device for speakers (default: the system's)")
    g.add_argument("--list-devices", action="store_true", help="list audio devices and exit")


def _output_rate(text: str) -> int | None:
    if text == "input":
        return None
    if not text.isdigit() or not 1000 <= int(text) <= 384000:
        raise argparse.ArgumentTypeError(f"expected 'input' or a rate in Hz (1000..384000), got {text!r}")
    return int(text)


def _query_encoder_arguments(p: argparse.ArgumentParser) -> None:
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


def _convert_parser(sub) -> None:
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
                        f"{PAPER_ENCODER} (the paper's CLIP) for original .pt files)")
    p.add_argument("--half", action="store_true", help="store weights as FP16 (half the size)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=_run_convert)


def _embed_parser(sub) -> None:
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
    _query_encoder_arguments(p)
    p.set_defaults(handler=_run_embed)


def _embed_frames_parser(sub) -> None:
    p = sub.add_parser(
        "embed-frames", help="precompute the CLIP image embeddings of a video dataset's frames for training",
        description="Embed every frame of every clip of a dataset index with the frozen CLIP image encoder, once, "
                    "into a .npz that `clipsep-rt train` reads (config key frame_embeddings), so training never "
                    "runs CLIP. An existing complete file from the same encoder is kept.",
    )
    p.add_argument("index", type=Path, metavar="INDEX.csv", help="a dataset index with a frames column")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("--query-encoder", default=PAPER_ENCODER, metavar="SPEC",
                   help=f"open_clip:MODEL/TAG or open_clip:MODEL with --clip-weights (default: {PAPER_ENCODER})")
    p.add_argument("--clip-weights", type=Path, metavar="FILE", help="a local open_clip weights file")
    p.add_argument("--download-weights", action="store_true", help="download missing CLIP weights from the Hugging Face Hub")
    p.add_argument("-d", "--device", default="cpu", help="device for the encoder (default: cpu)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="frames per encoder call (default: 64)")
    p.set_defaults(handler=_run_embed_frames)


def _export_parser(sub) -> None:
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
    p.set_defaults(handler=_run_export)


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure streaming latency and real-time margin of each backend on this machine",
        description="Stream synthetic audio through every available backend and latency preset as fast as possible and "
                    "report the algorithmic latency, per-hop compute p50/p99 and the real-time factor (no audio device "
                    "needed). Without --checkpoint/--engine the full-size model runs with random weights (timings only).",
    )
    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE", help="a .safetensors checkpoint or an original CLIPSep-NIT .pt")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR", help="an engine folder made by `clipsep-rt export`")
    p.add_argument("-b", "--backend", action="append", choices=("torch", "onnxruntime", "tensorrt"), help="repeatable; default: all")
    p.add_argument("--preset", action="append", choices=sorted(PRESETS), help="repeatable; default: all")
    p.add_argument("--seconds", type=float, default=10.0, help="audio streamed per measurement (default: 10)")
    p.add_argument("-d", "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and onnxruntime")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows and the machine as JSON")
    p.set_defaults(handler=_run_bench)


def _eval_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="score a separator on held-out mixtures (SDR/SIR/SAR, SDRi, SI-SDR)",
        description="Mix each test clip with a clip of another class (fixed seed), separate it by the text of its "
                    "label (LabelSep: its class vector; PIT: the better of its two outputs), and report BSS Eval v4 "
                    "SDR/SIR/SAR over the whole signal, SDR improvement and SI-SDR: mean +- SEM and median, overall "
                    "and per class. --query-variants instead compares query wordings on the same mixtures.",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    p.add_argument("--data", type=Path, required=True, metavar="INDEX.csv", help="a dataset index (see the training docs)")
    p.add_argument("--split", default="test", help="the index split to draw from (default: test)")
    p.add_argument("--count", type=int, default=100, help="number of mixtures (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="mixture seed (default: 0)")
    p.add_argument("--mixtures", type=Path, metavar="FILE.json", help="reuse this list of mixtures, or write it if missing")
    p.add_argument("--ensemble", action="store_true", help="query with the prompt ensemble over the label's paraphrases")
    g = p.add_argument_group("baselines (LabelSep, PIT)")
    g.add_argument("--query-vectors", type=Path, metavar="FILE.npz",
                   help="query with these vectors instead of text: one per class, looked up by the target's label "
                        "(LabelSep's best.queries.npz); default for a labelsep/pit checkpoint: its .queries.npz")
    g.add_argument("--oracle", action="store_true",
                   help="with --query-vectors: separate with every vector and keep, per mixture, the output with the "
                        "best SDR against the target (PIT's oracle selection; default for a pit checkpoint)")
    g = p.add_argument_group("robustness to queries")
    g.add_argument("--query-variants", type=Path, metavar="FILE.json",
                   help='query each mixture with its label, a short and a long paraphrase ({"violin": {"short": ..., '
                        '"long": ...}, ...}) and an unrelated query; report SDRi and output energy per variant')
    g.add_argument("--unrelated-query", metavar="TEXT",
                   help="the unrelated query for --query-variants (default: the file's \"unrelated\", else 'car engine')")
    p.add_argument("-d", "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report as markdown")
    _query_encoder_arguments(p)
    p.set_defaults(handler=_run_eval)


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train CLIPSep, CLIPSep-NIT, LabelSep or PIT from a config file",
        description="Train a separator with the paper's recipe (2-source mix-and-separate, binary masks, weighted "
                    "BCE, Adam with warm-up and linear decay, gradient clip 1.0). Runs resume from OUT_DIR.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE.toml|json")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="override the output folder")
    p.add_argument("-d", "--device", help="override the device (cpu, cuda)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(handler=_run_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipsep-rt",
        description="Text-queried sound separation (CLIPSep / CLIPSep-NIT). "
                    "Without a subcommand, `separate` is assumed.",
    )
    parser.add_argument("--version", action="version", version=f"clipsep-rt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _separate_parser(sub)
    _convert_parser(sub)
    _embed_parser(sub)
    _embed_frames_parser(sub)
    _export_parser(sub)
    _bench_parser(sub)
    _eval_parser(sub)
    _train_parser(sub)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["separate", *argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_with_default_command(argv))
    try:
        return args.handler(args)
    except ClipsepError as error:
        print(f"clipsep-rt: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clipsep-rt: interrupted", file=sys.stderr)
        return 130


# -- separate ------------------------------------------------------------------------------


def _run_separate(args: argparse.Namespace) -> int:
    from .runtime.audio_io import expand_inputs
    from .runtime.batch import BatchSeparator
    from .runtime.outputs import OutputOptions
    from .runtime.session import open_session

    if args.list_devices:
        from .runtime.audio_devices import list_devices

        print(list_devices())
        return 0
    specs = [*args.inputs, *args.more_inputs]
    if not specs:
        raise ClipsepError("no input given: pass files, directories or globs (e.g. --input song.wav), or --input mic")
    if not args.query and not args.query_image and not args.query_embedding:
        raise ClipsepError("no query given: use --query TEXT, --query-image FILE or --query-embedding FILE")
    if (args.reference or args.interference) and not args.report:
        raise ClipsepError("--reference and --interference go with --report DIR")
    if specs == ["mic"] or args.stream:
        if args.report:
            raise ClipsepError("--report works with batch separation of files, not with --stream or --input mic")
        return _run_streaming(args, specs)
    if args.output and len(args.output) > 1:
        raise ClipsepError("batch separation writes to one output directory: give -o once")
    args.output = Path(args.output[0] if args.output else "separated")
    options = OutputOptions(args.noise_heads, args.residual, args.combine, args.video, args.audio_format, args.sample_rate)
    session = open_session(args, noise_heads=args.noise_heads)
    inputs, input_errors = expand_inputs(specs)
    for message in input_errors:
        print(f"clipsep-rt: error: {message}", file=sys.stderr)
    if not args.quiet:
        print(session.describe(), file=sys.stderr)
    batch = BatchSeparator(
        session.separator.offline, session.queries, session.noise_heads, options,
        args.output, overwrite=args.overwrite, progress=not args.quiet,
    )
    report_job = _report_job(args, session, inputs)  # checked before anything is separated
    report = batch.run(inputs)
    failed = len(report.failures) + len(input_errors)
    if not args.quiet:
        print(
            f"clipsep-rt: {len(inputs) - len(report.failures)} of {len(inputs) + len(input_errors)} inputs separated, "
            f"{len(report.written)} files written to {args.output}" + (f", {failed} failed" if failed else ""),
            file=sys.stderr,
        )
    if report_job is not None:
        failures = {source for source, _ in report.failures}
        separated = [source for source in inputs if str(source) not in failures]
        if separated:
            report_job.write(session.embeddings, separated)
            if not args.quiet:
                print(f"clipsep-rt: report written to {args.report / 'index.html'}", file=sys.stderr)
        else:
            print("clipsep-rt: no report written: no input was separated", file=sys.stderr)
    return EXIT_FAILURES if failed else 0


def _report_job(args: argparse.Namespace, session, inputs: list[Path]):
    """The --report job (None without --report): its files, matplotlib and the ground truth checked."""
    if args.report is None:
        return None
    from .report import GroundTruth, ReportJob

    truth = GroundTruth(args.reference, args.interference)
    return ReportJob(args.report, session.separator, inputs, session.queries.names, truth, overwrite=args.overwrite)


# -- streaming -----------------------------------------------------------------------------


def _run_streaming(args: argparse.Namespace, specs: list[str]) -> int:
    from .runtime.file_stream import stream_file, write_stats
    from .runtime.session import open_session
    from .runtime.streaming import StreamingOptions, StreamingSeparator

    live = specs == ["mic"]
    if not live and len(specs) != 1:
        raise ClipsepError("--stream takes one input file")
    sinks = args.output or (["speakers"] if live else [])
    files = [Path(sink) for sink in sinks if sink != "speakers"]
    if not sinks or (not live and not files and "speakers" not in sinks):
        raise ClipsepError("where to? give -o FILE.wav and/or -o speakers")
    if any(path.suffix.lower() != ".wav" for path in files) or len(files) > 1:
        raise ClipsepError("streaming records to one .wav file (-o FILE.wav)")
    preset = StreamingOptions.preset(args.latency, args.mask)
    options = StreamingOptions(
        args.hop_frames if args.hop_frames is not None else preset.hop_frames,
        args.lookahead_frames if args.lookahead_frames is not None else preset.lookahead_frames,
        args.mask,
    )
    session = open_session(args, noise_heads=False)
    separator = StreamingSeparator(session.separator.engine, session.queries.prepared, session.separator.spectral, options)
    if not args.quiet:
        print(f"{session.describe()}\nclipsep-rt: streaming with {separator.latency_ms:.0f} ms algorithmic latency "
              f"(hop {options.hop_frames}, look-ahead {options.lookahead_frames} frames)", file=sys.stderr)
    if live or "speakers" in sinks:
        _run_live(args, session, separator, source=None if live else Path(specs[0]),
                  record=files[0] if files else None, play="speakers" in sinks)
    else:
        source, destination = Path(specs[0]), files[0]
        if destination.resolve() == source.resolve():
            raise ClipsepError(f"{destination}: output would overwrite its input")
        stream_file(separator, source, destination, realtime=args.realtime, overwrite=args.overwrite)
        if not args.quiet:
            stats = separator.stats
            print(f"clipsep-rt: wrote {destination} (aligned with the input); hop compute p50 {stats.percentile_ms(50):.1f} ms, "
                  f"p99 {stats.percentile_ms(99):.1f} ms, {stats.overruns} overruns", file=sys.stderr)
        if args.stats:
            write_stats(separator, args.stats)
    return 0


def _run_live(args, session, separator, source: Path | None, record: Path | None, play: bool) -> None:
    """Microphone (or a file at real-time pace) to speakers and/or a recording, until Ctrl-C.

    A line typed on stdin switches the queries: as many as at the start, separated by ';'."""
    from .runtime.live import LiveRunner, read_queries_from_stdin

    runner = LiveRunner(
        separator, input_device=args.input_device, output_device=args.output_device, output_file=record, play=play,
        status=None if args.quiet else (lambda line: print(f"clipsep-rt: {line}", file=sys.stderr, flush=True)),
        source_file=source, overwrite=args.overwrite, query_names=session.queries.names,
    )

    live_runner = weakref.ref(runner)  # the stdin thread outlives the run: let the runner go

    def switch(text: str) -> None:
        names = [query.strip() for query in text.split(";") if query.strip()]
        embeddings = session.separator.embed_text(names)
        if (current := live_runner()) is not None:
            current.switch_queries(session.separator.prepare_queries(embeddings, noise_heads=False), names)

    if not args.quiet and source is None:
        print("clipsep-rt: type a new query and Enter to switch; Ctrl-C stops", file=sys.stderr)
    read_queries_from_stdin(switch)
    runner.run()
    if args.stats:
        runner.write_stats(args.stats)


# -- bench ---------------------------------------------------------------------------------


def _run_bench(args: argparse.Namespace) -> int:
    from .runtime.bench import format_table, machine_info, rows_to_json, run_bench

    rows = run_bench(args.checkpoint, args.engine, args.backend, args.preset, args.seconds, args.device, args.threads,
                     log=lambda line: print(f"clipsep-rt: {line}", file=sys.stderr, flush=True))
    print(format_table(rows), end="")
    if args.json:
        with atomic_output(args.json, overwrite=True) as temp:
            temp.write_text(json.dumps(rows_to_json(rows, machine_info(args.threads)), indent=2) + "\n")
    return 0 if any(row.status == "ok" for row in rows) else EXIT_FAILURES


# -- train ---------------------------------------------------------------------------------


def _run_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .training.trainer import TrainConfig, train

    if args.threads is not None:
        if args.threads < 1:
            raise ClipsepError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    config = TrainConfig.from_file(args.config)
    overrides = {"steps": args.steps, "out_dir": args.out_dir, "device": args.device}
    config = replace(config, **{key: value for key, value in overrides.items() if value is not None})
    best = train(config, log=lambda line: print(f"clipsep-rt: {line}", file=sys.stderr, flush=True))
    print(f"best checkpoint: {best}")
    return 0


# -- eval ----------------------------------------------------------------------------------


def _run_eval(args: argparse.Namespace) -> int:
    from .api import Separator
    from .query import QueryEncoderOptions
    from .training import evaluate as ev

    if args.query_variants and (args.query_vectors or args.oracle or args.ensemble):
        raise ClipsepError("--query-variants queries by text: it does not combine with --query-vectors, --oracle or --ensemble")
    if args.query_vectors and args.ensemble:
        raise ClipsepError("--ensemble queries by text: it does not combine with --query-vectors")
    if args.unrelated_query is not None and not args.query_variants:
        raise ClipsepError("--unrelated-query belongs to --query-variants")
    variants = ev.QueryVariants.from_file(args.query_variants, args.unrelated_query) if args.query_variants else None
    encoder = QueryEncoderOptions(
        spec=args.query_encoder, clip_weights=args.clip_weights, prompt=args.prompt,
        cache_dir=args.cache_dir, use_cache=not args.no_cache, allow_download=args.download_weights,
    )
    separator = Separator.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision, encoder=encoder)
    vectors, oracle = args.query_vectors, args.oracle
    kind = separator.query_encoder if separator.query_encoder in ("labelsep", "pit") else None
    if kind and (variants is not None or args.ensemble):
        raise ClipsepError(f"{args.checkpoint} is a {kind} model: it is queried by learned vectors, not by text")
    if kind and vectors is None:
        vectors = args.checkpoint.with_suffix(".queries.npz")
        if not vectors.is_file():
            raise ClipsepError(f"{args.checkpoint} is a {kind} model: give its query vectors with --query-vectors FILE.npz")
        oracle = oracle or kind == "pit"
    if oracle and vectors is None:
        raise ClipsepError("--oracle needs --query-vectors FILE.npz")
    if args.mixtures and args.mixtures.exists():
        mixtures = ev.read_mixture_list(args.mixtures)
    else:
        mixtures = ev.make_eval_mixtures(args.data, split=args.split, count=args.count, seed=args.seed)
        if args.mixtures:
            ev.write_mixture_list(mixtures, args.mixtures)

    def log(line: str) -> None:
        print(f"clipsep-rt: {line}", file=sys.stderr, flush=True)

    if variants is not None:
        variants.check(mixtures, f"query variants {args.query_variants}")
        report = ev.evaluate_query_variants(separator, mixtures, variants, log=log)
        markdown, data = ev.variant_report_markdown(report), ev.variant_report_json(report)
    else:
        queries = ev.query_vector_strategy(vectors, oracle=oracle) if vectors is not None else None
        report = ev.evaluate(separator, mixtures, "ensemble" if args.ensemble else "label", log=log, queries=queries)
        markdown, data = ev.report_markdown(report), ev.report_json(report)
    print(markdown, end="")
    for path, text in ((args.json, data), (args.markdown, markdown)):
        if path:
            with atomic_output(path, overwrite=True) as temp:
                temp.write_text(text)
    return 0


# -- embed-frames --------------------------------------------------------------------------


def _run_embed_frames(args: argparse.Namespace) -> int:
    from .query.registry import build_encoder
    from .training.datasets import precompute_frame_embeddings

    if args.output.suffix != ".npz":
        raise ClipsepError(f"{args.output}: the output name must end in .npz")
    if args.batch_size < 1:
        raise ClipsepError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.index.is_file():
        raise ClipsepError(f"index {args.index}: no such file")
    encoder = build_encoder(args.query_encoder, args.device, args.clip_weights, allow_download=args.download_weights)
    table = precompute_frame_embeddings(args.index, encoder, args.output, batch_size=args.batch_size)
    print(f"{args.output}: {len(table.keys)} frame embeddings ({table.dim}-d, {table.encoder_id})")
    return 0


# -- embed ---------------------------------------------------------------------------------


def _run_embed(args: argparse.Namespace) -> int:
    from .export.manifest import read_manifest
    from .model.checkpoint import load_checkpoint
    from .query import QueryEmbedder, QueryEncoderOptions, save_query_embeddings

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
    options = QueryEncoderOptions(
        spec=spec, clip_weights=args.clip_weights, prompt=args.prompt, prompt_ensemble=args.prompt_ensemble,
        cache_dir=args.cache_dir, use_cache=not args.no_cache, allow_download=args.download_weights,
    )
    if manifest and manifest.text_encoder and not args.query_encoder:
        from .query.onnx_text_backend import OnnxTextEncoder

        text_onnx, tokenizer = args.engine / manifest.text_encoder.onnx, manifest.text_encoder.tokenizer
        embedder = QueryEmbedder(spec, options, args.device, encoder_id=spec,
                                 factory=lambda: OnnxTextEncoder(text_onnx, tokenizer, encoder_id=spec))
    else:
        embedder = QueryEmbedder(spec, options, args.device)
    names, blocks = list(args.queries), []
    if args.queries:
        blocks.append(embedder.embed_text(args.queries))
    if args.image:
        names += [Path(path).stem for path in args.image]
        blocks.append(embedder.embed_images(args.image))
    embeddings = np.concatenate(blocks)
    save_query_embeddings(args.output, names, embeddings)
    print(f"embedded {len(names)} queries with {embedder.encoder_id} ({embeddings.shape[1]} values each) -> {args.output}")
    return 0


# -- export --------------------------------------------------------------------------------


def _run_export(args: argparse.Namespace) -> int:
    from .export.pipeline import ExportOptions, export_engines
    from .query import QueryEncoderOptions

    options = ExportOptions(
        fp16=args.fp16, text_encoder=args.text_encoder, tensorrt=args.tensorrt, opset=args.opset,
        encoder=QueryEncoderOptions(clip_weights=args.clip_weights, allow_download=args.download_weights),
        overwrite=args.overwrite,
    )
    manifest = export_engines(args.checkpoint, args.output, options)
    print(f"exported {', '.join(manifest.files())} and manifest.json to {args.output}")
    return 0


# -- convert -------------------------------------------------------------------------------


def _run_convert(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .model.checkpoint import load_checkpoint, load_official, save_checkpoint

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
        checkpoint = load_official(args.source, query_encoder=args.query_encoder or PAPER_ENCODER)
    if args.source.resolve() == args.output.resolve():
        raise ClipsepError(f"{args.output}: converting a file onto itself; choose another output name")
    save_checkpoint(checkpoint, args.output, half=args.half, overwrite=args.overwrite)
    config = checkpoint.model_config
    print(
        f"converted {args.source} -> {args.output}: depth {config.depth}, ngf {config.ngf}, "
        f"{config.noise_heads} noise heads, query {config.query_dim}-d ({checkpoint.query_encoder})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
