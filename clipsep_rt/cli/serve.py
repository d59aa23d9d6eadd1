"""`clipsep-rt serve`: the model loaded once, served over WebSocket (live sessions) and HTTP
(whole files), with a page at / (clipsep_rt.serve; README, "Serve")."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from clipsep_rt.cli.common import encoder_options, model_arguments, query_encoder_arguments, say
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.hardware import usable_cores
from clipsep_rt.runtime.streaming_presets import PRESETS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve live separation over WebSocket and whole files over HTTP, with a page to try it",
        description="Load the model once and serve it: WebSocket sessions at /v1/stream (PCM blocks in, separated blocks "
                    "out, delay-compensated), whole files at POST /v1/separate, GET /health, and a page at / (microphone, "
                    "queries, spectrograms, uploads). Binds 127.0.0.1 unless --host says otherwise; any other address "
                    "needs --token.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765)")
    p.add_argument("--token", metavar="SECRET",
                   help="required of clients (?token= or Authorization: Bearer); needed for any --host but loopback "
                        "(default: $CLIPSEP_RT_TOKEN)")
    model_arguments(p, "auto picks the fastest available for --latency's hop (default: auto)")
    p.add_argument("--latency", default="balanced", choices=sorted(PRESETS),
                   help="the preset the backend is chosen for (sessions pick theirs in their start message; default: balanced)")
    g = p.add_argument_group("bounds")
    g.add_argument("--max-sessions", type=int, default=8, metavar="N", help="streaming sessions at once (default: 8)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="threads running sessions' blocks and file jobs (default: the cores this process may use, at most 8)")
    g.add_argument("--max-queries", type=int, default=4, metavar="N", help="queries (and exclusions) per session or file (default: 4)")
    g.add_argument("--max-upload-mb", type=float, default=64, metavar="MB", help="largest uploaded file (default: 64)")
    g.add_argument("--max-file-seconds", type=float, default=600, metavar="S", help="longest uploaded audio (default: 600)")
    g.add_argument("--result-ttl", type=float, default=600, metavar="S",
                   help="seconds a file's results are kept for download (default: 600)")
    g.add_argument("--upload-dir", type=Path, metavar="DIR",
                   help="where the upload folder is made, removed at exit (default: the system's temporary folder)")
    query_encoder_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.api import Separator
    from clipsep_rt.serve import Limits, build_app, check_exposure, serve_forever

    token = args.token or os.environ.get("CLIPSEP_RT_TOKEN") or None
    check_exposure(args.host, token)
    for flag, value, low, high in (
            ("--max-sessions", args.max_sessions, 1, 256), ("--max-queries", args.max_queries, 1, 16),
            ("--max-upload-mb", args.max_upload_mb, 0.001, 4096), ("--max-file-seconds", args.max_file_seconds, 1, 24 * 3600),
            ("--result-ttl", args.result_ttl, 1, 7 * 24 * 3600), ("--port", args.port, 1, 65535),
            ("--workers", args.workers or 1, 1, 64)):
        if not low <= value <= high:
            raise ClipsepError(f"{flag}: must be {low:g} to {high:g}, got {value:g}")
    limits = Limits(max_sessions=args.max_sessions, max_queries=args.max_queries,
                    max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_file_s=args.max_file_seconds,
                    result_ttl_s=args.result_ttl)
    separator = Separator.open(checkpoint=args.checkpoint, engine_dir=args.engine, backend=args.backend, device=args.device,
                               precision=args.precision, threads=args.threads, encoder=encoder_options(args), log=say,
                               stream_latency=args.latency, engine_cache=args.engine_cache)
    say(separator.describe())
    separator.load_query_encoder()  # a session's new text costs one encoder call, not a load
    workers = args.workers or min(8, usable_cores())
    app = build_app(separator, limits, token=token, workers=workers, upload_parent=args.upload_dir)
    say(f"serving on http://{args.host}:{args.port}/ (WebSocket /v1/stream, POST /v1/separate, GET /health); Ctrl-C stops")
    serve_forever(app, args.host, args.port, limits)
    return 0
