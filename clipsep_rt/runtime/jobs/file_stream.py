"""A file through the streaming path (`--input FILE --stream`): how streaming is tested and
benchmarked without an audio device.

Written to a file, the output is delay-compensated: aligned with the input and of the same
length, one channel per query, at the model's rate. `realtime` paces the input at the
speed of a live stream and counts the hops that took longer than real time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import iter_audio_blocks
from clipsep_rt.runtime.stream_stats import StreamSummary, write_stats_json
from clipsep_rt.runtime.streaming import LatencyAligner, StreamingSeparator

BLOCK_SAMPLES = 256  # 16 ms: a typical audio-device block


def stream_file(separator: StreamingSeparator, source: Path, destination: Path, realtime: bool = False,
                overwrite: bool = False) -> int:
    """Stream `source` through `separator` into `destination` (WAV, aligned); returns its length."""
    rate = separator.spectral.sample_rate
    aligner = LatencyAligner(separator)
    position = 0  # input samples fed to the separator so far
    started = time.perf_counter()
    with atomic_output(destination, overwrite) as temp, sf.SoundFile(
        temp, "w", samplerate=rate, channels=separator.queries.rows, subtype="FLOAT", format="WAV"
    ) as out:
        for block in iter_audio_blocks(source, BLOCK_SAMPLES, rate, min_samples=separator.spectral.n_fft):
            _write(out, aligner.process(block))
            position += len(block)
            if realtime:
                ahead = position / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
                elif -ahead > BLOCK_SAMPLES / rate:  # more than a block behind the live clock
                    separator.stats.overruns += 1
        for piece in aligner.flush():
            _write(out, piece)
    return position


def _write(out: sf.SoundFile, aligned: np.ndarray) -> None:
    """Append (rows, m) aligned output to the file."""
    if aligned.shape[1]:
        out.write(aligned.T)


def write_stats(separator: StreamingSeparator, path: Path) -> None:
    """The stream's statistics (`StreamSummary`: per-hop timings, latency, overruns) as JSON."""
    write_stats_json(path, StreamSummary.of(separator).to_json())
