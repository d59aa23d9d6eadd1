"""`clipsep-rt separate` (the default command): files in, one output per query, optional report.

One batch path (`jobs.run.Batch`) with its executor chosen by --ray: this process
(`LocalExecutor`) or a pool of Ray workers (`cli.ray_batch`). With --stream or --input mic
the same command line goes to the streaming path (`cli.stream`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from clipsep_rt.cli.common import (
    EXIT_FAILURES,
    model_arguments,
    output_rate,
    query_encoder_arguments,
    say,
    say_error,
)
from clipsep_rt.cli.ray_batch import FilesMeter, check_ray_options, ray_arguments, ray_cluster, ray_executor, wants_ray
from clipsep_rt.cli.stream import run_stream, streaming_arguments
from clipsep_rt.errors import ClipsepError, OptionError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "separate",
        help="separate files by text query (the default command)",
        description="Separate the sound named by each query out of audio and video files.",
    )
    p.add_argument("inputs", nargs="*", metavar="PATH",
                   help="input files, directories, glob patterns, or .txt/.csv lists of them (one path per line; "
                        "a csv's path column)")
    p.add_argument("-i", "--input", dest="more_inputs", action="extend", nargs="+", default=[], metavar="PATH",
                   help="more inputs (same as positional PATHs)")
    p.add_argument("-q", "--query", action="append", default=[], metavar="TEXT", help="what to separate, e.g. 'dog barking' (repeatable)")
    p.add_argument("--query-image", action="append", default=[], metavar="FILE",
                   help="a picture of the sound source, embedded by the CLIP image encoder (repeatable)")
    p.add_argument("--query-embedding", action="append", default=[], metavar="FILE",
                   help="query vectors computed elsewhere: .npy of shape (D,) or (N, D), or .npz of named vectors")
    p.add_argument("--query-audio", action="append", default=[], metavar="CLIP",
                   help="query by example: a few seconds of the wanted sound (any format); a query vector is fitted "
                        "to it and its output named after the file (repeatable)")
    p.add_argument("--query-span", type=parse_span, metavar="START-END",
                   help="query by time span: the seconds of the (one) input where the wanted sound is heard, ideally "
                        "alone, e.g. 12.5-15; fitted against the rest of the input (output named span_START-END)")
    p.add_argument("--exclude", action="append", default=[], metavar="TEXT",
                   help="a sound to leave out of every output, e.g. 'speech' (repeatable; same network pass); "
                        "with no query, the one output is everything but it (named all_but_<TEXT>)")
    p.add_argument("--exclude-image", action="append", default=[], metavar="FILE",
                   help="a picture of a sound source to leave out of every output (repeatable)")
    p.add_argument("--exclude-embedding", action="append", default=[], metavar="FILE",
                   help="query vectors (as --query-embedding) of sounds to leave out of every output")
    p.add_argument("-o", "--output", action="append", default=None, metavar="DIR|FILE|speakers",
                   help="batch: output directory (default: ./separated), or with one input and one output a .wav/.flac "
                        "file; streaming: a .wav file and/or 'speakers' (repeatable)")
    model_arguments(p, "auto picks the fastest available and says why faster ones were skipped (default: auto)")
    p.add_argument("--compile", action="store_true", help="torch backend: run the U-Net through torch.compile (slow start)")
    p.add_argument("--mask", default="soft", choices=("soft", "binary"), help="soft (sigmoid) or binary (> 0.5) masks (default: soft)")
    p.add_argument("--noise-heads", action="store_true", help="also write CLIPSep-NIT's two noise-head outputs per query")
    p.add_argument("--residual", action="store_true", help="also write the mixture minus each selection")
    p.add_argument("--combine", action="store_true", help="also write one output for the union of all queries")
    p.add_argument("--video", action="store_true", help="write video inputs back as videos with the separated audio")
    p.add_argument("--format", dest="audio_format", default="wav", choices=("wav", "flac"), help="audio output format: float32 wav or 24-bit flac")
    p.add_argument("--mono", action="store_true",
                   help="downmix every input to mono (default: outputs keep the input's channels)")
    p.add_argument("--sample-rate", type=output_rate, default=None, metavar="HZ|input",
                   help="output sample rate (default: input, the input's own rate; the model works at 16000)")
    p.add_argument("--overlap", type=int, default=64, metavar="FRAMES", help="crossfade between network windows, 0..128 frames (default: 64)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="network windows per call, 1 to 16: memory grows with it, never with the file "
                        "(default: 4 on CPU, 16 on CUDA)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (default: keep them and skip)")
    p.add_argument("--gate", action="store_true",
                   help="presence gate: where a query's presence score says its sound is absent, its output fades to "
                        "silence (64 ms ramps, 250 ms hangover) instead of passing some of the mixture (default: off; "
                        "see README, Presence)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    _report_arguments(p)
    streaming_arguments(p)
    ray_arguments(p)
    query_encoder_arguments(p)
    p.set_defaults(handler=run, given={})  # given: the options typed (dest -> flag), set by cli.main


# Options that only one mode uses (argparse dest -> flag): given in the other mode they are refused.
# (--sample-rate and --mono serve both: batch outputs and a file streamed to a file; live runs refuse them.)
BATCH_ONLY = {
    "noise_heads": "--noise-heads", "residual": "--residual", "combine": "--combine", "video": "--video",
    "audio_format": "--format", "overlap": "--overlap", "batch_size": "--batch-size",
    "report": "--report", "reference": "--reference", "interference": "--interference",
}
STREAMING_ONLY = {
    "realtime": "--realtime", "latency": "--latency", "hop_frames": "--hop-frames",
    "lookahead_frames": "--lookahead-frames", "input_device": "--input-device",
    "output_device": "--output-device", "buffer_ms": "--buffer-ms",
}
# Query-encoder options -> the queries they act on (text: --query; images: --query-image).
ENCODER_OPTIONS = {
    "prompt": ("--prompt", ("query",)), "prompt_ensemble": ("--prompt-ensemble", ("query",)),
    "query_encoder": ("--query-encoder", ("query", "query_image")),
    "clip_weights": ("--clip-weights", ("query", "query_image")),
    "download_weights": ("--download-weights", ("query", "query_image")),
    "cache_dir": ("--cache-dir", ("query", "query_image")), "no_cache": ("--no-cache", ("query", "query_image")),
}
# Exclusions are embedded as queries are: an encoder option acting on --query acts on --exclude too.
EXCLUSION_OF = {"query": "exclude", "query_image": "exclude_image"}
EXCLUSION_FLAGS = {"exclude": "--exclude", "exclude_image": "--exclude-image", "exclude_embedding": "--exclude-embedding"}
# What exclusions do not go with (argparse dest -> flag), and why.
NOT_WITH_EXCLUSIONS = {
    "noise_heads": ("--noise-heads", "exclusions combine query masks; the noise heads have no such mask"),
}


def parse_span(text: str) -> tuple[float, float]:
    """--query-span's START-END in seconds (argparse type): '1.5-4' -> (1.5, 4.0)."""
    start, dash, end = text.partition("-")
    try:
        span = float(start), float(end)
        if not dash or not all(map(math.isfinite, span)):
            raise ValueError
        return span
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give START-END in seconds, e.g. 1.5-4") from None


