"""`clipsep-rt bench`: streaming latency and real-time margin of each backend on this machine.

For every backend that can run here (torch in its auto precision, torch fp32, onnxruntime,
TensorRT) and every latency preset, `seconds` of synthetic audio (seeded tones + noise
bursts) are streamed through `StreamingSeparator.process` in 16 ms blocks as fast as
possible - no audio device involved. Each row reports:

  - latency_ms: the separator's algorithmic latency (input sample -> output sample),
  - per-hop compute p50 / p99 / mean (ms): one network step (STFT, network, masking, iSTFT),
  - rtf_p99 = p99 compute / hop duration, rtf_mean = mean compute / hop duration,
  - realtime: rtf_p99 < 1 (each hop is computed before the next one is due).

Without a checkpoint or engine folder the full-size architecture runs with random weights:
timings are those of a trained model, the audio is not.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig, SpectralConfig
from ..errors import ClipsepError
from ..fileio import atomic_output
from ..optional import describe_exception
from .engine import Engine, PreparedQueries, cpu_has_native_bf16
from .streaming import PRESETS, StreamingOptions, StreamingSeparator

SEED = 0
BLOCK_S = 0.016  # audio block handed to process(), like a 16 ms audio callback
WARMUP_STEPS = 3  # network steps run (and discarded) before timing: first calls are slow
DEFAULT_BACKENDS = ("torch", "onnxruntime", "tensorrt")
JSON_FORMAT = "clipsep_rt-bench"


@dataclass
class BenchRow:
    backend: str  # torch, onnxruntime, tensorrt
    device: str  # where the network runs: cpu or cuda
    precision: str
    preset: str  # latency preset (runtime.streaming.PRESETS)
    status: str = "ok"  # "ok", or why this backend could not run
    model: str = ""  # what ran: random weights, a checkpoint or an engine folder
    note: str = ""  # e.g. the onnxruntime execution provider, a temporary ONNX export
    hop_frames: int = 0
    lookahead_frames: int = 0
    latency_ms: float | None = None
    hop_ms: float | None = None  # audio per network step
    steps: int = 0  # timed network steps
    compute_p50_ms: float | None = None
    compute_p99_ms: float | None = None
    compute_mean_ms: float | None = None
    rtf_p99: float | None = None
    rtf_mean: float | None = None
    realtime: bool | None = None  # rtf_p99 < 1


@dataclass
class StreamRun:
    """One timed stream: per-step compute times and the output aligned with the input."""

    latency_samples: int
    hop_samples: int
    compute_s: np.ndarray  # (steps,) seconds per network step, warm-up excluded
    output: np.ndarray = field(repr=False)  # (rows, n), latency removed


# -- synthetic audio --------------------------------------------------------------------------


def synthetic_sources(seconds: float, sample_rate: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Two known sources: a harmonic tone melody and band-limited noise bursts (float32)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    # Melody: 0.25 s notes from a pentatonic scale, 4 harmonics, short fades at note edges.
    note_len = int(0.25 * sample_rate)
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 7, 9, 12, 14, 16]) / 12)
    pitches = np.repeat(rng.choice(scale, size=n // note_len + 1), note_len)[:n]
    phase = 2 * np.pi * np.cumsum(pitches) / sample_rate
    melody = sum(np.sin(k * phase) / k for k in range(1, 5))
    position = np.arange(n) % note_len
    fade = int(0.01 * sample_rate)
    melody = melody * np.minimum(1.0, np.minimum(position, note_len - 1 - position) / fade)
    # Bursts: white noise band-passed to 2-5 kHz, on for 0.1-0.4 s at random times.
    noise = rng.standard_normal(n)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[(freqs < 2000) | (freqs > 5000)] = 0
    band = np.fft.irfft(spectrum, n)
    gate = np.zeros(n)
    start = 0
    while start < n:
        start += int(rng.uniform(0.1, 0.6) * sample_rate)
        length = int(rng.uniform(0.1, 0.4) * sample_rate)
        gate[start : start + length] = 1.0
        start += length
    gate = np.convolve(gate, np.hanning(fade) / np.hanning(fade).sum(), mode="same")
    bursts = band * gate
    melody = 0.2 * melody / max(np.abs(melody).max(), 1e-9)
    bursts = 0.2 * bursts / max(np.abs(bursts).max(), 1e-9)
    return melody.astype(np.float32), bursts.astype(np.float32)


def synthetic_mixture(seconds: float, sample_rate: int, seed: int = SEED) -> np.ndarray:
    melody, bursts = synthetic_sources(seconds, sample_rate, seed)
    return melody + bursts


def random_queries(engine: Engine, query_dim: int, seed: int = SEED) -> PreparedQueries:
    """One seeded random query, no noise heads (the usual streaming set-up)."""
    embedding = np.random.default_rng(seed).standard_normal((1, query_dim)).astype(np.float32)
    return engine.prepare_queries(embedding / np.linalg.norm(embedding), noise_heads=False)


# -- timing -----------------------------------------------------------------------------------


def _blocks(signal: np.ndarray, size: int) -> Iterator[np.ndarray]:
    return (signal[i : i + size] for i in range(0, len(signal), size))


def stream_timed(
    engine: Engine,
    queries: PreparedQueries,
    spectral: SpectralConfig,
    options: StreamingOptions,
    audio: np.ndarray,
    block: int | None = None,
) -> StreamRun:
    """Warm the engine up on a throw-away separator, then stream `audio` through a fresh one
    in `block`-sample blocks (default 16 ms) as fast as possible."""
    block = block or round(BLOCK_S * spectral.sample_rate)
    warm = StreamingSeparator(engine, queries, spectral, options)
    silence = np.zeros(block, dtype=np.float32)
    for piece in _blocks(audio, block):
        warm.process(piece)
        if len(warm.stats.steps) >= WARMUP_STEPS:
            break
    while len(warm.stats.steps) < WARMUP_STEPS:  # audio shorter than the warm-up
        warm.process(silence)
    separator = StreamingSeparator(engine, queries, spectral, options)
    pieces = [separator.process(piece) for piece in _blocks(audio, block)]
    compute = np.array([step.compute_s for step in separator.stats.steps])
    latency = separator.latency_samples
    tail = separator.process(np.zeros(latency, dtype=np.float32))  # flush: not timed
    output = np.concatenate([*pieces, tail], axis=1)[:, latency : latency + len(audio)]
    return StreamRun(latency, options.hop_frames * spectral.hop_length, compute, output)


def fill_timing(row: BenchRow, run: StreamRun, sample_rate: int) -> BenchRow:
    row.latency_ms = 1000 * run.latency_samples / sample_rate
    row.hop_ms = 1000 * run.hop_samples / sample_rate
    row.steps = len(run.compute_s)
    if row.steps == 0:
        row.status = "no network step ran: stream more audio (--seconds)"
        return row
    ms = 1000 * run.compute_s
    row.compute_p50_ms = float(np.percentile(ms, 50))
    row.compute_p99_ms = float(np.percentile(ms, 99))
    row.compute_mean_ms = float(ms.mean())
    row.rtf_p99 = row.compute_p99_ms / row.hop_ms
    row.rtf_mean = row.compute_mean_ms / row.hop_ms
    row.realtime = row.rtf_p99 < 1
    return row


# -- what to run --------------------------------------------------------------------------------


@dataclass
class _Source:
    """Where the weights and engine files come from."""

    files: dict[str, str]  # runtime.backends keys -> paths (engine folder)
    weights: Callable[[], object]  # -> Checkpoint
    model_config: ModelConfig
    spectral: SpectralConfig
    description: str


def _source(checkpoint: Path | None, engine_dir: Path | None) -> _Source:
    from ..model.checkpoint import checkpoint_from_model, load_checkpoint

    if engine_dir is not None:
        from ..export.manifest import read_manifest

        manifest = read_manifest(engine_dir)
        weights_path = Path(checkpoint) if checkpoint is not None else Path(engine_dir) / manifest.separator.weights
        return _Source(
            manifest.separator.backend_files(Path(engine_dir)), lambda: load_checkpoint(weights_path),
            manifest.model, manifest.spectral, f"engine folder {engine_dir}",
        )
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint)
        return _Source({}, lambda: loaded, loaded.model_config, loaded.spectral_config, f"checkpoint {checkpoint}")
    from ..model.separator import CLIPSepSeparator

    torch.manual_seed(SEED)
    random = checkpoint_from_model(CLIPSepSeparator(ModelConfig()), query_encoder=None)
    config = random.model_config
    description = (
        f"full-size CLIPSep-NIT (depth {config.depth}, ngf {config.ngf}) with random weights (seed {SEED}): "
        "no checkpoint given, timings only"
    )
    return _Source({}, lambda: random, config, SpectralConfig(), description)


def _plans(backends: list[str]) -> list[tuple[str, str]]:
    """(backend, precision) pairs: torch in its auto precision and in fp32, then the others."""
    plans = []
    for name in backends:
        plans.append((name, "auto"))
        if name == "torch":
            plans.append((name, "fp32"))
    return plans


def run_bench(
    checkpoint: Path | None = None,
    engine_dir: Path | None = None,
    backends: list[str] | None = None,
    presets: list[str] | None = None,
    seconds: float = 10.0,
    device: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """One BenchRow per (backend variant, preset); a variant that cannot run gets rows with the reason.

    backends: any of torch, onnxruntime, tensorrt (default: all). presets: names from
    runtime.streaming.PRESETS (default: all). threads: torch and onnxruntime intra-op threads.
    `log` gets one progress line per measurement.
    """
    from .backends import choose_backend
    from .engine_factory import open_engine

    backends = list(backends or DEFAULT_BACKENDS)
    presets = list(presets or PRESETS)
    for name in backends:
        if name not in DEFAULT_BACKENDS:
            raise ClipsepError(f"backend {name!r}: expected one of {', '.join(DEFAULT_BACKENDS)}")
    options = {name: StreamingOptions.preset(name) for name in presets}  # ClipsepError for an unknown preset
    if seconds <= 0:
        raise ClipsepError(f"--seconds must be positive, got {seconds:g}")
    log = log or (lambda line: None)
    source = _source(checkpoint, engine_dir)
    spectral = source.spectral
    audio = synthetic_mixture(seconds, spectral.sample_rate)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    rows: list[BenchRow] = []
    try:
        with tempfile.TemporaryDirectory(prefix="clipsep-bench-") as scratch:
            files = dict(source.files)
            exported = False
            done = set()
            for name, precision in _plans(backends):
                label_precision = precision
                note = ""
                try:
                    # Decide with a stand-in ONNX file first: export only for a backend that can run.
                    choice = choose_backend(name, device, files if "onnx" in files or name == "torch" else {**files, "onnx": "?"})
                    label_precision = choice.precision if precision == "auto" else precision
                    if (name, label_precision) in done:  # torch fp32 when auto is fp32 already
                        continue
                    done.add((name, label_precision))
                    if name != "torch" and "onnx" not in files:
                        log(f"exporting the separator to ONNX in {scratch} for {name}")
                        from ..export.separator_onnx import export_separator_onnx

                        files["onnx"] = str(export_separator_onnx(source.weights().build(), Path(scratch) / "separator.onnx"))
                        exported = True
                    if name != "torch" and exported:
                        note = "ONNX exported to a temporary folder"
                    engine = open_engine(choice, files, source.weights, device, precision, threads=threads)
                except (ClipsepError, RuntimeError, ImportError, OSError) as error:
                    reason = f"cannot run: {describe_exception(error) if not isinstance(error, ClipsepError) else error}"
                    cuda = name == "tensorrt" or device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
                    where = "cuda" if cuda else "cpu"
                    label_precision = "fp16" if name == "tensorrt" else label_precision
                    rows += [_row(name, where, label_precision, preset, options[preset], source, status=reason) for preset in presets]
                    log(f"{name} {label_precision}: {reason}")
                    continue
                where = str(getattr(engine, "execution_device", engine.device)).split(":")[0]
                if choice.provider:
                    note = "; ".join(filter(None, [choice.provider, note]))
                queries = random_queries(engine, source.model_config.query_dim)
                for preset in presets:
                    row = _row(name, where, engine.precision, preset, options[preset], source, note=note)
                    try:
                        fill_timing(row, stream_timed(engine, queries, spectral, options[preset], audio), spectral.sample_rate)
                    except (ClipsepError, RuntimeError) as error:  # e.g. CUDA out of memory
                        row.status = f"failed: {describe_exception(error)}"
                    rows.append(row)
                    log(_progress(row))
                del engine
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
    finally:
        torch.set_num_threads(old_threads)
    return rows


def _row(name: str, device: str, precision: str, preset: str, options: StreamingOptions, source: _Source, **extra) -> BenchRow:
    return BenchRow(name, device, precision, preset, model=source.description,
                    hop_frames=options.hop_frames, lookahead_frames=options.lookahead_frames, **extra)


def _progress(row: BenchRow) -> str:
    if row.status != "ok":
        return f"{row.backend} {row.device} {row.precision} {row.preset}: {row.status}"
    return (
        f"{row.backend} {row.device} {row.precision} {row.preset}: latency {row.latency_ms:.0f} ms, "
        f"compute p50 {row.compute_p50_ms:.1f} / p99 {row.compute_p99_ms:.1f} ms per {row.hop_ms:.0f} ms hop, "
        f"RTF p99 {row.rtf_p99:.2f}"
    )


# -- report -----------------------------------------------------------------------------------


def machine_info(threads: int | None = None) -> dict:
    """CPU model, cores, threads, torch version, GPU (for reports)."""
    cpu = platform.processor() or platform.machine()
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except Exception:  # noqa: BLE001 - not installed or broken: not part of this machine's set-up
        info["onnxruntime"] = None
    return info


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def format_table(rows: list[BenchRow]) -> str:
    """A markdown table of the rows, with the model they ran and how to read them."""
    lines = [f"Model: {model}" for model in dict.fromkeys(row.model for row in rows)]
    lines += [
        "",
        (
            "| backend | device | precision | preset (H+L frames) | latency ms | hop ms | compute p50 ms | p99 ms "
            "| RTF p99 | RTF mean | real time |"
        ),
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        preset = f"{r.preset} ({r.hop_frames}+{r.lookahead_frames})"
        head = f"| {r.backend} | {r.device} | {r.precision} | {preset} | {_cell(r.latency_ms, '.0f')} | {_cell(r.hop_ms, '.0f')} |"
        if r.status != "ok":
            lines.append(f"{head} {r.status} | | | | |")
            continue
        realtime = "yes" if r.realtime else "NO"
        lines.append(
            f"{head} {r.compute_p50_ms:.1f} | {r.compute_p99_ms:.1f} | {r.rtf_p99:.2f} | {r.rtf_mean:.2f} | {realtime} |"
        )
    notes = sorted({f"{r.backend}: {r.note}" for r in rows if r.note})
    lines += [
        "",
        (
            "latency: input-to-output delay of the stream. compute: one network step (every hop). "
            "RTF = compute / hop duration; real time when RTF p99 < 1."
        ),
        *notes,
    ]
    return "\n".join(lines) + "\n"


def rows_to_json(rows: list[BenchRow], machine: dict | None = None) -> dict:
    return {"format": JSON_FORMAT, "machine": machine if machine is not None else machine_info(), "rows": [asdict(r) for r in rows]}


def rows_from_json(data: dict) -> list[BenchRow]:
    known = {f.name for f in fields(BenchRow)}
    return [BenchRow(**{key: value for key, value in row.items() if key in known}) for row in data["rows"]]


__all__ = [
    "BenchRow",
    "StreamRun",
    "format_table",
    "machine_info",
    "rows_from_json",
    "rows_to_json",
    "run_bench",
    "stream_timed",
    "synthetic_mixture",
    "synthetic_sources",
]


def result_stem(kind: str, machine: str, quick: bool) -> str:
    """`kind-<machine>[-quick]` (machine: a GPU name or host name, lower-case, dashes), the
    results file name of a benchmark, so a smoke test never overwrites a full run."""
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9]+", "-", machine).strip("-").lower() + ("-quick" if quick else "")


def write_results(json_path: Path, markdown_path: Path | None, data: dict, report: str) -> None:
    """A benchmark's results as JSON and its markdown report (default: the JSON path with
    .md), both written atomically."""
    markdown_path = markdown_path or json_path.with_suffix(".md")
    for path, text in ((json_path, json.dumps(data, indent=2) + "\n"), (markdown_path, report)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as temp:
            temp.write_text(text)
    print(f"wrote {json_path} and {markdown_path}", file=sys.stderr)
