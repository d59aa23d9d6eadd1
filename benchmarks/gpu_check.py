"""Everything that needs a GPU, in one command: `make gpu-check` (OUT=folder, default gpu_check/).

Parts, each in its own process with its own time box (a crash, a hang or a missing package
in one is recorded in the report and the others still run):
  cuda_tests   the tests that need CUDA (tests/test_torch_engine.py, tests/test_engines.py:
               they skip without it), with pytest's skip reasons
  offline      network throughput (windows/s, x real-time) in fp16 and fp32 at batch 1-64, for
               the full-size model (ngf 64, random weights) and the bundled default model
  streaming    per-hop compute p50 / p99 and RTF of every latency preset (clipsep_rt/measure/stream_timing.py)
  engines      torch CUDA graphs, torch.compile, ONNX Runtime CUDA (when onnxruntime-gpu is
               installed) and TensorRT (when importable), batch 1 latency and batch 16 throughput
  training     training steps per second (forward, BCE mask loss, backward, AdamW step) at
               batch 8 on random spectrograms, bf16 autocast on CUDA
Reports: OUT/gpu_check.json and OUT/gpu_check.md, naming the GPU. The whole run takes under
8 minutes on one H100/H200 (the time boxes add up to 7.5 minutes).

    python benchmarks/gpu_check.py --out gpu_check/
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check   # the same plumbing on CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("cuda_tests", "offline", "streaming", "engines", "training")
TIME_BOX_S = {"cuda_tests": 120, "offline": 90, "streaming": 60, "engines": 120, "training": 60}  # 450 s in all
DRY_TIME_BOX_S = 120
CUDA_TEST_FILES = ("tests/test_torch_engine.py", "tests/test_engines.py")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check"))
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the plumbing, measures nothing useful")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)  # internal: where that part writes its JSON
    return p.parse_args(argv)


# -- the parts (each runs in a child process and returns a JSON-able dict) ----------------------


def _device(dry: bool) -> str:
    import torch

    if dry:
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch sees no CUDA GPU (use --dry-run to check the plumbing on CPU)")
    return "cuda"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_seconds(call, device: str | None, repeats: int, warmup: int = 2) -> float:
    """Median wall time of `call`; `device` "cuda": synchronised around each call (work queued on
    the GPU). Engine calls pass None: `engine.probabilities` returns with the masks in host memory."""
    times = []
    for index in range(warmup + repeats):
        if device:
            _sync(device)
        start = time.perf_counter()
        call()
        if device:
            _sync(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _models(dry: bool) -> list[tuple[str, object]]:
    """(name, CLIPSepSeparator): full size with random weights, and the bundled default model."""
    import torch

    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model.separator import CLIPSepSeparator
    from clipsep_rt.model.weights import default_checkpoint
    from clipsep_rt.model.checkpoint import load_checkpoint

    torch.manual_seed(0)
    full = ModelConfig(ngf=4, depth=5, channels=8) if dry else ModelConfig()
    default = load_checkpoint(default_checkpoint()).build("cpu")
    return [("full size (ngf 64, random)" if not dry else "tiny (ngf 4, dry run)", CLIPSepSeparator(full).eval()),
            ("default (ngf 16)", default.eval())]


def _window_inputs(batch: int, frames: int, query_dim: int):
    """(batch, 1, 256, frames) log magnitudes and a (1, query_dim) unit query: numpy float32,
    in host memory, as engines take them."""
    import torch

    generator = torch.Generator().manual_seed(0)
    log_mag = torch.randn(batch, 1, 256, frames, generator=generator) * 2 - 3
    return log_mag.numpy(), torch.nn.functional.normalize(torch.randn(1, query_dim, generator=generator), dim=1).numpy()


def part_offline(dry: bool) -> dict:
    from clipsep_rt.runtime.engines.torch_engine import TorchEngine

    device = _device(dry)
    batches, precisions, frames = ((1, 2), ("fp32",), 128) if dry else ((1, 4, 16, 32, 64), ("fp16", "fp32"), 256)
    audio_per_window = (frames - frames // 4) * 256 / 16000  # new audio per window at the default overlap
    rows = []
    for name, model in _models(dry):
        for precision in precisions:
            engine = TorchEngine(model, device, precision)
            for batch in batches:
                row = {"model": name, "precision": precision, "batch": batch}
                try:
                    log_mag, embedding = _window_inputs(batch, frames, model.config.query_dim)
                    queries = engine.prepare_queries(embedding, noise_heads=False)
                    seconds = _median_seconds(lambda: engine.probabilities(log_mag, queries), None, 3 if dry else 10)
                    row.update(ms=1000 * seconds, windows_per_s=batch / seconds, x_realtime=batch * audio_per_window / seconds)
                except RuntimeError as error:  # out of memory at a large batch: keep the others
                    row["error"] = " ".join(str(error).split())[:200]
                rows.append(row)
    return {"device": device, "frames": frames, "rows": rows}


def part_streaming(dry: bool) -> dict:
    from dataclasses import asdict

    from clipsep_rt.measure.stream_timing import run_bench

    from clipsep_rt.model.weights import default_checkpoint

    device = _device(dry)
    # GPU: the full-size model (random weights); dry run: the small default model, 1 s per preset.
    rows = run_bench(checkpoint=default_checkpoint() if dry else None, backends=["torch"], seconds=1.0 if dry else 10.0,
                     presets=["balanced"] if dry else None, device=device)
    keep = ("preset", "backend", "device", "precision", "latency_ms", "compute_p50_ms", "compute_p99_ms", "rtf_p99",
            "overruns", "model", "status")
    return {"device": device, "rows": [{k: v for k, v in asdict(row).items() if k in keep} for row in rows]}


def part_engines(dry: bool) -> dict:
    from clipsep_rt.runtime.engines.torch_engine import TorchEngine

    device = _device(dry)
    name, model = _models(dry)[0]
    frames, batch = (128, 2) if dry else (256, 16)
    precision = "fp32" if dry else "fp16"
    rows = []

    def time_engine(label: str, make) -> None:
        row = {"engine": label}
        try:
            engine = make()
            for size, key in ((1, "latency_ms"), (batch, f"batch{batch}_ms")):
                log_mag, embedding = _window_inputs(size, frames, model.config.query_dim)
                queries = engine.prepare_queries(embedding, noise_heads=False)
                row["device"] = engine.device  # where the network ran ("cpu" or "cuda:N")
                row[key] = 1000 * _median_seconds(lambda: engine.probabilities(log_mag, queries), None, 3 if dry else 10)
            row["windows_per_s"] = batch / row[f"batch{batch}_ms"] * 1000
        except Exception as error:  # noqa: BLE001 - recorded: one engine's failure is not the check's
            row["error"] = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        rows.append(row)

    time_engine(f"torch {precision} eager", lambda: TorchEngine(model, device, precision, cuda_graphs=False))
    if device == "cuda":
        time_engine("torch fp16 + CUDA graphs", lambda: TorchEngine(model, device, "fp16", cuda_graphs=True))
    if not dry:  # compiling takes minutes on a CPU
        time_engine("torch fp16 + torch.compile + CUDA graphs", lambda: TorchEngine(model, device, "fp16", compile=True))
    with tempfile.TemporaryDirectory(prefix="gpu-check-onnx-") as folder:
        from clipsep_rt.export.separator_onnx import convert_separator_fp16, export_separator_onnx
        from clipsep_rt.runtime.engines.onnx_engine import OnnxRuntimeEngine

        onnx = Path(folder) / "separator.onnx"
        try:
            export_separator_onnx(model, onnx, window_frames=frames)
            if device == "cuda":
                convert_separator_fp16(onnx, onnx.with_name("separator.fp16.onnx"))
        except Exception as error:  # noqa: BLE001
            rows.append({"engine": "onnx export", "error": f"{type(error).__name__}: {error}"[:200]})
        else:
            if device == "cuda":
                time_engine("onnxruntime CUDA fp16", lambda: OnnxRuntimeEngine(onnx.with_name("separator.fp16.onnx"), "cuda", "fp16",
                                                                             providers=["CUDAExecutionProvider"]))
                time_engine("onnxruntime TensorRT fp16", lambda: OnnxRuntimeEngine(onnx, "cuda", "fp16", cache_dir=Path(folder) / "trt",
                                                                                  providers=["TensorrtExecutionProvider"]))
                time_engine("TensorRT plan fp16", lambda: _tensorrt_engine(onnx))
            else:
                time_engine("onnxruntime CPU fp32", lambda: OnnxRuntimeEngine(onnx, "cpu", "fp32"))
    return {"device": device, "model": name, "frames": frames, "rows": rows}


def _tensorrt_engine(onnx: Path):
    from clipsep_rt.runtime.engines.tensorrt_engine import TensorRTEngine
    from clipsep_rt.runtime.engines.tensorrt_plan import TensorRTBuildConfig, ensure_engine

    plan = onnx.with_name("separator.plan")
    ensure_engine(onnx, plan, TensorRTBuildConfig(timing_cache=onnx.with_name("tensorrt.timing-cache")))
    return TensorRTEngine(plan, "cuda")


def part_training(dry: bool) -> dict:
    import torch

    device = _device(dry)
    name, model = _models(dry)[0]
    model = model.to(device).train()
    batch, frames, steps = (2, 128, 3) if dry else (8, 256, 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    log_mag, embedding = _window_inputs(batch, frames, model.config.query_dim)
    log_mag = torch.from_numpy(log_mag).to(device)
    embeddings = torch.as_tensor(embedding, device=device).repeat(2, 1)
    target = (torch.rand(batch, 2, 256, frames, generator=torch.Generator().manual_seed(1)) > 0.5).float().to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(log_mag, embeddings, noise_heads=False).query
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
        loss.backward()
        optimizer.step()

    seconds = _median_seconds(step, device, steps)
    return {"device": device, "model": name, "batch": batch, "frames": frames, "precision": "bf16 autocast" if device == "cuda" else "fp32",
            "step_ms": 1000 * seconds, "steps_per_s": 1 / seconds, "mixtures_per_s": batch / seconds}


def part_cuda_tests(dry: bool) -> dict:
    """pytest on the files whose tests need CUDA; dry run: collection only (what would run)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *CUDA_TEST_FILES, "-k", "cuda"]
    if dry:
        command.append("--collect-only")
    else:
        _device(dry)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return {"command": " ".join(command[1:]), "returncode": done.returncode, "summary": lines[-1] if lines else "",
            "skipped": [line for line in lines if line.startswith("SKIPPED")][:20],
            "failures": [line for line in lines if line.startswith(("FAILED", "ERROR"))][:20]}