def _report_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report (a static HTML page with spectrograms and players; needs clipsep-rt[report])")
    g.add_argument("--report", type=Path, metavar="DIR",
                   help="also write DIR/index.html: log-frequency spectrograms and audio of the mixture, each prediction "
                        "and noise head, per output (with --exclude, without the excluded sounds; open it in a browser)")
    g.add_argument("--reference", type=Path, metavar="FILE",
                   help="with --report and one input: the true sound of the first query (adds SDRi)")
    g.add_argument("--interference", type=Path, metavar="FILE",
                   help="with --report and one input: the other sound in the mixture")


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        others = [flag for name, flag in args.given.items() if name != "list_devices"]
        if others:
            raise ClipsepError(f"--list-devices lists the audio devices and exits; it takes no other options ({', '.join(others)})")
        from clipsep_rt.runtime.live.devices import list_devices

        print(list_devices())
        return 0
    specs = [*args.inputs, *args.more_inputs]
    if not specs:
        raise ClipsepError("no input given: pass files, directories or globs (e.g. --input song.wav), or --input mic")
    excluding = [flag for name, flag in EXCLUSION_FLAGS.items() if getattr(args, name)]
    if not args.query and not args.query_image and not args.query_embedding and not excluding \
            and not args.query_audio and args.query_span is None:
        raise ClipsepError("no query given: use --query TEXT, --query-image FILE, --query-embedding FILE, "
                           "--query-audio CLIP or --query-span START-END (or --exclude TEXT for everything but it)")
    for name, (flag, why) in NOT_WITH_EXCLUSIONS.items():
        if excluding and getattr(args, name):
            raise ClipsepError(f"{flag} does not go with {', '.join(excluding)}: {why}")
    if (args.reference or args.interference) and not args.report:
        raise ClipsepError("--reference and --interference go with --report DIR")
    _refuse_unused_options(args, specs)
    if wants_ray(args):
        check_ray_options(args, specs)
    if _streams(args, specs):
        return run_stream(args, specs)
    return _run_batch(args, specs)


