"""Every available engine on this machine, in one run: network latency and throughput.

For the full-size CLIPSep-NIT separator (random weights) this times one network call,
`engine.probabilities(log_mag, queries)` on 256-frame windows with one query (U-Net,
query head and sigmoid; no STFT), and reports:
  - latency: the median time of one window (batch 1),
  - throughput: windows per second at the best batch size,
  - both as a ratio to the torch FP32 eager engine (the baseline).
Target (CPU): the best engine at least 2x the torch FP32 eager engine.

    python benchmarks/engines.py                 # all engines available here
    python benchmarks/engines.py --compile       # also torch.compile variants (slow to start)
    python benchmarks/engines.py --quick         # smoke test
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import write_results
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.model.device import cpu_has_native_bf16

WINDOW = 256
TARGET_CPU_RATIO = 2.0
AUDIO_PER_WINDOW_S = 192 * 256 / 16000  # new audio per window at the default 64-frame overlap


@dataclass
class Result:
    engine: str
    status: str  # "ok" or why it was skipped / failed
    latency_ms: float | None = None  # batch 1, one window
    best_batch: int | None = None
    windows_per_s: float | None = None
    latency_ratio: float | None = None  # baseline latency / this latency
    throughput_ratio: float | None = None  # this throughput / baseline throughput


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-sizes", default="1,4,8", help="CPU batch sizes (CUDA uses 1,8,32,64)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="include torch.compile engines")
    p.add_argument("--quick", action="store_true", help="2 repeats, batch sizes 1 and 4")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/engines.json"))
    p.add_argument("--markdown", type=Path, default=Path("benchmarks/results/engines.md"))
    return p.parse_args()


def time_call(engine, batch: int, repeats: int) -> float:
    """Median seconds of one `probabilities` call on `batch` windows (after 2 warm-ups).

    Every engine takes and returns numpy arrays in host memory and returns once the masks are
    there, so a call's wall time is its whole cost, on a GPU too (no synchronisation needed)."""
    rng = np.random.default_rng(0)
    log_mag = (rng.standard_normal((batch, 1, WINDOW, WINDOW)) * 2 - 3).astype(np.float32)
    queries = engine.prepare_queries(rng.standard_normal((1, 512)).astype(np.float32), noise_heads=False)
    times = []
    for index in range(repeats + 2):
        start = time.perf_counter()
        engine.probabilities(log_mag, queries)
        if index >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, make, batches: list[int], repeats: int) -> Result:
    try:
        engine = make()
    except (ClipsepError, RuntimeError, ImportError) as error:
        return Result(name, f"skipped: {' '.join(str(error).split())[:160]}")
    result = Result(name, "ok")
    best = 0.0
    for batch in batches:
        try:
            seconds = time_call(engine, batch, repeats)
        except RuntimeError as error:  # out of memory at a large batch: keep the smaller ones
            print(f"  {name} batch {batch}: {' '.join(str(error).split())[:120]}", flush=True)
            break
        if batch == 1:
            result.latency_ms = 1000 * seconds
        print(f"  {name} batch {batch}: {1000 * seconds:.1f} ms ({batch / seconds:.2f} windows/s)", flush=True)
        if batch / seconds > best:
            best, result.best_batch = batch / seconds, batch
    result.windows_per_s = best
    return result


def engines(model: CLIPSepSeparator, onnx_dir: Path, args) -> list[tuple[str, object]]:
    """(name, factory) for every engine worth trying here; a factory may raise to skip."""
    from clipsep_rt.runtime.engines.onnx_engine import OnnxRuntimeEngine

    def torch_engine(device, precision, **options):
        return lambda: TorchEngine(_copy(model), device, precision, **options)  # engines convert their model

    listed = [("torch fp32 eager (baseline)", torch_engine("cpu", "fp32"))]
    if cpu_has_native_bf16():
        listed.append(("torch bf16 eager", torch_engine("cpu", "bf16")))
    else:
        listed.append(("torch bf16 eager", _skip("this CPU has no native bf16 (AVX512-BF16/AMX)")))
    if args.compile:
        listed.append(("torch fp32 compiled", torch_engine("cpu", "fp32", compile=True)))
        if cpu_has_native_bf16():
            listed.append(("torch bf16 compiled", torch_engine("cpu", "bf16", compile=True)))
    listed.append(("onnxruntime cpu fp32", lambda: OnnxRuntimeEngine(onnx_dir / "separator.onnx", "cpu", "fp32", threads=args.threads)))
    listed.append(("openvino cpu fp32", lambda: _openvino(onnx_dir, "fp32", args.threads)))
    if cpu_has_native_bf16():
        listed.append(("openvino cpu bf16", lambda: _openvino(onnx_dir, "bf16", args.threads)))
    if torch.cuda.is_available():
        listed += [
            ("torch cuda fp32", torch_engine("cuda", "fp32", cuda_graphs=False)),
            ("torch cuda fp16", torch_engine("cuda", "fp16", cuda_graphs=False)),
            ("torch cuda fp16 + CUDA graphs", torch_engine("cuda", "fp16", cuda_graphs=True)),
            ("onnxruntime cuda fp16", lambda: OnnxRuntimeEngine(onnx_dir / "separator.fp16.onnx", "cuda", "fp16")),
        ]
    return listed


