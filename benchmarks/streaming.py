"""Streaming separation: latency, per-hop compute and quality of each latency preset.

For each preset of `runtime.streaming.PRESETS`, on the full-size CLIPSep-NIT network
(random weights, seeded) with the best CPU engine (torch bf16 on CPUs with native bf16,
else fp32) and, when available, on CUDA in fp16, this streams a synthetic mixture through
`StreamingSeparator.process` in 16 ms blocks as fast as possible and reports:
  - the algorithmic latency (ms),
  - per-hop compute p50 / p99 (ms) and the real-time factor (compute / hop duration),
  - SDR of the streaming output against the offline output (OfflineSeparator, same engine
    and input): how much the fixed latency costs,
  - with --checkpoint and --query-embedding (a trained model and the target's query): SDR
    against the known target source of the mixture (a harmonic tone melody; the
    interferer is band-limited noise bursts). Random weights make that number meaningless,
    so without them it is reported as n.a.

SDR here is the plain 10 log10(|ref|^2 / |ref - est|^2) over the whole signal (no scale
or filter allowance, unlike BSSEval/museval).

    python benchmarks/streaming.py                      # 30 s per preset (minutes)
    python benchmarks/streaming.py --quick              # smoke test
    python benchmarks/streaming.py --checkpoint model.safetensors --query-embedding melody.npy
"""

from __future__ import annotations

import argparse
import math
import shlex
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.model.checkpoint import load_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.measure.stream_timing import (
    BLOCK_S,
    WARMUP_STEPS,
    BenchRow,
    fill_timing,
    random_queries,
    stream_timed,
    synthetic_sources,
)
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.model.device import cpu_has_native_bf16
from clipsep_rt.runtime.offline import OfflineSeparator
from clipsep_rt.runtime.streaming import PRESETS, StreamingOptions

SEED = 0
TARGET_H100_P99_MS = 2.0  # low preset (<= 100 ms latency), fp16
TARGET_LOW_LATENCY_MS = 100.0
SDR = "plain SDR = 10 log10(|ref|^2 / |ref - est|^2), whole signal, no scale/filter allowance (not museval)"


@dataclass
class Result:
    timing: BenchRow
    sdr_vs_offline_db: float | None = None  # streaming output vs offline output, same engine
    sdr_vs_truth_db: float | None = None  # streaming output vs the target source
    offline_sdr_vs_truth_db: float | None = None  # offline output vs the target source


@dataclass
class Target:
    name: str
    value: float | None
    passed: bool | None  # None: n.a. here
    note: str = ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="audio streamed per preset (default 30, --quick 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 5 s per preset")
    parser.add_argument("--checkpoint", type=Path, help="a trained separator (.safetensors or original .pt): enables SDR vs ground truth")
    parser.add_argument("--query-embedding", type=Path, help=".npy/.npz embedding of the target (the tone melody); first row used")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all", help="which devices to benchmark")
    parser.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/streaming-<host>[-quick].json)")
    parser.add_argument("--markdown", type=Path, help="markdown fragment (default: the JSON path with .md)")
    args = parser.parse_args()
    args.seconds = args.seconds or (5.0 if args.quick else 30.0)
    return args


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    error = float(np.sum((reference - estimate) ** 2))
    return 10 * math.log10(float(np.sum(reference**2)) / max(error, 1e-30))


def load_model(checkpoint: Path | None) -> tuple[CLIPSepSeparator, SpectralConfig, str]:
    """A fresh model per engine (TorchEngine casts the U-Net in place)."""
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint)
        return loaded.build(), loaded.spectral_config, f"checkpoint {checkpoint}"
    torch.manual_seed(SEED)
    config = ModelConfig()
    model = CLIPSepSeparator(config)
    return model, SpectralConfig(), f"full-size CLIPSep-NIT (depth {config.depth}, ngf {config.ngf}), random weights (seed {SEED})"


def query_embedding(path: Path | None, query_dim: int) -> np.ndarray | None:
    if path is None:
        return None
    from clipsep_rt.query.vectors import load_query_embeddings

    _, embeddings = load_query_embeddings(path)
    if embeddings.shape[1] != query_dim:
        sys.exit(f"{path}: {embeddings.shape[1]}-d embeddings, the model takes {query_dim}-d")
    return embeddings[:1]