def _streams(args: argparse.Namespace, specs: list[str]) -> bool:
    """The streaming path: --input mic, --stream, or -o speakers (playing needs it)."""
    return specs == ["mic"] or args.stream or "speakers" in (args.output or [])


def _refuse_unused_options(args: argparse.Namespace, specs: list[str]) -> None:
    """An option the chosen mode would ignore is an error naming it, not silently dropped."""

    def refuse(flags: list[str], why: str) -> None:
        if flags:
            raise ClipsepError(f"{', '.join(flags)}: {why}")

    live_input = specs == ["mic"]
    sinks = args.output or []
    if _streams(args, specs):
        live = live_input or "speakers" in sinks
        refuse([flag for name, flag in BATCH_ONLY.items() if name in args.given],
               "batch options, not used when streaming (--stream, --input mic or -o speakers)")
        refuse(["--mono"] if args.mono and live else [], "live audio is mono already (the device's channels are averaged)")
        refuse(["--buffer-ms"] if args.buffer_ms is not None and not live else [],
               "sizes the playback buffer of a live run (--input mic or -o speakers)")
        refuse(["--realtime"] if args.realtime and (live_input or "speakers" in sinks or not sinks) else [],
               "paces a file streamed to a .wav file (-o FILE.wav); a live stream already runs in real time")
        refuse(["--input-device"] if args.input_device and not live_input else [], "needs --input mic")
        refuse(["--output-device"] if args.output_device and not (live_input and not sinks or "speakers" in sinks) else [],
               "needs -o speakers")
        refuse(["--overwrite"] if args.overwrite and all(sink == "speakers" for sink in sinks) else [],
               "nothing is recorded to a file (add -o FILE.wav)")
    else:
        refuse([flag for name, flag in STREAMING_ONLY.items() if name in args.given],
               "streaming options: add --stream (a file) or use --input mic")
    if args.compile and (args.engine is not None or args.backend in ("onnxruntime", "tensorrt")):
        refuse(["--compile"], "compiles the torch backend only (not with --engine or --backend onnxruntime/tensorrt)")
    if not args.engine_cache and (args.checkpoint is None or args.engine is not None):
        refuse(["--no-engine-cache"], "skips compiling a --checkpoint given alone (with --engine or the bundled model "
                                      "nothing is compiled)")
    typed_queries = live_input or "speakers" in sinks  # a live run embeds the queries typed on stdin
    for name, (flag, uses) in ENCODER_OPTIONS.items():
        given = [use for use in uses if getattr(args, use) or getattr(args, EXCLUSION_OF.get(use, use))]
        if name in args.given and not typed_queries and not given:
            kinds = " or ".join("--query TEXT" if use == "query" else "--query-image FILE" for use in uses)
            refuse([flag], f"acts on {kinds} queries, and none is given")