PART_FUNCTIONS = {"cuda_tests": part_cuda_tests, "offline": part_offline, "streaming": part_streaming,
                  "engines": part_engines, "training": part_training}


# -- orchestration ------------------------------------------------------------------------------


def run_part(name: str, dry: bool, scratch: Path) -> dict:
    """One part in a child process under its time box; its result, or why there is none."""
    box = DRY_TIME_BOX_S if dry else TIME_BOX_S[name]
    result_path = scratch / f"{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--result", str(result_path)]
    command += ["--dry-run"] if dry else []
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=box)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {box} s", "seconds": box}
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not result_path.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"status": f"failed (exit {done.returncode})", "seconds": seconds, "error": " | ".join(tail)[-500:]}
    return {"status": "ok", "seconds": seconds, **json.loads(result_path.read_text())}


def gpu_name() -> str:
    import torch

    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return f"{properties.name} ({properties.total_memory / 2**30:.0f} GiB, compute {properties.major}.{properties.minor})"
    return "none: PyTorch sees no CUDA GPU"


def markdown(report: dict) -> str:
    lines = [f"# GPU check{' (dry run on CPU: plumbing only, not GPU figures)' if report['dry_run'] else ''}", "",
             f"GPU: {report['gpu']}  ", f"Machine: {report['machine']['cpu']}, torch {report['machine']['torch']}, "
             f"onnxruntime {report['machine']['onnxruntime']}  ", f"Command: `{report['command']}`  ",
             f"Total: {report['seconds']:.0f} s", ""]
    for name in report["parts"]:
        part = report["parts"][name]
        lines += [f"## {name}: {part['status']} ({part['seconds']} s)", ""]
        if part["status"] != "ok":
            lines += [f"    {part.get('error', '')}", ""]
            continue
        rows = part.get("rows")
        if rows:
            keys = list(dict.fromkeys(key for row in rows for key in row))
            lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(_cell(row.get(key)) for key in keys) + " |" for row in rows]
        else:
            lines += [f"- {key}: {_cell(value)}" for key, value in part.items() if key not in ("status", "seconds")]
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return "; ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.part:  # child process: one part
        import torch

        torch.manual_seed(0)
        args.result.write_text(json.dumps(PART_FUNCTIONS[args.part](args.dry_run)))
        return 0
    from clipsep_rt.measure.machine import machine_info
    from clipsep_rt.measure.results import write_results

    parts = [part for part in args.parts.split(",") if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"gpu_check: unknown part(s) {', '.join(unknown)}; expected {', '.join(PARTS)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    report = {"gpu": gpu_name(), "dry_run": args.dry_run, "machine": machine_info(),
              "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]), "parts": {}}
    if not args.dry_run and report["machine"]["gpu"] is None:
        print("gpu_check: PyTorch sees no CUDA GPU; the parts will record that (use --dry-run for a CPU plumbing check)",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        for name in parts:
            print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
            report["parts"][name] = run_part(name, args.dry_run, Path(scratch))
            print(f"gpu_check: {name}: {report['parts'][name]['status']}", file=sys.stderr, flush=True)
    report["seconds"] = time.perf_counter() - start
    write_results(args.out / "gpu_check.json", args.out / "gpu_check.md", report, markdown(report),
                  log=lambda line: print(f"gpu_check: {line}", file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
