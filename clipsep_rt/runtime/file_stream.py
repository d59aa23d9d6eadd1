"""A file through the streaming path (`--input FILE --stream`): how streaming is tested and
benchmarked without an audio device.

Written to a file, the output is delay-compensated: aligned with the input and of the same
length, one channel per query, at the model's rate. `realtime` paces the input at the
speed of a live stream and counts the hops that took longer than real time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..fileio import atomic_output
from .audio_io import iter_audio_blocks
from .streaming import StreamingSeparator

BLOCK_SAMPLES = 256  # 16 ms: a typical audio-device block


def stream_file(separator: StreamingSeparator, source: Path, destination: Path, realtime: bool = False,
                overwrite: bool = False) -> int:
    """Stream `source` through `separator` into `destination` (WAV, aligned); returns its length."""
    rate, delay = separator.spectral.sample_rate, separator.latency_samples
    position = 0  # samples fed to the separator so far (input, then the flushing silence)
    started = time.perf_counter()
    with atomic_output(destination, overwrite) as temp, sf.SoundFile(
        temp, "w", samplerate=rate, channels=separator.queries.rows, subtype="FLOAT", format="WAV"
    ) as out:
        for block in iter_audio_blocks(source, BLOCK_SAMPLES, rate, min_samples=separator.spectral.n_fft):
            _write_aligned(out, separator.process(block), position, delay)
            position += len(block)
            if realtime:
                ahead = position / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
                elif -ahead > BLOCK_SAMPLES / rate:  # more than a block behind the live clock
                    separator.stats.overruns += 1
        length = position
        _write_aligned(out, separator.process(np.zeros(delay, dtype=np.float32)), position, delay, limit=length)
    return length


def _write_aligned(out: sf.SoundFile, output: np.ndarray, position: int, delay: int, limit: int | None = None) -> None:
    """Write the part of a (rows, m) output block that belongs in the aligned file.

    Column i is input sample `position + i - delay`: columns before input sample 0, and
    from input sample `limit` on, are left out."""
    start = max(0, delay - position)
    stop = output.shape[1] if limit is None else min(output.shape[1], limit + delay - position)
    if stop > start:
        out.write(output[:, start:stop].T)


def write_stats(separator: StreamingSeparator, path: Path) -> None:
    """Per-hop timings and the stream's latency and overruns, as JSON (atomically)."""
    hop_s = separator.options.hop_frames * separator.spectral.hop_length / separator.spectral.sample_rate
    compute = [step.compute_s for step in separator.stats.steps]
    summary = {
        "latency_ms": separator.latency_ms,
        "hop_frames": separator.options.hop_frames,
        "lookahead_frames": separator.options.lookahead_frames,
        "hop_ms": 1000 * hop_s,
        "compute_p50_ms": separator.stats.percentile_ms(50),
        "compute_p99_ms": separator.stats.percentile_ms(99),
        "real_time_factor_p99": separator.stats.percentile_ms(99) / (1000 * hop_s),
        "real_time_factor_mean": float(np.mean(compute)) / hop_s if compute else 0.0,
        "overruns": separator.stats.overruns,
        "steps": [{"stream_time_s": s.stream_time_s, "compute_ms": 1000 * s.compute_s} for s in separator.stats.steps],
    }
    with atomic_output(path, overwrite=True) as temp:
        Path(temp).write_text(json.dumps(summary, indent=1) + "\n")
