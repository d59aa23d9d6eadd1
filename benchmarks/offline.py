"""End-to-end offline separation speed of the full-size CLIPSep-NIT network (random weights).

Times `OfflineSeparator.separate` on a synthetic mixture, so STFT, overlapping windows,
the U-Net, the query heads, masking and the iSTFT are all included, and reports seconds of
audio separated per wall-clock second ("x real-time"): on CPU (fp32, bf16) and, when
available, on CUDA (fp32, fp16). Also reports the extra time per added query and the SNR
of reduced-precision output against fp32 output.

    python benchmarks/offline.py            # full run (minutes)
    python benchmarks/offline.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import math
import shlex
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.measure.machine import machine_info as shared_machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.runtime.engines.torch_engine import HeadVectors, TorchEngine
from clipsep_rt.runtime.offline import CPU_BATCH, CUDA_BATCH, OfflineSeparator, WindowingOptions

SEED = 0
CPU_QUERIES = (1, 4, 16)
CUDA_QUERIES = (1, 16)
QUALITY_QUERIES = 4
TARGET_CPU_XRT = 25.0  # one query, 2 threads, best precision and batch
TARGET_QUERY_PCT = 5.0  # extra time per added query
TARGET_H100_XRT = 3000.0  # one query, fp16
TARGET_SNR_DB = 30.0  # reduced precision output vs fp32 output


@dataclass
class Run:
    device: str  # "cpu" or "cuda"
    precision: str
    queries: int
    batch_windows: int
    status: str  # "ok", "OOM", "skipped: ...", "error: ..."
    median_s: float | None = None
    x_realtime: float | None = None
    per_query_pct: float | None = None  # (t_Q / t_1 - 1) / (Q - 1), same device/precision/batch


@dataclass
class Quality:
    device: str
    precision: str
    snr_db: float
    batch_windows: int  # the separator's default for the device (CPU_BATCH, CUDA_BATCH)


@dataclass
class Target:
    name: str
    value: float | None
    passed: bool | None  # None: not measured or not applicable here
    note: str = ""


def parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="CPU mixture length (default 60, --quick 10)")
    parser.add_argument("--cuda-seconds", type=float, help="CUDA mixture length (default 600, --quick 60)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, help="timed runs after one warm-up (default 3, --quick 1)")
    parser.add_argument("--batch-sizes", type=parse_ints, help='CPU batch_windows (default "1,4,8", --quick "4")')
    parser.add_argument("--cuda-batch-sizes", type=parse_ints, help='CUDA batch_windows (default "1,2,4,8,16", the largest allowed, --quick "1,16")')
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="which devices to benchmark")
    parser.add_argument("--quick", action="store_true", help="smoke test: short audio, 1 repeat, fewer configs")
    parser.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/offline-<GPU or host>.json)")
    parser.add_argument("--markdown", type=Path, help="markdown fragment (default: the JSON path with .md)")
    args = parser.parse_args()
    quick = args.quick
    args.seconds = args.seconds or (10.0 if quick else 60.0)
    args.cuda_seconds = args.cuda_seconds or (60.0 if quick else 600.0)
    args.repeats = args.repeats or (1 if quick else 3)
    args.batch_sizes = args.batch_sizes or ((4,) if quick else (1, 4, 8))
    args.cuda_batch_sizes = args.cuda_batch_sizes or ((1, 16) if quick else (1, 2, 4, 8, 16))
    return args


# -- machine -------------------------------------------------------------------------------


def machine_info(threads: int, use_cuda: bool) -> dict:
    """The shared machine description, plus the host name and CUDA details for file names and notes."""
    info = {"hostname": socket.gethostname(), **shared_machine_info(threads)}
    if use_cuda:
        info["cuda"] = torch.version.cuda
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32  # CUDA "fp32" convolutions run in TF32 when True
    return info


def default_stem(info: dict, quick: bool) -> str:
    """offline-<GPU name or hostname>[-quick], so a smoke test never overwrites a full run."""
    return result_stem("offline", info.get("gpu") or info["hostname"], quick)


# -- measurement ---------------------------------------------------------------------------


def synthetic_mixture(seconds: float, sample_rate: int) -> np.ndarray:
    """Seeded noise plus amplitude-modulated tones, peak about 0.5."""
    rng = np.random.default_rng(SEED)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(
        np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t))
        for freq, rate in ((220, 0.3), (660, 1.1), (1870, 2.3))
    )
    mixture = 0.1 * tones + 0.05 * rng.standard_normal(t.shape)
    return mixture.astype(np.float32)


def make_engine(device: str, precision: str) -> TorchEngine:
    """A fresh seeded full-size model per engine (TorchEngine casts the U-Net in place)."""
    torch.manual_seed(SEED)
    return TorchEngine(CLIPSepSeparator(ModelConfig()), device, precision)


def prepared_queries(engine: TorchEngine, queries: int) -> HeadVectors:
    generator = torch.Generator().manual_seed(SEED)
    embeddings = torch.randn(queries, engine.model.config.query_dim, generator=generator)
    return engine.prepare_queries(embeddings.numpy(), noise_heads=False)


def median_call_seconds(call: Callable[[], object], repeats: int) -> float:
    """One warm-up call, then the median wall time of `repeats` calls. A separation returns
    numpy audio in host memory (engines hand their masks back there), so on CUDA too the call's
    wall time is its whole cost: no synchronisation needed."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_seconds(separator: OfflineSeparator, mixture: np.ndarray, vectors: HeadVectors, repeats: int) -> float:
    """One warm-up run, then the median wall time of `repeats` runs."""
    return median_call_seconds(lambda: separator.separate(mixture, vectors), repeats)


