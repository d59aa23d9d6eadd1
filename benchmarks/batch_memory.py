"""Peak memory of a batch separation against --batch-size and the file's length: the README's
claim that memory grows with the windows per network call and never with the file.

Writes seeded 16 kHz mono mixtures (noise plus tones) of each --minutes length, then runs the
command a user types, `clipsep-rt FILE -q violin -o OUT --batch-size N --backend B`, once per
(length, batch size), each in a fresh process, and reads that process's peak resident memory
(`os.wait4`'s rusage of that process: the model, the engine, the decoded blocks, all of it).
The bundled default model; the query text is embedded by the bundled MiniLM encoder.

    python benchmarks/batch_memory.py                                  # 1, 5 and 15 minutes, batch 4 and 16
    python benchmarks/batch_memory.py --minutes 1 --batch-sizes 4      # smoke test
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results

RATE = 16000
SEED = 0
CLI = Path(sys.executable).with_name("clipsep-rt")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0, 15.0], help="file lengths (default 1 5 15)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 16], help="--batch-size values (default 4 16, the largest allowed)")
    parser.add_argument("--backend", default="onnxruntime", help="--backend of the runs (default onnxruntime)")
    parser.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/batch_memory-<host>.json)")
    parser.add_argument("--markdown", type=Path, help="markdown fragment (default: the JSON path with .md)")
    return parser.parse_args()


def write_mixture(path: Path, minutes: float) -> None:
    """Seeded noise plus two tones, written block by block (a long file never sits in memory here)."""
    rng = np.random.default_rng(SEED)
    total, block = int(minutes * 60 * RATE), 60 * RATE
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as out:
        for start in range(0, total, block):
            t = np.arange(start, min(start + block, total)) / RATE
            tones = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 97 * t)
            out.write((tones + 0.05 * rng.standard_normal(len(t))).astype(np.float32))


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run `command` in a fresh process: (its own peak resident memory in MB, wall seconds),
    from the rusage `os.wait4` returns for that one child."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"error: {shlex.join(command)} failed ({process.returncode}): {stderr.strip()[-400:]}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    args = parse_args()
    info = {"hostname": socket.gethostname(), **machine_info()}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for batch in sorted(args.batch_sizes):
            for minutes in sorted(args.minutes):
                mixture = scratch / f"mix_{minutes:g}min.wav"
                if not mixture.exists():
                    write_mixture(mixture, minutes)
                out = scratch / f"out_{minutes:g}_{batch}"
                command = [str(CLI), str(mixture), "-q", "violin", "-o", str(out), "--batch-size", str(batch),
                           "--backend", args.backend, "--quiet"]
                peak, seconds = peak_rss_mb(command)
                rows.append({"minutes": minutes, "batch_size": batch, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 2)})
                print(f"{minutes:g} min, --batch-size {batch}: peak {peak:.0f} MB in {seconds:.1f} s", file=sys.stderr)
    command = shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        "### Batch peak memory against --batch-size and file length", "",
        f"Command: `python {command}`", "",
        f"Machine: {info['cpu']}, {info['cores']} cores; backend {args.backend}, the bundled default model, "
        "one query; peak resident memory of the whole `clipsep-rt` process.", "",
        "| file | --batch-size | peak RSS MB | wall s |", "|---:|---:|---:|---:|",
        *(f"| {row['minutes']:g} min | {row['batch_size']} | {row['peak_rss_mb']:.0f} | {row['seconds']:.1f} |" for row in rows),
        "",
    ]
    json_path = args.json or Path("benchmarks/results") / f"{result_stem('batch_memory', info['hostname'], False)}.json"
    write_results(json_path, args.markdown, {"machine": info, "backend": args.backend, "rows": rows},
                  "\n".join(lines), log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
