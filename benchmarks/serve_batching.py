"""Would `clipsep-rt serve` gain from batching its sessions into one network call per hop?

One call of B streaming windows (1, 1, 256, 256 each, one query) against B calls of one window in a
row, on the bundled model's graph with OpenVINO (bf16 where the CPU has it), 2 threads by default.
The two are timed in turns (40 of each per batch size, after warm-up calls), so that a machine
that speeds up or slows down during the run affects both alike; p50 and p99 of each.

    python benchmarks/serve_batching.py            # writes benchmarks/results/serve_batching-<host>.json/.md
"""

from __future__ import annotations

import argparse
import shlex
import socket
import sys
import time
from pathlib import Path

import numpy as np

from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.model.weights import default_engine_dir
from clipsep_rt.runtime.engines.openvino_engine import OpenVinoEngine

HERE = Path(__file__).resolve().parent
BATCHES = (1, 2, 4, 8, 12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="OpenVINO threads (default 2)")
    p.add_argument("--calls", type=int, default=40, help="timed calls per batch size, 5 to 1000 (default 40)")
    p.add_argument("--json", type=Path, help="default: benchmarks/results/serve_batching-<host>.json")
    args = p.parse_args()
    if not 5 <= args.calls <= 1000:
        sys.exit(f"--calls: 5 to 1000, got {args.calls}")
    engine = OpenVinoEngine(default_engine_dir() / "separator.onnx", "auto", threads=args.threads)
    rng = np.random.default_rng(0)
    queries = engine.prepare_queries(rng.standard_normal((1, 384)).astype(np.float32), False)
    rows = []
    for batch in BATCHES:
        windows = (rng.standard_normal((batch, 1, 256, 256)) - 4).astype(np.float32)
        for _ in range(3):
            engine.probabilities(windows, queries)
            engine.probabilities(windows[:1], queries)
        batched, single = [], []
        for _ in range(args.calls):
            start = time.perf_counter()
            engine.probabilities(windows, queries)
            middle = time.perf_counter()
            for index in range(batch):
                engine.probabilities(windows[index : index + 1], queries)
            batched.append(1000 * (middle - start))
            single.append(1000 * (time.perf_counter() - middle))
        rows.append({"batch": batch, "p50_ms": float(np.percentile(batched, 50)), "p99_ms": float(np.percentile(batched, 99)),
                     "as_single_calls_ms": float(np.percentile(single, 50)),
                     "as_single_calls_p99_ms": float(np.percentile(single, 99))})
        rows[-1]["ratio"] = rows[-1]["p50_ms"] / rows[-1]["as_single_calls_ms"]
    info = {"hostname": socket.gethostname(), **machine_info(args.threads)}
    command = "python " + shlex.join(sys.argv)
    report = "\n".join([
        "### Batching streaming windows (serve)", "", f"Command: `{command}`", "",
        f"Machine: {info['cpu']}, {info['cores']} cores; OpenVINO {engine.precision}, {args.threads} threads; the bundled model.", "",
        "| windows | one call of them: p50 / p99 ms | as single calls in a row: p50 / p99 ms | ratio of the p50s |",
        "|---:|---|---|---:|",
        *[f"| {r['batch']} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {r['as_single_calls_ms']:.2f} / "
          f"{r['as_single_calls_p99_ms']:.2f} | {r['ratio']:.2f} |" for r in rows],
    ]) + "\n"
    print(report)
    json_path = args.json or HERE / "results" / f"{result_stem('serve_batching', info['hostname'], False)}.json"
    write_results(json_path, None, {"command": command, "machine": info, "rows": rows}, report,
                  log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