def benchmark_engine(engine: TorchEngine, spectral: SpectralConfig, args, description: str) -> list[Result]:
    melody, bursts = synthetic_sources(args.seconds, spectral.sample_rate, SEED)
    mixture = melody + bursts
    config = engine.model.config
    embedding = query_embedding(args.query_embedding, config.query_dim)
    if embedding is not None:
        queries = engine.prepare_queries(embedding, noise_heads=False)
    else:
        queries = random_queries(engine, config.query_dim, SEED)
    truth = args.checkpoint is not None and embedding is not None
    offline = OfflineSeparator(engine, spectral).separate(mixture, queries)[0]
    results = []
    for preset in PRESETS:
        options = StreamingOptions.preset(preset)
        row = BenchRow("torch", engine.device.split(":")[0], engine.precision, preset, model=description,
                       hop_frames=options.hop_frames, lookahead_frames=options.lookahead_frames)
        try:
            run = stream_timed(engine, queries, spectral, options, mixture)
        except RuntimeError as error:  # CUDA out of memory or similar: keep the other presets
            row.status = f"failed: {str(error).splitlines()[0][:120]}"
            results.append(Result(row))
            continue
        fill_timing(row, run, spectral.sample_rate)
        streamed = run.output[0]
        result = Result(row, sdr_vs_offline_db=sdr_db(offline, streamed))
        if truth:
            result.sdr_vs_truth_db = sdr_db(melody, streamed)
            result.offline_sdr_vs_truth_db = sdr_db(melody, offline)
        results.append(result)
        print(progress(result), file=sys.stderr, flush=True)
    return results


def progress(result: Result) -> str:
    r = result.timing
    if r.status != "ok":
        return f"  {r.device} {r.precision} {r.preset}: {r.status}"
    return (
        f"  {r.device} {r.precision} {r.preset}: latency {r.latency_ms:.0f} ms, p50 {r.compute_p50_ms:.1f} / "
        f"p99 {r.compute_p99_ms:.1f} ms per {r.hop_ms:.0f} ms hop (RTF p99 {r.rtf_p99:.2f}), "
        f"stream vs offline SDR {result.sdr_vs_offline_db:.1f} dB"
    )


def evaluate_targets(results: list[Result], info: dict) -> list[Target]:
    targets = []
    cpu = [r.timing for r in results if r.timing.device == "cpu" and r.timing.status == "ok"]
    name = "cpu: some preset runs the model in real time (p99 RTF < 1); value: its latency (ms)"
    realtime = sorted((r for r in cpu if r.realtime), key=lambda r: r.latency_ms)
    if not cpu:
        targets.append(Target(name, None, None, "not measured"))
    elif realtime:
        best = realtime[0]
        note = f"{best.preset} preset, {best.precision}, p99 RTF {best.rtf_p99:.2f}, {info['threads']} threads"
        targets.append(Target(name, best.latency_ms, True, note))
    else:
        best = min(cpu, key=lambda r: r.rtf_p99)
        note = f"best p99 RTF {best.rtf_p99:.2f} ({best.preset}, {best.precision}), {info['threads']} threads"
        targets.append(Target(name, None, False, note))
    name = f"cuda: H100, low preset (<= {TARGET_LOW_LATENCY_MS:g} ms) p99 hop compute < {TARGET_H100_P99_MS:g} ms in fp16"
    gpu = info.get("gpu")
    low = next((r.timing for r in results if r.timing.device == "cuda" and r.timing.preset == "low"), None)
    if not gpu:
        targets.append(Target(name, None, None, "no GPU"))
    elif "H100" not in gpu:
        targets.append(Target(name, low.compute_p99_ms if low else None, None, f"GPU is {gpu}, not an H100"))
    elif low is None or low.status != "ok":
        targets.append(Target(name, None, False, low.status if low else "not measured"))
    else:
        ok = low.compute_p99_ms < TARGET_H100_P99_MS and low.latency_ms <= TARGET_LOW_LATENCY_MS
        targets.append(Target(name, low.compute_p99_ms, ok, f"latency {low.latency_ms:.0f} ms, {low.precision}"))
    return targets


def cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def markdown(command: str, info: dict, settings: dict, results: list[Result], targets: list[Target]) -> str:
    machine = (
        f"{info['cpu']}, {info['cores']} cores (native bf16: {info['cpu_native_bf16']}), "
        f"torch {info['torch']}, {info['threads']} threads; GPU: {info['gpu'] or 'none'}"
    )
    lines = [
        f"### Streaming separation: latency presets ({settings['model']})",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}",
        "",
        (
            f"Audio: {settings['seconds']:g} s synthetic mixture (tone melody + band-limited noise bursts) per preset, "
            f"{settings['block_ms']:g} ms blocks through `process()` as fast as possible, 1 query, soft masks; "
            f"{settings['warmup_steps']} warm-up network steps not timed. Compute = one network step (STFT, network, "
            "masking, iSTFT) per hop; RTF = compute / hop duration."
        ),
        "",
        (
            "| device | precision | preset (H+L frames) | latency ms | hop ms | compute p50 ms | p99 ms | RTF p99 "
            "| RTF mean | real time | SDR vs offline dB | SDR vs truth dB (offline) |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for result in results:
        r = result.timing
        preset = f"{r.preset} ({r.hop_frames}+{r.lookahead_frames})"
        if r.status != "ok":
            lines.append(f"| {r.device} | {r.precision} | {preset} | | | {r.status} | | | | | | |")
            continue
        truth = "n.a."
        if result.sdr_vs_truth_db is not None:
            truth = f"{result.sdr_vs_truth_db:.1f} ({result.offline_sdr_vs_truth_db:.1f})"
        lines.append(
            f"| {r.device} | {r.precision} | {preset} | {r.latency_ms:.0f} | {r.hop_ms:.0f} | {r.compute_p50_ms:.1f} | "
            f"{r.compute_p99_ms:.1f} | {r.rtf_p99:.2f} | {r.rtf_mean:.2f} | {'yes' if r.realtime else 'NO'} | "
            f"{result.sdr_vs_offline_db:.1f} | {truth} |"
        )
    lines += ["", f"SDR: {SDR}.", "", f"Ground truth: {settings['ground_truth']}", "", "Targets:", ""]
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n.a."}[t.passed]
        lines.append(f"- {verdict} {t.name}: {cell(t.value, '.1f')}" + (f" ({t.note})" if t.note else ""))
    return "\n".join(lines) + "\n"


def ground_truth_note(args) -> str:
    if args.checkpoint is not None and args.query_embedding is not None:
        return (
            f"SDR of the melody estimate against the generated melody (mixture SDR "
            f"{args.mixture_sdr_db:.1f} dB), query {args.query_embedding}."
        )
    if args.checkpoint is not None:
        return "n.a.: pass --query-embedding (the target melody's query) to score against the known sources."
    return (
        "n.a.: no trained model is available yet and random weights separate nothing; rerun with "
        "--checkpoint MODEL --query-embedding MELODY.npy to score against the known sources."
    )


def main() -> None:
    args = parse_args()
    command = "python " + shlex.join(sys.argv)
    torch.set_num_threads(args.threads)
    use_cuda = args.device in ("all", "cuda") and torch.cuda.is_available()
    if args.device == "cuda" and not use_cuda:
        sys.exit("--device cuda: CUDA is not available")
    info = {"hostname": socket.gethostname(), **machine_info(args.threads)}
    plans = []
    if args.device in ("all", "cpu"):
        plans.append(("cpu", "bf16" if cpu_has_native_bf16() else "fp32"))
    if use_cuda:
        plans.append(("cuda", "fp16"))
    results, description, spectral = [], "", SpectralConfig()
    for device, precision in plans:
        model, spectral, description = load_model(args.checkpoint)
        print(f"{device} {precision}: {description}, {args.seconds:g} s per preset", file=sys.stderr, flush=True)
        engine = TorchEngine(model, device, precision)
        results += benchmark_engine(engine, spectral, args, description)
        del engine
        if device == "cuda":
            torch.cuda.empty_cache()
    melody, bursts = synthetic_sources(args.seconds, spectral.sample_rate, SEED)
    args.mixture_sdr_db = sdr_db(melody, melody + bursts)
    targets = evaluate_targets(results, info)
    settings = {
        "model": description,
        "seconds": args.seconds,
        "quick": args.quick,
        "block_ms": 1000 * BLOCK_S,
        "warmup_steps": WARMUP_STEPS,
        "queries": 1,
        "presets": {name: list(value) for name, value in PRESETS.items()},
        "sdr": SDR,
        "ground_truth": ground_truth_note(args),
        "mixture_sdr_vs_melody_db": args.mixture_sdr_db,
    }
    report = markdown(command, info, settings, results, targets)
    print(report)
    stem = result_stem("streaming", info["hostname"], args.quick)
    data = {
        "command": command,
        "machine": info,
        "settings": settings,
        "results": [{**asdict(r.timing), **{k: v for k, v in asdict(r).items() if k != "timing"}} for r in results],
        "targets": [asdict(t) for t in targets],
    }
    json_path = args.json or Path(__file__).resolve().parent / "results" / f"{stem}.json"
    write_results(json_path, args.markdown, data, report, log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
