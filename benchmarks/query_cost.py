"""The cost of more queries: one query, then the same query with 1, 2 and 3 exclusions, and with 1,
2 and 3 more positive queries (a fitted example query is one of those: a vector like a text's).
All run in the same network pass (`runtime.exclusion`); a positive query also adds its own
output (inverse STFT). Target (issue 22): each extra query under 5 % more time.

The bundled default model on ONNX Runtime (CPU), on the shipped dog + guitar example tiled to
`--seconds` of audio:
  - offline: seconds of compute per minute of audio (`OfflineSeparator.separate`, the median of
    `--repeats` runs; the configurations take turns in each round, so a change of machine load
    falls on all of them alike);
  - streaming, the `low` preset: per-hop compute p50 / p99 (ms) over `--stream-seconds`, the
    streams of every configuration fed block by block in turn (16 ms blocks), for the same reason.

Extra cost per query = (time with k more / time with the one query - 1) / k.

    python benchmarks/query_cost.py                 # 60 s offline x 5, 30 s streamed (minutes)
    python benchmarks/query_cost.py --quick         # smoke test
"""

from __future__ import annotations

import argparse
import shlex
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.api import Separator
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dog_guitar" / "mixture.wav"
QUERY = "acoustic guitar"
EXCLUSIONS = ("dog barking", "speech", "a bell ringing")
MORE_QUERIES = ("dog barking", "speech", "a bell ringing")  # the same texts, asked for instead of left out
BLOCK = 256  # samples per streamed block: 16 ms at 16 kHz
TARGET_PER_QUERY = 0.05  # each extra query: under 5 % more time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="audio separated offline per run (default 60, --quick 10)")
    parser.add_argument("--repeats", type=int, help="offline runs per configuration (default 5, --quick 1)")
    parser.add_argument("--stream-seconds", type=float, help="audio streamed per configuration (default 30, --quick 3)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: its own choice)")
    parser.add_argument("--quick", action="store_true", help="a short smoke test (its results file says -quick)")
    parser.add_argument("--out", type=Path, help="JSON results path (default benchmarks/results/query_cost-<host>.json)")
    args = parser.parse_args()
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.stream_seconds = args.stream_seconds or (3.0 if args.quick else 30.0)
    return args