def device_kind(engine: TorchEngine) -> str:
    """"cpu" or "cuda" (engine.device is "cpu" or "cuda:N")."""
    return "cuda" if engine.device.startswith("cuda") else "cpu"


def measure(engine: TorchEngine, queries: int, batch: int, mixture: np.ndarray, repeats: int) -> Run:
    device = device_kind(engine)
    run = Run(device, engine.precision, queries, batch, "ok")
    separator = OfflineSeparator(engine, SpectralConfig(), WindowingOptions(batch_windows=batch))
    try:
        run.median_s = median_seconds(separator, mixture, prepared_queries(engine, queries), repeats)
        run.x_realtime = len(mixture) / SpectralConfig().sample_rate / run.median_s
    except RuntimeError as error:  # CUDA only: one failing configuration must not end the benchmark
        if device != "cuda":
            raise
        message = str(error).splitlines()[0]
        out_of_memory = isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in message.lower()
        run.status = "OOM" if out_of_memory else f"error: {message[:120]}"
    if run.status != "ok":
        torch.cuda.empty_cache()  # after the except block, which kept the failed call's tensors alive
    return run


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = float(np.sum((estimate.astype(np.float64) - reference) ** 2))
    return 10 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / max(noise, 1e-30))


def benchmark_device(
    device: str,
    precisions: dict[str, str],
    query_counts: tuple[int, ...],
    batches: tuple[int, ...],
    seconds: float,
    repeats: int,
) -> tuple[list[Run], list[Quality]]:
    """`precisions` maps each precision to "" (run it) or why it is skipped; the first one is the reference."""
    print(f"{device}: {seconds:g} s of audio", file=sys.stderr)
    mixture = synthetic_mixture(seconds, SpectralConfig().sample_rate)
    runs, outputs, quality_batch = [], {}, {}
    for precision, skip_reason in precisions.items():
        if skip_reason:
            runs.append(Run(device, precision, 0, 0, f"skipped: {skip_reason}"))
            continue
        engine = make_engine(device, precision)
        quality_separator = OfflineSeparator(engine, SpectralConfig(), WindowingOptions())
        outputs[precision] = quality_separator.separate(mixture, prepared_queries(engine, QUALITY_QUERIES))
        quality_batch[precision] = quality_separator.batch_windows
        for queries in query_counts:
            for batch in batches:
                runs.append(measure(engine, queries, batch, mixture, repeats))
                print(format_progress(runs[-1]), file=sys.stderr, flush=True)
        del engine, quality_separator
        if device == "cuda":
            torch.cuda.empty_cache()
    reference, *reduced = outputs
    quality = [Quality(device, p, snr_db(outputs[reference], outputs[p]), quality_batch[p]) for p in reduced]
    return runs, quality


