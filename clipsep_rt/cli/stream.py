"""Streaming separation from the `separate` command line: a file with --stream, or --input mic.

A file streams to a .wav file as fast as it can (or paced with --realtime); the microphone,
or a file played to the speakers, runs live until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clipsep_rt.cli.common import EXIT_FAILURES, say, say_error
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.runtime.live.plan import MAX_BUFFER_MS
from clipsep_rt.runtime.streaming_presets import PRESETS


def streaming_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "streaming (--input mic, or a file with --stream)",
        "A live run (--input mic, or -o speakers) reads lines typed on stdin: new queries separated by ';' (a leading "
        "'-' leaves a sound out: violin; -speech), or /this [SECONDS] for the sound of the last seconds heard "
        "(0.5 to 8, default 3: a query fitted to them, named this@<time>s; /this 5; -speech leaves speech out of it).")
    g.add_argument("--stream", action="store_true", help="send a file through the low-latency streaming path")
    g.add_argument("--realtime", action="store_true", help="with --stream: pace the file like a live stream")
    g.add_argument("--latency", default="balanced", choices=sorted(PRESETS),
                   help="preset hop / look-ahead: low (96 ms, GPU), balanced (304 ms), quality (816 ms)")
    g.add_argument("--hop-frames", type=int, metavar="H", help="network run every H STFT frames (overrides --latency)")
    g.add_argument("--lookahead-frames", type=int, metavar="L", help="frames of look-ahead after those H (overrides --latency)")
    g.add_argument("--stats", type=Path, metavar="FILE.json",
                   help="write per-hop timings, latency and overruns, and each query's presence per second "
                        "(batch: each input's presence per second)")
    g.add_argument("--input-device", metavar="NAME|ID", help="audio input device for --input mic (default: the system's)")
    g.add_argument("--output-device", metavar="NAME|ID", help="audio output device for speakers (default: the system's)")
    g.add_argument("--buffer-ms", type=float, metavar="MS",
                   help=f"live: the playback jitter buffer, 0 to {MAX_BUFFER_MS:.0f} ms; it adds to the latency "
                        "(default: sized from a measured network step)")
    g.add_argument("--list-devices", action="store_true", help="list audio devices and exit")


def run_stream(args: argparse.Namespace, specs: list[str]) -> int:
    """`specs`: ["mic"], or the one input file of --stream."""
    from clipsep_rt.cli.session import open_session
    from clipsep_rt.jobs.file_stream import channels_of, stream_file, write_stats

    live = specs == ["mic"]
    if not live and len(specs) != 1:
        raise ClipsepError("--stream takes one input file")
    sinks = args.output or (["speakers"] if live else [])
    files = [Path(sink) for sink in sinks if sink != "speakers"]
    if not sinks or (not live and not files and "speakers" not in sinks):
        raise ClipsepError("where to? give -o FILE.wav and/or -o speakers")
    if any(path.suffix.lower() != ".wav" for path in files) or len(files) > 1:
        raise ClipsepError("streaming records to one .wav file (-o FILE.wav)")
    live_run = live or "speakers" in sinks  # live audio is mono: the input device's channels are averaged
    channels = None if live_run or args.mono else channels_of(Path(specs[0]))  # a file's kept, as batch keeps them
    session = open_session(args, noise_heads=False, stream_latency=args.latency)  # auto: measured per hop
    separator = session.separator.stream(session.queries, args.latency, args.hop_frames, args.lookahead_frames, args.mask,
                                         channels, gate=args.gate)
    options = separator.options
    if not args.quiet:
        print(f"{session.describe()}\nclipsep-rt: streaming with {separator.latency_ms:.0f} ms algorithmic latency "
              f"(hop {options.hop_frames}, look-ahead {options.lookahead_frames} frames)", file=sys.stderr)
    if live_run:
        if args.sample_rate is not None:
            raise OptionError("sample_rate", f"live recordings are written at the model's {separator.spectral.sample_rate} Hz; "
                                             "--sample-rate applies to files streamed to a file (--stream -o FILE.wav)")
        return _run_live(args, session, separator, source=None if live else Path(specs[0]),
                         record=files[0] if files else None, play="speakers" in sinks)
    source, destination = Path(specs[0]), files[0]
    if destination.resolve() == source.resolve():
        raise ClipsepError(f"{destination}: output would overwrite its input")
    earlier = args.overwrite and os.path.lexists(destination)  # kept until the stream is complete
    try:
        out_rate = stream_file(separator, source, destination, realtime=args.realtime, overwrite=args.overwrite,
                               sample_rate=args.sample_rate, on_warning=lambda message: say(f"warning: {message}"))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a file streamed to a file is written whole or not at all
        started = separator.stats.startup_s is not None  # the stream warms up, then claims its output
        if started:
            what = (f"its unfinished output was removed, and the earlier {destination} is left as it was" if earlier
                    else f"its unfinished output {destination} was removed")
        else:
            what = f"the earlier {destination} is left as it was" if earlier else f"nothing was written to {destination}"
        stats = f", and no statistics were written to {args.stats}" if args.stats else ""
        say(f"stopped while streaming {source}: {what}{stats}")
        raise
    if not args.quiet:
        stats = separator.stats
        say(f"wrote {destination} at {out_rate} Hz (aligned with the input); hop compute p50 "
            f"{stats.percentile_ms(50):.1f} ms, p99 {stats.percentile_ms(99):.1f} ms, {stats.overruns} overruns "
            f"(steps slower than the {1000 * stats.hop_s:.0f} ms hop); start-up {1000 * (stats.startup_s or 0):.0f} ms "
            "(the first network call, which compiles: not a step)")
    if args.stats:
        write_stats(separator, args.stats)
    return 0


def _run_live(args: argparse.Namespace, session, separator, source: Path | None, record: Path | None,
              play: bool) -> int:
    """Microphone (or a file at real-time pace) to speakers and/or a recording, until Ctrl-C;
    returns the exit status: 1 when the recording stopped early (the disk full: it keeps what
    was recorded until then), else 0.

    A line typed on stdin switches the queries, separated by ';', as many as wanted (a leading
    '-' leaves a sound out of every output: `violin; -speech`): the speakers play the first, a
    recording keeps one channel per query of the start. `/this [SECONDS]` (default 3) switches to
    a query fitted to the last seconds heard (`cli.live_lines`). The text encoder is loaded
    before the audio starts, so a new query costs one encoder call (on the stdin thread, never
    the audio's), and a line says how long it, or the fit, took."""
    from clipsep_rt.cli.live_lines import TypedLines
    from clipsep_rt.runtime.live.runner import LiveRunner
    from clipsep_rt.runtime.live.stdin import read_queries_from_stdin

    tell, complain = _until_hung_up(say), _until_hung_up(say_error)
    runner = LiveRunner(  # settings and devices are checked here, before the encoder's seconds of loading
        separator, input_device=args.input_device, output_device=args.output_device, output_file=record, play=play,
        status=None if args.quiet else tell, source_file=source, overwrite=args.overwrite,
        query_names=session.queries.labels, buffer_ms=args.buffer_ms, buffer_setting="--buffer-ms",
    )
    _load_query_encoder(session.separator, args.quiet)  # queries are typed live: not on the first switch
    if not args.quiet:
        say("type new queries and Enter to switch (';' between queries, a leading '-' leaves a sound out: "
            "violin; -speech; /this [SECONDS] asks for the sound of the last seconds heard, default 3); Ctrl-C stops")
    read_queries_from_stdin(TypedLines(session.separator, runner, None if args.quiet else tell), on_error=complain)
    runner.run()
    if args.stats:  # first: the lines below may go nowhere (a hung-up terminal)
        runner.write_stats(args.stats)
    for failure in runner.recording_failures:  # the recording is kept, shorter than the run
        complain(failure)
    status = EXIT_FAILURES if runner.recording_failures else 0
    if runner.device_unresponsive:  # the recordings are complete; PortAudio's exit handler would wait on the device
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _until_hung_up(write: Callable[[str], None]) -> Callable[[str], None]:
    """`write` (a line to stderr) for a live run, which outlives its terminal: once a write
    fails (EIO after a hang-up), stderr goes to /dev/null, so the run still completes its
    files and --stats and exits as it would (Python flushes stderr at exit)."""

    def guarded(line: str) -> None:
        try:
            write(line)
        except OSError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stderr.fileno())
            os.close(devnull)

    return guarded


def _load_query_encoder(separator, quiet: bool) -> None:
    """Load the text encoder before the audio starts, and say how long that took; a model
    without a known encoder (vector queries only) runs as it is, and says why typed queries
    will not work."""
    started = time.perf_counter()
    try:
        separator.load_query_encoder()
    except ClipsepError as error:
        say(f"typed text queries are off: {error} (/this, a query fitted to what was heard, still works)")
        return
    if not quiet:
        say(f"query encoder ready in {time.perf_counter() - started:.1f} s: a typed query costs one encoder call")
