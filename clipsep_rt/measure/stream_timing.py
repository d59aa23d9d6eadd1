"""`clipsep-rt bench`: streaming latency and real-time margin of each backend on this machine.

For every backend that can run here (torch in its auto precision, torch fp32, onnxruntime,
OpenVINO, TensorRT) and every latency preset, `seconds` of synthetic audio (seeded tones + noise
bursts) are streamed through `StreamingSeparator.process` in 16 ms blocks as fast as
possible - no audio device involved. Each row holds the stream statistics
(`runtime.stream_stats.StreamSummary`) with what ran them around it:

  - latency_ms: the separator's algorithmic latency (input sample -> output sample),
  - per-hop compute p50 / p99 / mean (ms): one network step (STFT, network, masking, iSTFT),
  - rtf_p50 / rtf_p99 / rtf_mean = compute / hop duration,
  - realtime: rtf_p99 < 1 (each hop is computed before the next one is due),
  - overruns: network steps slower than real time (`StreamStats.overruns`),
  - startup_ms: the engine's first network call (it compiles the shape), timed on the warm-up
    separator and kept out of the steps above.

Tables and JSON of the rows are in `bench.results`, the machine's description in `bench.machine`.

Without a checkpoint or engine folder the bundled default model runs; with `random_weights`
the full-size architecture (ngf 64) runs with seeded random weights instead: its timings are
those of a trained full-size model, its audio is not. Each row names the model it timed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model.hardware import check_threads
from clipsep_rt.optional import describe_exception
from clipsep_rt.runtime.engines.contract import SEPARATOR_ONNX
from clipsep_rt.runtime.engines.choice import BACKENDS
from clipsep_rt.runtime.engines.loader import ModelSource, open_bundled_source, open_source
from clipsep_rt.runtime.engines.protocol import Engine, PreparedQueries
from clipsep_rt.runtime.stream_stats import StreamStats, StreamSummary
from clipsep_rt.runtime.streaming import PRESETS, LatencyAligner, StreamingOptions, StreamingSeparator

SEED = 0
BLOCK_S = 0.016  # audio block handed to process(), like a 16 ms audio callback
WARMUP_STEPS = 3  # network steps run (and discarded) before timing: first calls are slow
DEFAULT_BACKENDS = BACKENDS[1:]  # every backend but auto
MAX_SECONDS = 3600  # audio per measurement: an hour is more than any timing needs (and 230 MB of it)


@dataclass
class BenchRow(StreamSummary):
    """One measurement: what ran, and its stream statistics (the `StreamSummary` fields,
    keyword-only; None where it could not run)."""

    backend: str  # torch, onnxruntime, tensorrt
    device: str  # where the network runs: cpu or cuda
    precision: str
    preset: str  # latency preset (runtime.streaming_presets.PRESETS)
    status: str = "ok"  # "ok", or why this backend could not run
    model: str = ""  # what ran: random weights, a checkpoint or an engine folder
    note: str = ""  # e.g. the onnxruntime execution provider, a temporary ONNX export


@dataclass
class StreamRun:
    """One timed stream: its network steps and the output aligned with the input."""

    latency_samples: int
    hop_samples: int
    stats: StreamStats  # the timed steps (warm-up and flush excluded) and the start-up call
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
    aligner = LatencyAligner(separator)
    pieces = [aligner.process(piece) for piece in _blocks(audio, block)]
    # the steps before the flush (not timed); start-up: the warm-up separator's first call
    timed = StreamStats(separator.stats.hop_s, list(separator.stats.steps), startup_s=warm.stats.startup_s)
    output = np.concatenate([*pieces, *aligner.flush()], axis=1)
    return StreamRun(separator.latency_samples, separator.hop_samples, timed, output)


def fill_timing(row: BenchRow, run: StreamRun, sample_rate: int) -> BenchRow:
    """The row's stream statistics from a timed run (a run without a network step says so)."""
    row.measure(run.stats, latency_samples=run.latency_samples, hop_samples=run.hop_samples, sample_rate=sample_rate)
    if not row.steps:
        row.status = "no network step ran: stream more seconds of audio"
    return row


# -- what to run --------------------------------------------------------------------------------


def _source(checkpoint: Path | None, engine_dir: Path | None, random_weights: bool) -> ModelSource:
    """The checkpoint and/or engine folder, or the full-size model with seeded random weights,
    else the bundled default model."""
    if random_weights and (checkpoint is not None or engine_dir is not None):
        raise OptionError("random_weights", "times the full-size random-weight model: give no checkpoint or engine folder with it")
    if checkpoint is not None or engine_dir is not None:
        return open_source(checkpoint, engine_dir)
    if not random_weights:
        source = open_bundled_source()  # with its ONNX graph for onnxruntime and openvino
        source.description = f"the bundled default model (ngf {source.model_config.ngf}, {Path(source.name).name})"
        return source
    from clipsep_rt.model.checkpoint import checkpoint_from_model
    from clipsep_rt.model.separator import CLIPSepSeparator

    torch.manual_seed(SEED)
    random = checkpoint_from_model(CLIPSepSeparator(ModelConfig()), query_encoder=None)
    config = random.model_config
    description = (
        f"full-size CLIPSep-NIT (depth {config.depth}, ngf {config.ngf}) with random weights (seed {SEED}): "
        "timings only"
    )
    return ModelSource("random weights", description, config, SpectralConfig(), None, {}, lambda: random)


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
    random_weights: bool = False,
) -> list[BenchRow]:
    """One BenchRow per (backend variant, preset); a variant that cannot run gets rows with the reason.

    backends: any of torch, onnxruntime, openvino, tensorrt (default: all). presets: names from
    runtime.streaming.PRESETS (default: all). threads: the backends' CPU threads.
    With neither checkpoint nor engine_dir: the bundled default model, or with `random_weights`
    the full-size architecture with seeded random weights.
    `log` gets one progress line per measurement.
    """
    from clipsep_rt.runtime.engines.choice import choose_backend
    from clipsep_rt.runtime.engines.loader import open_engine

    backends = list(backends or DEFAULT_BACKENDS)
    presets = list(presets or PRESETS)
    for name in backends:
        if name not in DEFAULT_BACKENDS:
            raise OptionError("backends", f"{name!r} is not one of {', '.join(DEFAULT_BACKENDS)}")
    options = {name: StreamingOptions.preset(name) for name in presets}  # ClipsepError for an unknown preset
    if not 0 < seconds <= MAX_SECONDS:
        raise OptionError("seconds", f"must be more than 0 and at most {MAX_SECONDS} (audio streamed per measurement), got {seconds:g}")
    check_threads(threads)
    log = log or (lambda line: None)
    source = _source(checkpoint, engine_dir, random_weights)
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
                        from clipsep_rt.export.separator_onnx import export_separator_onnx

                        files["onnx"] = str(export_separator_onnx(source.weights().build(), Path(scratch) / SEPARATOR_ONNX))
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
                where = engine.device.split(":")[0]
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


def _row(name: str, device: str, precision: str, preset: str, options: StreamingOptions, source: ModelSource, **extra) -> BenchRow:
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