def _run_batch(args: argparse.Namespace, specs: list[str]) -> int:
    from clipsep_rt.cli.session import open_session
    from clipsep_rt.io.inputs import collect_inputs
    from clipsep_rt.jobs.batch import BatchJob
    from clipsep_rt.jobs.outputs import OutputOptions
    from clipsep_rt.jobs.run import Batch, LocalExecutor

    output, output_file = _batch_output(args)
    audio_format = output_file.suffix[1:].lower() if output_file else args.audio_format
    options = OutputOptions(args.noise_heads, args.residual, args.combine, args.video, audio_format, args.sample_rate,
                            mono=args.mono)
    cluster = ray_cluster(args) if args.ray is not None else None
    session = open_session(args, noise_heads=args.noise_heads)  # embeds the queries once, for either executor
    found = collect_inputs(specs)
    for message in found.errors:
        say_error(message)
    if not args.quiet:
        print(session.describe(), file=sys.stderr)
    job = BatchJob.of(session.queries, options, output, overwrite=args.overwrite, output_file=output_file)
    if args.gate:
        from clipsep_rt.dsp.presence import GateOptions  # numpy: not imported for --help

        job = dataclasses.replace(job, gate=GateOptions())
    meter = FilesMeter(len(found.files)) if cluster is not None and not args.quiet else None
    batch = Batch(job, found.files, found.roots, log=say, progress=meter.update if meter else None)
    report_job = _report_job(args, session, found.files)  # checked before anything is separated
    if cluster is not None:
        executor = ray_executor(session.separator, cluster)
    else:
        executor = LocalExecutor(session.separator, progress=None if args.quiet else _progress_bar)
    try:
        report = batch.run(executor)
    except KeyboardInterrupt:
        _say_stopped(batch.report, len(found.files))
        raise
    finally:
        if meter is not None:
            meter.close()
    failed = len(report.failures) + len(found.errors)
    if not args.quiet:
        _say_skips(report, batch.manifest.path)
        say(_summary(report, len(found.errors), output_file or output, batch.manifest.path, session.model))
    if report_job is not None:
        failures = {result.input for result in report.failures}
        separated = [source for source in found.files if str(source.resolve()) not in failures]
        if separated:
            report_job.write(separated)
            if not args.quiet:
                say(f"report written to {args.report / 'index.html'}")
        else:
            say("no report written: no input was separated")
    if args.stats:
        _write_presence_stats(args.stats, report.results, job.gate)
    return EXIT_FAILURES if failed else 0


def _write_presence_stats(path: Path, results, gate) -> None:
    """Batch --stats: each input separated in this run, with its queries' presence per second."""
    from clipsep_rt.dsp.presence import GateOptions, presence_json
    from clipsep_rt.runtime.stream_stats import write_stats_json

    threshold = (gate or GateOptions()).threshold
    inputs = [{"input": result.input, "gate": gate is not None, "presence": presence_json(result.presence, threshold)}
              for result in results if result.presence is not None]
    write_stats_json(path, {"inputs": inputs})


def _summary(report, input_errors: int, destination: Path, manifest: Path, model: str) -> str:
    """The batch's summary line, the same for both executors."""
    failed = len(report.failures) + input_errors
    skipped = len(report.skipped) + len(report.already_done)
    line = f"{len(report.separated)} of {report.total + input_errors} inputs separated"
    line += f" on {len(report.workers)} Ray workers" if report.workers else ""
    warned = sum(1 for result in report.separated if result.warnings)  # cut short, silent: separated all the same
    line += f", {warned} with warnings (above)" if warned else ""
    line += f", {skipped} skipped (outputs exist)" if skipped else ""
    line += f", {len(report.left_to_others)} left to another run writing them" if report.left_to_others else ""
    line += f", {failed} failed" if failed else ""
    line += f"; {len(report.written)} files written to {destination}"
    line += f", {len(report.kept)} existing kept" if report.kept else ""
    line += f"; {len(report.already_done)} already done per {manifest}" if report.already_done else ""
    if report.audio_seconds and report.elapsed_s:
        audio = report.audio_seconds
        amount = f"{audio / 3600:.3g} h" if audio >= 3600 else f"{audio:.1f} s"
        line += f"; {amount} of audio in {report.elapsed_s:.1f} s ({audio / report.elapsed_s:.3g}x real time)"
    return f"{line}; model: {model}"


