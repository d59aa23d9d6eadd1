"""CPU speed of the bundled default model, and the U-Net width trade-off behind it.

The default model (`clipsep_rt.model.weights.default_checkpoint()`: CLIPSep-NIT, depth 7, ngf 16,
channels 32, 384-d MiniLM queries, FP16 on disk) on this machine's CPU:
  1. offline speed: seconds of audio separated per wall-clock second ("x real-time") for one
     random 384-d unit query vector on a synthetic mixture, through the public API
     (`Separator.open(...).separate(samples, 16000, embeddings={...})`: resampling check,
     STFT, overlapping windows, U-Net, query head, masking, iSTFT), in bf16 (CPUs with native
     bf16 only) and fp32; median of --repeats runs after one warm-up;
  2. streaming: per-hop compute p50 / p99, real-time factor and algorithmic latency of each
     latency preset (`clipsep_rt.measure.stream_timing.run_bench`, torch backend);
  3. width trade-off (speed side): the same offline measurement for random-weight
     CLIPSep-NIT U-Nets of several widths (ngf; depth 7, channels 32, query_dim 384) at the
     best CPU precision, with parameter counts and the size of their FP16 checkpoint files
     (saved with `save_checkpoint(half=True)`). The bundled file must stay <= 40 MB.

    python benchmarks/default_model.py                   # full run (minutes), 2 threads
    python benchmarks/default_model.py --quick --threads 1 --json /tmp/default_model-quick.json
    python benchmarks/default_model.py --checkpoint runs/default/best.safetensors
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

# benchmarks/offline.py, next to this script (on sys.path when run as a script)
from offline import (
    TARGET_CPU_XRT,
    Target,
    cell,
    machine_info,
    median_call_seconds,
    parse_ints,
    synthetic_mixture,
)

from clipsep_rt.api import Separator
from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.checkpoint import (
    checkpoint_from_model,
    load_checkpoint,
    save_checkpoint,
)
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.measure.results import format_table, result_stem, write_results
from clipsep_rt.measure.stream_timing import BenchRow, run_bench
from clipsep_rt.runtime.offline import CPU_BATCH, WindowingOptions

SEED = 0
SAMPLE_RATE = 16000
WIDTHS = (8, 16, 24, 32, 64)
QUICK_WIDTHS = (8, 16)
WIDTH_BASE = ModelConfig(depth=7, ngf=16, channels=32, query_dim=384, noise_heads=2)  # ngf replaced per row
MAX_FP16_MB = 40.0  # the bundled checkpoint, in MB of 10^6 bytes
MB = 1e6


@dataclass
class OfflineRun:
    precision: str
    status: str  # "ok" or "skipped: ..."
    median_s: float | None = None
    x_realtime: float | None = None


@dataclass
class WidthRow:
    ngf: int
    parameters: int
    fp16_bytes: int
    precision: str
    median_s: float
    x_realtime: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="the model to time (default: clipsep_rt.model.weights.default_checkpoint())")
    parser.add_argument("--seconds", type=float, help="offline mixture length (default 60, --quick 10)")
    parser.add_argument("--stream-seconds", type=float, help="audio streamed per preset (default 30, --quick 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, help="timed offline runs after one warm-up (default 3, --quick 1)")
    parser.add_argument("--widths", type=parse_ints, help='U-Net widths (ngf) to compare (default "8,16,24,32,64", --quick "8,16")')
    parser.add_argument("--quick", action="store_true", help="smoke test: short audio, 1 repeat, fewer widths")
    parser.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/default_model-<host>[-quick].json)")
    parser.add_argument("--markdown", type=Path, help="markdown fragment (default: the JSON path with .md)")
    args = parser.parse_args()
    quick = args.quick
    args.seconds = args.seconds or (10.0 if quick else 60.0)
    args.stream_seconds = args.stream_seconds or (5.0 if quick else 30.0)
    args.repeats = args.repeats or (1 if quick else 3)
    args.widths = args.widths or (QUICK_WIDTHS if quick else WIDTHS)
    if args.checkpoint is None:
        from clipsep_rt.model.weights import default_checkpoint

        try:
            args.checkpoint = default_checkpoint()
        except ClipsepError as error:
            parser.error(str(error))
    return args


# -- measurement ---------------------------------------------------------------------------


def unit_query(dim: int) -> np.ndarray:
    vector = np.random.default_rng(SEED).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def offline_seconds(checkpoint: Path, precision: str, mixture: np.ndarray, repeats: int) -> float:
    """Median wall time of `Separator.separate` (public API, one query) on the CPU."""
    separator = Separator.open(checkpoint=checkpoint, device="cpu", precision=precision)
    embeddings = {"query": unit_query(separator.query_dim)}
    return median_call_seconds(lambda: separator.separate(mixture, SAMPLE_RATE, embeddings=embeddings), repeats)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fp16_size(checkpoint, folder: Path, name: str) -> tuple[Path, int]:
    """Save `checkpoint` as FP16 safetensors in `folder`: (path, bytes)."""
    path = folder / f"{name}.safetensors"
    save_checkpoint(checkpoint, path, half=True)
    return path, path.stat().st_size


def benchmark_default(checkpoint: Path, precisions: dict[str, str], seconds: float, repeats: int) -> list[OfflineRun]:
    """`precisions` maps each precision to "" (run it) or why it is skipped."""
    mixture = synthetic_mixture(seconds, SAMPLE_RATE)
    runs = []
    for precision, skip_reason in precisions.items():
        if skip_reason:
            runs.append(OfflineRun(precision, f"skipped: {skip_reason}"))
            continue
        median = offline_seconds(checkpoint, precision, mixture, repeats)
        runs.append(OfflineRun(precision, "ok", median, seconds / median))
        print(f"  offline {precision}: {median:.3f} s, {seconds / median:.1f}x real-time", file=sys.stderr, flush=True)
    return runs


def benchmark_widths(widths: tuple[int, ...], precision: str, seconds: float, repeats: int) -> list[WidthRow]:
    mixture = synthetic_mixture(seconds, SAMPLE_RATE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipsep-widths-") as scratch:
        for ngf in widths:
            torch.manual_seed(SEED)
            model = CLIPSepSeparator(ModelConfig.from_dict({**WIDTH_BASE.to_dict(), "ngf": ngf}))
            path, size = fp16_size(checkpoint_from_model(model, query_encoder=None), Path(scratch), f"ngf{ngf}")
            params = parameter_count(model)
            del model
            median = offline_seconds(path, precision, mixture, repeats)
            rows.append(WidthRow(ngf, params, size, precision, median, seconds / median))
            path.unlink()
            print(
                f"  width ngf {ngf}: {params / 1e6:.2f} M parameters, FP16 {size / MB:.1f} MB, "
                f"{median:.3f} s, {seconds / median:.1f}x real-time",
                file=sys.stderr,
                flush=True,
            )
    return rows


def progress(line: str) -> None:
    print("  " + line, file=sys.stderr, flush=True)


# -- targets and report --------------------------------------------------------------------


def evaluate_targets(info: dict, fp16_bytes: int, offline_runs: list[OfflineRun], stream: list[BenchRow]) -> list[Target]:
    targets = [Target(f"default model FP16 file <= {MAX_FP16_MB:g} MB", fp16_bytes / MB, fp16_bytes / MB <= MAX_FP16_MB)]
    name = f"cpu offline: >= {TARGET_CPU_XRT:g}x real-time, 1 query, 2 threads"
    measured = [r for r in offline_runs if r.x_realtime]
    if not measured:
        targets.append(Target(name, None, None, "not measured"))
    else:
        best = max(measured, key=lambda r: r.x_realtime)
        note = best.precision + ("" if info["threads"] == 2 else f"; measured with {info['threads']} threads, target is for 2")
        targets.append(Target(name, best.x_realtime, best.x_realtime >= TARGET_CPU_XRT, note))
    name = "cpu streaming: some preset runs in real time (p99 RTF < 1); value: its latency (ms)"
    realtime = sorted((r for r in stream if r.status == "ok" and r.realtime), key=lambda r: (r.latency_ms, r.rtf_p99))
    ok = [r for r in stream if r.status == "ok"]
    if realtime:
        best = realtime[0]
        targets.append(Target(name, best.latency_ms, True, f"{best.preset}, {best.precision}, p99 RTF {best.rtf_p99:.2f}"))
    elif ok:
        best = min(ok, key=lambda r: r.rtf_p99)
        targets.append(Target(name, None, False, f"best p99 RTF {best.rtf_p99:.2f} ({best.preset}, {best.precision})"))
    else:
        targets.append(Target(name, None, None, "not measured"))
    return targets


def markdown(command: str, info: dict, settings: dict, offline_runs, stream: list[BenchRow], widths, targets) -> str:
    machine = (
        f"{info['cpu']}, {info['cores']} cores (native bf16: {info['cpu_native_bf16']}), "
        f"torch {info['torch']}, {info['threads']} threads"
    )
    model = settings["model"]
    windowing = settings["windowing"]
    lines = [
        "### Default model: CPU speed and the U-Net width trade-off",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}",
        "",
        (
            f"Model: {settings['checkpoint']} (CLIPSep-NIT, depth {model['depth']}, ngf {model['ngf']}, "
            f"channels {model['channels']}, query_dim {model['query_dim']}, noise heads {model['noise_heads']}; "
            f"{settings['parameters'] / 1e6:.2f} M parameters, file {settings['file_bytes'] / MB:.1f} MB, "
            f"FP16 {settings['fp16_bytes'] / MB:.1f} MB)"
        ),
        "",
        "#### Offline separation",
        "",
        (
            f"`Separator.open(checkpoint, device=\"cpu\", precision=...).separate(...)` on a {settings['seconds']:g} s "
            f"synthetic mixture, 1 random unit query vector; overlap {windowing['overlap_frames']} frames, batch "
            f"{windowing['batch_windows']} windows, {windowing['mask']} masks; median of {settings['repeats']} runs after 1 warm-up."
        ),
        "",
        "| precision | median s | x real-time |",
        "|---|---:|---:|",
    ]
    for r in offline_runs:
        if r.status != "ok":
            lines.append(f"| {r.precision} | {r.status} | |")
        else:
            lines.append(f"| {r.precision} | {r.median_s:.3f} | {r.x_realtime:.1f} |")
    lines += [
        "",
        "#### Streaming (latency presets)",
        "",
        f"`run_bench` (torch backend, cpu): {settings['stream_seconds']:g} s synthetic mixture per preset in 16 ms blocks, 1 query.",
        "",
        format_table(stream).rstrip("\n"),
        "",
        "#### U-Net width trade-off (speed side)",
        "",
        (
            f"Random-weight CLIPSep-NIT (depth {WIDTH_BASE.depth}, channels {WIDTH_BASE.channels}, query_dim "
            f"{WIDTH_BASE.query_dim}, noise heads {WIDTH_BASE.noise_heads}) per width, same offline measurement at "
            f"{widths[0].precision if widths else 'the best CPU precision'}; FP16 file = `save_checkpoint(half=True)` "
            f"(MB = 10^6 bytes; the bundled file must be <= {MAX_FP16_MB:g} MB)."
        ),
        "",
        "| ngf | parameters (M) | FP16 file MB | <= 40 MB | median s | x real-time | time vs default width |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    base = next((w for w in widths if w.ngf == model["ngf"]), None)
    for w in widths:
        mark = " (default)" if w is base else ""
        relative = f"{w.median_s / base.median_s:.2f}x" if base else ""
        fits = "yes" if w.fp16_bytes / MB <= MAX_FP16_MB else "NO"
        lines.append(
            f"| {w.ngf}{mark} | {w.parameters / 1e6:.2f} | {w.fp16_bytes / MB:.1f} | {fits} | {w.median_s:.3f} | "
            f"{w.x_realtime:.1f} | {relative} |"
        )
    lines += ["", "Targets:", ""]
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t.passed]
        lines.append(f"- {verdict} {t.name}: {cell(t.value, '.1f')}" + (f" ({t.note})" if t.note else ""))
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = "python " + shlex.join(sys.argv)
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads, use_cuda=False)
    loaded = load_checkpoint(args.checkpoint)
    config = loaded.model_config
    with tempfile.TemporaryDirectory(prefix="clipsep-default-") as scratch:
        _, fp16_bytes = fp16_size(loaded, Path(scratch), "default")
    parameters = parameter_count(loaded.build())
    del loaded
    no_bf16 = "" if info["cpu_native_bf16"] else "no AVX512-BF16/AMX (cpu_has_native_bf16() is False)"
    best_precision = "bf16" if info["cpu_native_bf16"] else "fp32"

    print(f"offline: {args.checkpoint}, {args.seconds:g} s of audio", file=sys.stderr, flush=True)
    offline_runs = benchmark_default(args.checkpoint, {"bf16": no_bf16, "fp32": ""}, args.seconds, args.repeats)
    print(f"streaming: {args.stream_seconds:g} s per preset", file=sys.stderr, flush=True)
    stream = run_bench(args.checkpoint, None, ["torch"], None, args.stream_seconds, "cpu", args.threads, log=progress)
    print(f"widths {', '.join(map(str, args.widths))} at {best_precision}", file=sys.stderr, flush=True)
    widths = benchmark_widths(args.widths, best_precision, args.seconds, args.repeats)
    targets = evaluate_targets(info, fp16_bytes, offline_runs, stream)

    settings = {
        "checkpoint": str(args.checkpoint),
        "model": config.to_dict(),
        "parameters": parameters,
        "file_bytes": args.checkpoint.stat().st_size,
        "fp16_bytes": fp16_bytes,
        "seconds": args.seconds,
        "stream_seconds": args.stream_seconds,
        "repeats": args.repeats,
        "quick": args.quick,
        "windowing": asdict(WindowingOptions(batch_windows=CPU_BATCH)),  # the defaults, as resolved on the CPU
        "width_base": WIDTH_BASE.to_dict(),
    }
    report = markdown(command, info, settings, offline_runs, stream, widths, targets)
    print(report)
    stem = result_stem("default_model", info["hostname"], args.quick)
    data = {
        "command": command,
        "machine": info,
        "settings": settings,
        "offline": [asdict(r) for r in offline_runs],
        "streaming": [asdict(r) for r in stream],
        "widths": [asdict(w) for w in widths],
        "targets": [asdict(t) for t in targets],
    }
    json_path = args.json or Path(__file__).resolve().parent / "results" / f"{stem}.json"
    write_results(json_path, args.markdown, data, report, log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
