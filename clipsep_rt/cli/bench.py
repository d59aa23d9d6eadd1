"""`clipsep-rt bench`: streaming latency and real-time margin of each backend on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clipsep_rt.cli.common import EXIT_FAILURES, device_argument, say
from clipsep_rt.runtime.engines.choice import BACKENDS
from clipsep_rt.runtime.streaming_presets import PRESETS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure streaming latency and real-time margin of each backend on this machine",
        description="Stream synthetic audio through every available backend and latency preset as fast as possible and "
                    "report the algorithmic latency, per-hop compute p50/p99 and the real-time factor (no audio device "
                    "needed). Without --checkpoint/--engine it times the bundled default model; --random-weights times the "
                    "full-size architecture (ngf 64) with seeded random weights instead (timings only).",
    )
    p.add_argument("-c", "--checkpoint", type=Path, metavar="FILE", help="a .safetensors checkpoint or an original CLIPSep-NIT .pt")
    p.add_argument("-e", "--engine", type=Path, metavar="DIR", help="an engine folder made by `clipsep-rt export`")
    p.add_argument("--random-weights", action="store_true",
                   help="time the full-size architecture (ngf 64) with seeded random weights instead of a trained model")
    p.add_argument("-b", "--backend", action="append", choices=BACKENDS[1:], help="repeatable; default: all")
    p.add_argument("--preset", action="append", choices=sorted(PRESETS), help="repeatable; default: all")
    p.add_argument("--seconds", type=float, default=10.0, help="audio streamed per measurement, up to 3600 (default: 10)")
    device_argument(p)
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and onnxruntime, 1 to the cores this process may use")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows and the machine as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.measure.machine import machine_info
    from clipsep_rt.measure.results import format_table, rows_to_json
    from clipsep_rt.measure.stream_timing import run_bench
    from clipsep_rt.io.files import atomic_output

    rows = run_bench(args.checkpoint, args.engine, args.backend, args.preset, args.seconds, args.device, args.threads,
                     log=say, random_weights=args.random_weights)
    print(format_table(rows), end="")
    if args.json:
        with atomic_output(args.json, overwrite=True) as temp:
            temp.write_text(json.dumps(rows_to_json(rows, machine_info(args.threads)), indent=2) + "\n")
    return 0 if any(row.status == "ok" for row in rows) else EXIT_FAILURES