def tiled_example(seconds: float, rate: int) -> np.ndarray:
    """(n,) float32: the example mixture repeated to `seconds`."""
    samples, example_rate = sf.read(EXAMPLE, dtype="float32")
    assert example_rate == rate, f"{EXAMPLE}: {example_rate} Hz, the model's rate is {rate}"
    n = int(seconds * rate)
    return np.tile(samples, -(-n // len(samples)))[:n]


def offline_seconds(separator: Separator, configurations: list, audio: np.ndarray, repeats: int) -> list[list[float]]:
    """Per configuration, the seconds of each run (configurations in turn in each round)."""
    offline = separator.pipeline.offline()
    for queries in configurations:  # warm-up: first calls allocate
        offline.separate(audio[: 5 * separator.sample_rate], queries.prepared)
    times: list[list[float]] = [[] for _ in configurations]
    for _ in range(repeats):
        for index, queries in enumerate(configurations):
            started = time.perf_counter()
            offline.separate(audio, queries.prepared)
            times[index].append(time.perf_counter() - started)
    return times


def streaming_hops(separator: Separator, configurations: list, audio: np.ndarray) -> list[dict]:
    """Per configuration, the `low` preset's per-hop compute p50 / p99 (ms) and its hop (ms)."""
    streams = [separator.stream(queries, latency="low") for queries in configurations]
    for stream in streams:
        stream.warm_up()
    for start in range(0, len(audio), BLOCK):
        block = audio[start : start + BLOCK]
        for stream in streams:
            stream.process(block)
    return [{"p50_ms": s.stats.percentile_ms(50), "p99_ms": s.stats.percentile_ms(99), "steps": len(s.stats.steps),
             "hop_ms": 1000 * s.stats.hop_s, "latency_ms": s.latency_ms} for s in streams]


def main() -> int:
    args = parse_args()
    separator = Separator.open(backend="onnxruntime", device="cpu", threads=args.threads)
    kinds = [("-", 0, separator.queries([QUERY]))]
    kinds += [("exclusions", k, separator.queries([QUERY], exclude=list(EXCLUSIONS[:k]))) for k in range(1, len(EXCLUSIONS) + 1)]
    kinds += [("more queries", k, separator.queries([QUERY, *MORE_QUERIES[:k]])) for k in range(1, len(MORE_QUERIES) + 1)]
    configurations = [queries for _, _, queries in kinds]
    rate = separator.sample_rate
    print(f"{separator.describe()}; offline {args.seconds:.0f} s x {args.repeats}, streamed {args.stream_seconds:.0f} s",
          file=sys.stderr)
    offline = offline_seconds(separator, configurations, tiled_example(args.seconds, rate), args.repeats)
    streaming = streaming_hops(separator, configurations, tiled_example(args.stream_seconds, rate))

    minutes = args.seconds / 60
    rows = []
    for (kind, k, queries), runs, stream in zip(kinds, offline, streaming):
        per_minute = statistics.median(runs) / minutes
        row = {"added": kind, "count": k, "outputs": queries.names, "excluded": queries.excluded,
               "offline_s_per_audio_minute": per_minute, "offline_runs_s": runs,
               **{f"low_{key}": value for key, value in stream.items()}}
        if k:
            row["offline_extra_per_query"] = (per_minute / rows[0]["offline_s_per_audio_minute"] - 1) / k
            row["low_p99_extra_per_query"] = (stream["p99_ms"] / rows[0]["low_p99_ms"] - 1) / k
            row["low_p50_extra_per_query"] = (stream["p50_ms"] / rows[0]["low_p50_ms"] - 1) / k
        rows.append(row)

    info = {"hostname": socket.gethostname(), **machine_info(args.threads)}
    over = [row for row in rows[1:] if max(row["offline_extra_per_query"], row["low_p99_extra_per_query"]) >= TARGET_PER_QUERY]
    met, missed = not over, ", ".join(f"{row['count']} {row['added']}" for row in over)
    lines = [
        "# Query cost: one query + k exclusions or k more queries, one network pass",
        "",
        f"Machine: {info['cpu']} ({info['cores']} cores), onnxruntime {info['onnxruntime']}; host {info['hostname']}.",
        f"Model: {separator.describe()}.",
        f"Query '{QUERY}'; exclusions, or more queries, added in this order: {', '.join(EXCLUSIONS)}. Offline: {args.seconds:.0f} s of "
        f"audio, median of {args.repeats} runs; streaming: `low` preset, {args.stream_seconds:.0f} s in {BLOCK}-sample "
        "blocks, all configurations' streams fed in turn.",
        "",
        "| added | offline s / audio min | extra / query | low p50 ms | low p99 ms | p99 extra / query |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        k = row["count"]
        extra_offline = f"{100 * row['offline_extra_per_query']:+.1f} %" if k else "-"
        extra_p99 = f"{100 * row['low_p99_extra_per_query']:+.1f} %" if k else "-"
        added = f"{k} {row['added']}" if k else "none (1 query)"
        lines.append(f"| {added} | {row['offline_s_per_audio_minute']:.2f} | {extra_offline} | {row['low_p50_ms']:.1f} | "
                     f"{row['low_p99_ms']:.1f} | {extra_p99} |")
    lines += ["", f"Target: each extra query under {100 * TARGET_PER_QUERY:.0f} % more time (offline and `low` p99): "
              f"{'met' if met else 'missed (' + missed + ')'}.", "", f"Command: `{shlex.join(['python', *sys.argv])}`", ""]
    report = "\n".join(lines)
    print(report)
    json_path = args.out or Path(__file__).resolve().parent / "results" / f"{result_stem('query_cost', info['hostname'], args.quick)}.json"
    data = {"machine": info, "model": separator.describe(), "query": QUERY, "seconds": args.seconds,
            "repeats": args.repeats, "stream_seconds": args.stream_seconds, "target_per_query": TARGET_PER_QUERY,
            "target_met": met, "rows": rows}
    write_results(json_path, None, data, report, log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