def _say_skips(report, manifest: Path, limit: int = 20) -> None:
    """One line per skipped input (the first `limit`), on stderr."""
    lines = [f"{result.input}: kept its existing outputs (--overwrite replaces them)" for result in report.skipped]
    lines += [f"{result.input}: already done per {manifest} (--overwrite separates it again)"
              for result in report.already_done]
    for line in lines[:limit]:
        say(line)
    if len(lines) > limit:
        say(f"... and {len(lines) - limit} more inputs skipped")


def _batch_output(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """-o in batch mode: (the output directory, None), or (its folder, the file) for -o FILE.wav/.flac."""
    from clipsep_rt.io.media import MEDIA_EXTENSIONS

    if args.output and len(args.output) > 1:
        raise ClipsepError("-o/--output: batch separation writes to one output directory (or one file): give -o once")
    output = Path(args.output[0] if args.output else "separated")
    suffix = output.suffix.lower()
    if suffix in (".wav", ".flac") and not output.is_dir():
        if "audio_format" in args.given and args.audio_format != suffix[1:]:
            raise ClipsepError(f"--format {args.audio_format}: -o {output} already names a {suffix[1:]} file")
        if args.video:
            raise ClipsepError(f"--video: videos are written into an output directory, not to -o {output}")
        _refuse_several_outputs(args, output)
        return output.parent, output
    if suffix in MEDIA_EXTENSIONS:
        raise ClipsepError(f"-o/--output {output}: a batch writes .wav or .flac files; give a directory, "
                           "or a .wav/.flac file name for one input and one output")
    if output.exists() and not output.is_dir():
        raise ClipsepError(f"-o/--output {output}: exists and is not a directory")
    return output, None


def _refuse_several_outputs(args: argparse.Namespace, output_file: Path) -> None:
    """-o FILE with queries and options that give each input several outputs: refused before the
    model and the query encoder load. (Query-vector files are counted once read: the batch job
    refuses them.)"""
    from clipsep_rt.jobs.outputs import OutputOptions, output_targets

    if args.query_embedding:
        return
    count = len(args.query) + len(args.query_image) + len(args.query_audio) + (args.query_span is not None)
    queries = [f"query {index}" for index in range(count or 1)]  # none: the one "all but" output of exclusions
    options = OutputOptions(noise_heads=args.noise_heads, residual=args.residual, combine=args.combine)
    outputs = len(output_targets(queries, 1, options))  # the model's noise heads: at least one
    if outputs > 1:
        least = "at least " if args.noise_heads else ""
        raise OptionError("output_file", f"{output_file} names one file, but each input gets {least}{outputs} outputs: "
                                         "give an output directory")


def _say_stopped(report, total: int, limit: int = 20) -> None:
    """What an interrupted batch finished, on stderr (its unfinished file left nothing)."""
    finished = [Path(result.input).name for result in [*report.results, *report.already_done] if result.error is None]
    more = f" and {len(finished) - limit} more" if len(finished) > limit else ""
    names = f": {', '.join(finished[:limit])}{more}" if finished else ""
    where = f"stopped while separating {report.interrupted} (its unfinished outputs were removed); " if report.interrupted else ""
    say(f"{where}{len(finished)} of {total} inputs finished{names}")


def _report_job(args: argparse.Namespace, session, inputs: list[Path]):
    """The --report job (None without --report): its files, matplotlib and the ground truth checked."""
    if args.report is None:
        return None
    from clipsep_rt.report import GroundTruth, ReportJob

    truth = GroundTruth(args.reference, args.interference)
    gate = None
    if args.gate:
        from clipsep_rt.dsp.presence import GateOptions

        gate = GateOptions()
    return ReportJob(args.report, session.separator, inputs, session.queries, truth, overwrite=args.overwrite, gate=gate)


def _progress_bar(source: Path, duration_s: float | None):
    """One input's progress on stderr, in seconds of its audio (the batch's `progress` meter)."""
    from tqdm import tqdm

    return tqdm(
        total=duration_s, desc=source.name, unit="s",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
        leave=False, file=sys.stderr, disable=None,
    )