def add_per_query_overhead(runs: list[Run]) -> None:
    single = {(r.device, r.precision, r.batch_windows): r.median_s for r in runs if r.queries == 1 and r.median_s}
    for run in runs:
        base = single.get((run.device, run.precision, run.batch_windows))
        if run.queries > 1 and run.median_s and base:
            run.per_query_pct = (run.median_s / base - 1) / (run.queries - 1) * 100


# -- targets and report --------------------------------------------------------------------


def best_single_query(runs: list[Run], device: str, precision: str | None = None) -> Run | None:
    candidates = [
        r for r in runs if r.device == device and r.queries == 1 and r.x_realtime and precision in (None, r.precision)
    ]
    return max(candidates, key=lambda r: r.x_realtime, default=None)


def query_target(runs: list[Run], device: str, best: Run | None) -> Target:
    name = f"{device}: each extra query < {TARGET_QUERY_PCT:g}% more time"
    if best is None:
        return Target(name, None, None, "not measured")
    config = (best.device, best.precision, best.batch_windows)
    pcts = [
        r.per_query_pct for r in runs if (r.device, r.precision, r.batch_windows) == config and r.per_query_pct is not None
    ]
    if not pcts:
        return Target(name, None, None, "only one query count measured")
    worst = max(pcts)
    return Target(name, worst, worst < TARGET_QUERY_PCT, f"worst %/query at {best.precision}, batch {best.batch_windows}")


def evaluate_targets(runs: list[Run], quality: list[Quality], info: dict) -> list[Target]:
    targets = []
    cpu_best = best_single_query(runs, "cpu")
    name = f"cpu: >= {TARGET_CPU_XRT:g}x real-time, 1 query, 2 threads"
    if cpu_best is None:
        targets.append(Target(name, None, None, "not measured"))
    else:
        note = f"{cpu_best.precision}, batch {cpu_best.batch_windows}"
        if info["threads"] != 2:
            note += f"; measured with {info['threads']} threads, target is for 2"
        targets.append(Target(name, cpu_best.x_realtime, cpu_best.x_realtime >= TARGET_CPU_XRT, note))
        targets.append(query_target(runs, "cpu", cpu_best))
    if "cuda" in info:  # the GPU was benchmarked
        gpu_best = best_single_query(runs, "cuda", "fp16")
        targets.append(query_target(runs, "cuda", gpu_best))
        name = f"cuda: H100 >= {TARGET_H100_XRT:g}x real-time fp16, 1 query"
        if gpu_best is None:
            targets.append(Target(name, None, None, "not measured"))
        elif "H100" not in info["gpu"]:
            targets.append(Target(name, gpu_best.x_realtime, None, f"GPU is {info['gpu']}, not an H100"))
        else:
            ok = gpu_best.x_realtime >= TARGET_H100_XRT
            targets.append(Target(name, gpu_best.x_realtime, ok, f"batch {gpu_best.batch_windows}"))
    for q in quality:
        name = f"{q.device}: {q.precision} vs fp32 output SNR >= {TARGET_SNR_DB:g} dB"
        targets.append(Target(name, q.snr_db, q.snr_db >= TARGET_SNR_DB))
    return targets


def format_progress(run: Run) -> str:
    timing = f"{run.median_s:.3f} s, {run.x_realtime:.1f}x real-time" if run.x_realtime else run.status
    return f"  {run.device} {run.precision} queries={run.queries} batch={run.batch_windows}: {timing}"


def cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def markdown(
    command: str, info: dict, settings: dict, runs: list[Run], quality: list[Quality], targets: list[Target]
) -> str:
    machine = (
        f"{info['cpu']}, {info['cores']} cores (native bf16: {info['cpu_native_bf16']}), "
        f"torch {info['torch']}, {info['threads']} threads"
    )
    if "cuda" in info:
        machine += f"; GPU {info['gpu']} (CUDA {info['cuda']}, cuDNN TF32 for fp32: {info['cudnn_allow_tf32']})"
    audio = ", ".join(f"{seconds:g} s on {device}" for device, seconds in settings["seconds"].items())
    lines = [
        "### Offline separation speed (full-size CLIPSep-NIT, random weights)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}",
        "",
        f"Audio: synthetic mixture, {audio}; "
        f"overlap {settings['overlap_frames']} frames, soft masks; median of {settings['repeats']} runs after 1 warm-up.",
        "",
        "| device | precision | queries | batch | median s | x real-time | extra time per added query |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        if r.status != "ok":
            lines.append(f"| {r.device} | {r.precision} | {r.queries or ''} | {r.batch_windows or ''} | {r.status} | | |")
            continue
        pct = cell(r.per_query_pct, "+.2f") + ("%" if r.per_query_pct is not None else "")
        lines.append(
            f"| {r.device} | {r.precision} | {r.queries} | {r.batch_windows} | {r.median_s:.3f} | {r.x_realtime:.1f} | {pct} |"
        )
    snrs = "; ".join(f"{q.device} {q.precision} vs fp32 SNR {q.snr_db:.1f} dB (batch {q.batch_windows})" for q in quality)
    batch = f"the device's default batch ({CPU_BATCH} on cpu, {CUDA_BATCH} on cuda)"
    lines += ["", f"Quality ({QUALITY_QUERIES} queries, {batch}, random weights): {snrs or 'no reduced precision run'}"]
    lines += ["", "Targets:", ""]
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t.passed]
        value = cell(t.value, ".1f")
        lines.append(f"- {verdict} {t.name}: {value}" + (f" ({t.note})" if t.note else ""))
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = "python " + shlex.join(sys.argv)
    torch.set_num_threads(args.threads)
    use_cuda = args.device in ("all", "cuda") and torch.cuda.is_available()
    if args.device == "cuda" and not use_cuda:
        sys.exit("--device cuda: CUDA is not available")
    info = machine_info(args.threads, use_cuda)
    plans = []
    if args.device in ("all", "cpu"):
        no_bf16 = "" if info["cpu_native_bf16"] else "no AVX512-BF16/AMX (cpu_has_native_bf16() is False)"
        plans.append(("cpu", {"fp32": "", "bf16": no_bf16}, CPU_QUERIES, args.batch_sizes, args.seconds))
    if use_cuda:
        plans.append(("cuda", {"fp32": "", "fp16": ""}, CUDA_QUERIES, args.cuda_batch_sizes, args.cuda_seconds))
    runs, quality = [], []
    for plan in plans:
        device_runs, device_quality = benchmark_device(*plan, args.repeats)
        runs += device_runs
        quality += device_quality
    add_per_query_overhead(runs)
    targets = evaluate_targets(runs, quality, info)

    settings = {
        "seconds": {plan[0]: plan[4] for plan in plans},
        "repeats": args.repeats,
        "quick": args.quick,
        "overlap_frames": WindowingOptions().overlap_frames,
        "model": ModelConfig().to_dict(),
    }
    report = markdown(command, info, settings, runs, quality, targets)
    print(report)
    result = {
        "command": command,
        "machine": info,
        "settings": settings,
        "runs": [asdict(r) for r in runs],
        "quality": [asdict(q) for q in quality],
        "targets": [asdict(t) for t in targets],
    }
    json_path = args.json or Path(__file__).resolve().parent / "results" / f"{default_stem(info, args.quick)}.json"
    write_results(json_path, args.markdown, result, report, log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
