"""Batch separation on a local Ray instance: files per second and audio hours per hour with 1
and 2 workers, and each worker's peak memory.

Writes a folder of synthetic mixtures, embeds one query, and runs a `Batch` with a `RayExecutor`
for each worker count on a fresh output folder. The wall time includes starting the workers (torch
import, model load); "per-worker x real time" is each file's audio over its separation time.
The bundled default model, torch on the CPU, fp32.

    python benchmarks/ray_batch.py                    # 16 files of 30 s, 1 and 2 workers
    python benchmarks/ray_batch.py --files 4 --seconds 5 --workers 1   # smoke test
    python benchmarks/ray_batch.py --address auto --scratch /shared/bench --workers 8,16   # a cluster
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.jobs.batch import BatchJob
from clipsep_rt.jobs.distributed import RayCluster, RayExecutor
from clipsep_rt.api import WindowingOptions
from clipsep_rt.jobs.outputs import OutputOptions
from clipsep_rt.jobs.run import Batch

SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=16, help="input files (default 16)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each file (default 30)")
    parser.add_argument("--workers", default="1,2", help='worker counts to run (default "1,2")')
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    parser.add_argument("--address", help="join this Ray cluster (e.g. auto) instead of starting a local instance; "
                                          "the files are then written under --scratch, which every node must see")
    parser.add_argument("--scratch", type=Path, help="folder for the inputs and outputs (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/ray_batch-<host>.json)")
    parser.add_argument("--markdown", type=Path, help="markdown fragment (default: the JSON path with .md)")
    return parser.parse_args()


def write_inputs(folder: Path, files: int, seconds: float) -> list[Path]:
    """Seeded noise plus tones, one different file each, 44.1 kHz mono."""
    rng = np.random.default_rng(SEED)
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for index in range(files):
        tones = sum(np.sin(2 * np.pi * freq * (1 + index / 50) * t) for freq in (220, 660, 1870))
        samples = (0.1 * tones + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
        paths.append(folder / f"mix{index:03d}.wav")
        sf.write(paths[-1], samples, rate, subtype="PCM_16")
    return paths


def main() -> int:
    args = parse_args()
    import ray
    from clipsep_rt.api import Separator

    separator = Separator.open(backend="torch", device="cpu", precision="fp32")
    vector = np.random.default_rng(SEED).standard_normal(separator.query_dim).astype(np.float32)
    queries = separator.queries(vectors={"query": vector})
    if args.address:
        ray.init(address=args.address, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipsep-ray-bench-", dir=args.scratch) as scratch:
        (Path(scratch) / "in").mkdir()
        inputs = write_inputs(Path(scratch) / "in", args.files, args.seconds)
        for workers in [int(part) for part in args.workers.split(",")]:
            spec = dataclasses.replace(separator.spec, threads=1, windowing=WindowingOptions(batch_windows=4))
            job = BatchJob.of(queries, OutputOptions(), Path(scratch) / f"out{workers}")
            start = time.perf_counter()
            report = Batch(job, inputs).run(RayExecutor(spec, RayCluster(args.address or "local", workers=workers)))
            total = time.perf_counter() - start
            if report.failures:
                print(f"{workers} workers: {len(report.failures)} failed: {report.failures[0].error}", file=sys.stderr)
                return 1
            busy = sum(result.seconds for result in report.results)  # worker-seconds separating
            row = {
                "workers": workers, "files": len(inputs), "audio_hours": report.audio_seconds / 3600,
                "wall_s": total, "files_per_s": len(inputs) / total,
                "audio_h_per_h": report.audio_seconds / total,
                "per_worker_x_realtime": statistics.mean(r.audio_seconds / r.seconds for r in report.results),
                "worker_busy_s": busy,
                "peak_rss_mb_per_worker": max(r.peak_rss_mb or 0.0 for r in report.results),
            }
            rows.append(row)
            print(f"{workers} workers: {row['files_per_s']:.3f} files/s, {row['audio_h_per_h']:.1f} audio h/h, "
                  f"peak RSS {row['peak_rss_mb_per_worker']:.0f} MB per worker", file=sys.stderr)
    ray.shutdown()
    info = {"hostname": socket.gethostname(), **machine_info(1)}
    command = "python " + " ".join(shlex.quote(arg) for arg in sys.argv)
    lines = [
        f"Command: `{command}`", "",
        f"{args.files} files of {args.seconds:g} s (44.1 kHz), the bundled model, torch fp32 on CPU, 1 thread and 1 CPU "
        f"per worker, " + (f"Ray cluster {args.address}" if args.address else f"local Ray instance with {args.cpus} CPUs")
        + ". Wall time includes starting the workers.", "",
        "| workers | files/s | audio h per h | per-worker x real time | peak RSS per worker MB | wall s |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {r['workers']} | {r['files_per_s']:.3f} | {r['audio_h_per_h']:.1f} | {r['per_worker_x_realtime']:.1f} "
          f"| {r['peak_rss_mb_per_worker']:.0f} | {r['wall_s']:.1f} |" for r in rows),
    ]
    json_path = args.json or Path("benchmarks/results") / f"{result_stem('ray_batch', info['hostname'], False)}.json"
    write_results(json_path, args.markdown, {"machine": info, "command": command, "rows": rows}, "\n".join(lines) + "\n",
                  log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