def _openvino(onnx_dir: Path, precision: str, threads: int):
    from clipsep_rt.runtime.engines.openvino_engine import OpenVinoEngine  # needs the openvino extra

    return OpenVinoEngine(onnx_dir / "separator.onnx", precision, threads=threads)


def _copy(model: CLIPSepSeparator) -> CLIPSepSeparator:
    fresh = CLIPSepSeparator(model.config)
    fresh.load_state_dict(model.state_dict())
    return fresh


def _skip(reason: str):
    def factory():
        raise ClipsepError(reason)

    return factory


def machine() -> str:
    info = machine_info()
    gpu = f", GPU {info['gpu']}" if info["gpu"] else ", no GPU"
    return f"{info['cpu']}, {info['threads']} threads{gpu}, torch {info['torch']}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    batches = [1, 4] if args.quick else [int(b) for b in args.batch_sizes.split(",")]
    repeats = 2 if args.quick else args.repeats
    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig()).eval()
    with tempfile.TemporaryDirectory() as folder:
        from clipsep_rt.export.separator_onnx import (
            convert_separator_fp16,
            export_separator_onnx,
        )

        onnx_dir = Path(folder)
        export_separator_onnx(model, onnx_dir / "separator.onnx")
        if torch.cuda.is_available():
            convert_separator_fp16(onnx_dir / "separator.onnx", onnx_dir / "separator.fp16.onnx")
        results = []
        for name, factory in engines(model, onnx_dir, args):
            print(name, flush=True)
            cuda = "cuda" in name
            results.append(measure(name, factory, [1, 8, 32, 64] if cuda else batches, repeats))
    baseline = results[0]
    for result in results:
        if result.status == "ok":
            result.latency_ratio = baseline.latency_ms / result.latency_ms
            result.throughput_ratio = result.windows_per_s / baseline.windows_per_s
    report = markdown(results, batches, repeats)
    print("\n" + report)
    data = {"command": command(), "machine": machine(), "results": [asdict(r) for r in results]}
    write_results(args.json, args.markdown, data, report, log=lambda line: print(line, file=sys.stderr))


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def markdown(results: list[Result], batches: list[int], repeats: int) -> str:
    lines = [
        "### Engines: one network call on 256-frame windows, 1 query, full-size CLIPSep-NIT (random weights)",
        "",
        f"Command: `{command()}`",
        "",
        f"Machine: {machine()}. CPU batch sizes {batches}; median of {repeats} calls after 2 warm-ups.",
        "",
        "| engine | latency, batch 1 (ms) | x baseline | best batch | windows/s | x baseline | x real-time (64-frame overlap) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.engine} | {r.status} | | | | | |")
            continue
        lines.append(
            f"| {r.engine} | {r.latency_ms:.1f} | {r.latency_ratio:.2f} | {r.best_batch} | {r.windows_per_s:.2f} | "
            f"{r.throughput_ratio:.2f} | {r.windows_per_s * AUDIO_PER_WINDOW_S:.1f} |"
        )
    ok = [r for r in results if r.status == "ok" and "cuda" not in r.engine]
    best = max(ok, key=lambda r: r.throughput_ratio)
    verdict = "PASS" if best.throughput_ratio >= TARGET_CPU_RATIO else "FAIL"
    lines += ["", f"- {verdict} CPU target (best engine >= {TARGET_CPU_RATIO:g}x torch FP32 eager throughput): "
              f"{best.engine}, {best.throughput_ratio:.2f}x"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
