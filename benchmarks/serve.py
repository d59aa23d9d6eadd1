"""`clipsep-rt serve` under load: N concurrent streaming clients on loopback, per latency preset.

The server runs as its own process (`python -m clipsep_rt.cli serve`, one per preset, its
backend chosen for that preset); the clients run here, in one asyncio loop. Each client
streams mono 16 kHz audio paced like a microphone (a block every --block-ms, on an absolute
schedule, the clients' starts spread over one hop so their network steps do not all line up)
for --seconds, then stops.

  round trip   per message: the time from sending a block to receiving its separated block.
  real time    a session is real time when its p99 round trip is at most the block duration
               plus SLACK_MS (20 ms): a client playing the output with a 20 ms jitter buffer,
               on top of the algorithmic latency, never runs dry; N clients are real time
               when every session is, none got an error and every message came back.
  end-to-end   the delay a client measures from capturing a sample to holding its separated
               sample: the reported latency_samples (algorithmic latency at the client's rate)
               plus the round trip of the message that brings it (p50 and p99 over all messages).

For each preset, N goes up (1, 2, 3, 4, 6, 8, 10, 12, ... to --max-clients) until a count is
not real time; the largest real-time N is reported with every row measured.

    python benchmarks/serve.py                               # balanced and low, up to 12 clients, 10 s each
    python benchmarks/serve.py --quick                       # 2 clients at most, 3 s: a smoke test
    python benchmarks/serve.py --preset balanced --max-clients 16 --backend openvino --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.runtime.streaming_presets import PRESETS
from clipsep_rt.serve.server import free_port

SLACK_MS = 20.0
RATE = 16000
COUNTS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32)


async def client(url: str, seconds: float, block_ms: float, offset_s: float, preset: str, seed: int) -> dict:
    """One paced session -> its round trips (ms), latency, messages sent and received, errors, server stats."""
    import websockets

    block = round(RATE * block_ms / 1000)
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal(int(RATE * seconds))).astype(np.float32)
    await asyncio.sleep(offset_s)
    sent_at: list[float] = []
    trips: list[float] = []
    errors: list[str] = []
    stats: dict = {}
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE, "channels": 1, "queries": ["speech"], "latency": preset}))
        started = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if started.get("type") != "started":
            return {"errors": [started.get("message", str(started))], "trips": [], "sent": 0, "received": 0}

        async def receive() -> None:
            async for message in ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    trips.append(1000 * (now - sent_at[len(trips)]) if len(trips) < len(sent_at) else 0.0)
                else:
                    text = json.loads(message)
                    if text["type"] == "error":
                        errors.append(text["message"])
                    elif text["type"] == "stopped":
                        stats.update(text["stats"])

        receiver = asyncio.create_task(receive())
        begin = time.perf_counter()
        for index, position in enumerate(range(0, len(audio) - block + 1, block)):
            await asyncio.sleep(max(0.0, begin + index * block / RATE - time.perf_counter()))
            sent_at.append(time.perf_counter())
            await ws.send(audio[position : position + block].tobytes())
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(receiver, 60)
    return {"trips": trips[: len(sent_at)], "sent": len(sent_at), "received": len(trips),
            "latency_ms": 1000 * started["latency_samples"] / RATE, "errors": errors, "stats": stats}


async def trial(url: str, clients: int, seconds: float, block_ms: float, preset: str) -> list[dict]:
    hop_s = PRESETS[preset][0] * 256 / RATE
    return await asyncio.gather(*(client(url, seconds, block_ms, hop_s * k / clients, preset, k) for k in range(clients)))


def summarize(preset: str, clients: int, block_ms: float, sessions: list[dict]) -> dict:
    budget = block_ms + SLACK_MS
    p99s = [float(np.percentile(s["trips"], 99)) if s["trips"] else float("inf") for s in sessions]
    trips = np.concatenate([s["trips"] for s in sessions if s["trips"]] or [np.zeros(1)])
    latency = max((s.get("latency_ms", 0.0) for s in sessions), default=0.0)
    complete = all(s["sent"] and s["received"] >= s["sent"] and not s["errors"] for s in sessions)
    hop_p99 = [s["stats"].get("hop_compute_p99_ms") for s in sessions if s.get("stats")]
    return {
        "preset": preset, "clients": clients, "realtime": complete and max(p99s) <= budget,
        "round_trip_p50_ms": round(float(np.percentile(trips, 50)), 2), "round_trip_p99_worst_session_ms": round(max(p99s), 2),
        "budget_ms": budget, "latency_ms": round(latency, 2),
        "end_to_end_p50_ms": round(latency + float(np.percentile(trips, 50)), 2),
        "end_to_end_p99_ms": round(latency + float(np.percentile(trips, 99)), 2),
        "hop_compute_p99_worst_ms": max((h for h in hop_p99 if h is not None), default=None),
        "overruns": sum(s["stats"].get("overruns", 0) for s in sessions if s.get("stats")),
        "errors": sorted({e for s in sessions for e in s["errors"]})[:3],
    }


def start_server(preset: str, port: int, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, dict]:
    """The server process for `preset`, once /health answers, and that answer."""
    command = [sys.executable, "-m", "clipsep_rt.cli", "serve", "--port", str(port), "--latency", preset,
               "--backend", args.backend, "--max-sessions", str(args.max_clients)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                return server, json.loads(response.read())
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not answer /health within 120 s")


def report_markdown(results: dict, command: str) -> str:
    servers = "; ".join(f"{preset}: {server['backend']} on {server['device']} ({server['model']})"
                        for preset, server in results["server"].items())
    lines = [f"# `clipsep-rt serve` under load ({results['machine'].get('hostname')})", "",
             f"`{command}`", "",
             f"Machine: {results['machine'].get('cpu')}, {results['machine'].get('cores')} cores; server: {servers}; "
             f"clients: mono {RATE} Hz, a block every {results['block_ms']:g} ms, {results['seconds']:g} s per trial.", "",
             "| preset | clients | real time | round trip p50 ms | worst session's p99 ms | budget ms | latency ms "
             "| end-to-end p50 / p99 ms | hop compute p99 ms (worst) | overruns |",
             "|---|---:|---|---:|---:|---:|---:|---|---:|---:|"]
    for row in results["rows"]:
        lines.append(f"| {row['preset']} | {row['clients']} | {'yes' if row['realtime'] else 'NO'} | {row['round_trip_p50_ms']} "
                     f"| {row['round_trip_p99_worst_session_ms']} | {row['budget_ms']:g} | {row['latency_ms']} "
                     f"| {row['end_to_end_p50_ms']} / {row['end_to_end_p99_ms']} | {row['hop_compute_p99_worst_ms']} "
                     f"| {row['overruns']} |")
    lines += ["", "Largest real-time count: " + ", ".join(f"{p}: {n}" for p, n in results["largest_realtime"].items()), "",
              f"Real time: every session's p99 round trip (block sent -> its separated block received) within the block "
              f"duration + {SLACK_MS:g} ms, every message answered, no error. End-to-end: the algorithmic latency plus "
              "the round trip, as a client measures it.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS), help="repeatable (default: balanced and low)")
    parser.add_argument("--max-clients", type=int, default=12, help="the most concurrent clients tried (default: 12)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio each client streams per trial (default: 10)")
    parser.add_argument("--block-ms", type=float, default=20.0, help="audio per message (default: 20)")
    parser.add_argument("--backend", default="auto", help="the server's --backend (default: auto)")
    parser.add_argument("--threads", type=int, help="the server's --threads")
    parser.add_argument("--quick", action="store_true", help="at most 2 clients, 3 s: a smoke test (-quick results file)")
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/serve-<host>[-quick].json")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.max_clients, args.seconds = min(args.max_clients, 2), min(args.seconds, 3.0)
    if not 1 <= args.max_clients <= max(COUNTS) or not 1 <= args.seconds <= 120:
        raise SystemExit(f"--max-clients 1..{max(COUNTS)} and --seconds 1..120")
    presets = args.preset or ["balanced", "low"]
    rows, largest, servers = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="clipsep-serve-bench-") as folder:
        for preset in presets:
            port = free_port()
            server, health = start_server(preset, port, args, Path(folder) / f"{preset}.log")
            servers[preset] = {key: health.get(key) for key in ("model", "backend", "device")}
            largest[preset] = 0
            try:
                for clients in [n for n in COUNTS if n <= args.max_clients]:
                    sessions = asyncio.run(trial(f"ws://127.0.0.1:{port}/v1/stream", clients, args.seconds, args.block_ms, preset))
                    row = summarize(preset, clients, args.block_ms, sessions)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    if not row["realtime"]:
                        break
                    largest[preset] = clients
            finally:
                server.terminate()
                server.wait(30)
    info = {"hostname": socket.gethostname(), **machine_info(args.threads)}
    results = {"machine": info, "server": servers, "block_ms": args.block_ms, "seconds": args.seconds, "slack_ms": SLACK_MS,
               "largest_realtime": largest, "rows": rows}
    command = "python benchmarks/serve.py " + " ".join(sys.argv[1:])
    report = report_markdown(results, command.strip())
    print(report)
    json_path = args.json or Path("benchmarks/results") / f"{result_stem('serve', info['hostname'], args.quick)}.json"
    write_results(json_path, args.markdown, results, report, log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
