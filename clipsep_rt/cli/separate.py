"""`clipsep-rt separate` (the default command): files in, one output per query, optional report.

With --stream or --input mic the same command line goes to the streaming path (`cli.stream`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipsep_rt.cli.common import (
    EXIT_FAILURES,
    PRECISIONS,
    device_argument,
    output_rate,
    query_encoder_arguments,
    say,
    say_error,
)
from clipsep_rt.cli.stream import run_stream, streaming_arguments
from clipsep_rt.errors import ClipsepError


def add_parser(sub) -> None:
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
    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE", help="separator: a .safetensors checkpoint or an original CLIPSep-NIT .pt (default: the bundled model, see clipsep_rt/model/weights/MODEL_CARD.md)")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR", help="an engine folder made by `clipsep-rt export` (needs nothing else)")
    p.add_argument("-b", "--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"),
                   help="auto picks the fastest available and says why faster ones were skipped (default: auto)")
    device_argument(p)
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="network precision; auto = fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    p.add_argument("--compile", action="store_true", help="torch backend: run the U-Net through torch.compile (slow start)")
    p.add_argument("--mask", default="soft", choices=("soft", "binary"), help="soft (sigmoid) or binary (> 0.5) masks (default: soft)")
    p.add_argument("--noise-heads", action="store_true", help="also write CLIPSep-NIT's two noise-head outputs per query")
    p.add_argument("--residual", action="store_true", help="also write the mixture minus each selection")
    p.add_argument("--combine", action="store_true", help="also write one output for the union of all queries")
    p.add_argument("--video", action="store_true", help="write video inputs back as videos with the separated audio")
    p.add_argument("--format", dest="audio_format", default="wav", choices=("wav", "flac"), help="audio output format: float32 wav or 24-bit flac")
    p.add_argument("--sample-rate", type=output_rate, default=None, metavar="HZ|input",
                   help="output sample rate (default: input, the input's own rate; the model works at 16000)")
    p.add_argument("--overlap", type=int, default=64, metavar="FRAMES", help="crossfade between network windows, 0..128 frames (default: 64)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="network windows per batch (default: 4 on CPU, 16 on CUDA)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    _report_arguments(p)
    streaming_arguments(p)
    query_encoder_arguments(p)
    p.set_defaults(handler=run)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report (a static HTML page with spectrograms and players; needs clipsep-rt[report])")
    g.add_argument("--report", type=Path, metavar="DIR",
                   help="also write DIR/index.html: log-frequency spectrograms and audio of the mixture, each prediction "
                        "and noise head, per query (open it in a browser)")
    g.add_argument("--reference", type=Path, metavar="FILE",
                   help="with --report and one input: the true sound of the first query (adds SDRi)")
    g.add_argument("--interference", type=Path, metavar="FILE",
                   help="with --report and one input: the other sound in the mixture")


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        from clipsep_rt.runtime.live.devices import list_devices

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
        return run_stream(args, specs)
    return _run_batch(args, specs)


def _run_batch(args: argparse.Namespace, specs: list[str]) -> int:
    from clipsep_rt.cli.session import open_session
    from clipsep_rt.io.media import expand_inputs
    from clipsep_rt.runtime.jobs.batch import BatchSeparator
    from clipsep_rt.runtime.jobs.outputs import OutputOptions

    if args.output and len(args.output) > 1:
        raise ClipsepError("batch separation writes to one output directory: give -o once")
    output = Path(args.output[0] if args.output else "separated")
    options = OutputOptions(args.noise_heads, args.residual, args.combine, args.video, args.audio_format, args.sample_rate)
    session = open_session(args, noise_heads=args.noise_heads)
    inputs, input_errors = expand_inputs(specs)
    for message in input_errors:
        say_error(message)
    if not args.quiet:
        print(session.describe(), file=sys.stderr)
    batch = BatchSeparator(
        session.separator.offline, session.queries, session.noise_heads, options,
        output, overwrite=args.overwrite, log=say, progress=None if args.quiet else _progress_bar,
    )
    report_job = _report_job(args, session, inputs)  # checked before anything is separated
    report = batch.run(inputs)
    failed = len(report.failures) + len(input_errors)
    if not args.quiet:
        say(f"{len(inputs) - len(report.failures)} of {len(inputs) + len(input_errors)} inputs separated, "
            f"{len(report.written)} files written to {output}" + (f", {failed} failed" if failed else ""))
    if report_job is not None:
        failures = {source for source, _ in report.failures}
        separated = [source for source in inputs if str(source) not in failures]
        if separated:
            report_job.write(session.embeddings, separated)
            if not args.quiet:
                say(f"report written to {args.report / 'index.html'}")
        else:
            say("no report written: no input was separated")
    return EXIT_FAILURES if failed else 0


def _report_job(args: argparse.Namespace, session, inputs: list[Path]):
    """The --report job (None without --report): its files, matplotlib and the ground truth checked."""
    if args.report is None:
        return None
    from clipsep_rt.report import GroundTruth, ReportJob

    truth = GroundTruth(args.reference, args.interference)
    return ReportJob(args.report, session.separator, inputs, session.queries.names, truth, overwrite=args.overwrite)


def _progress_bar(source: Path, duration_s: float | None):
    """One input's progress on stderr, in seconds of its audio (the batch's `progress` meter)."""
    from tqdm import tqdm

    return tqdm(
        total=duration_s, desc=source.name, unit="s",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
        leave=False, file=sys.stderr, disable=None,
    )
