"""A file through the streaming path (`--input FILE --stream`): how streaming is tested and
benchmarked without an audio device.

Written to a file, the output is delay-compensated: aligned with the input and of the same
duration, one channel per query. Its rate follows the batch rules: the input's own rate
unless another is asked for; the model works at 16 kHz and its output is resampled
(`io.resample`). `realtime` paces the input at the speed of a live stream; the overruns
(steps slower than real time, `StreamStats.overruns`) are counted the same either way.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.api import LatencyAligner, Stream
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import iter_audio_blocks, probe
from clipsep_rt.io.resample import OutputRateConverter
from clipsep_rt.runtime.stream_stats import write_stats_json

BLOCK_SAMPLES = 256  # 16 ms: a typical audio-device block
NATIVE_BLOCK_SAMPLES = 65536  # decoding block of the input at the output rate


def stream_file(separator: Stream, source: Path, destination: Path, realtime: bool = False,
                overwrite: bool = False, sample_rate: int | None = None) -> int:
    """Stream `source` through `separator` into `destination` (float WAV, aligned) at
    `sample_rate` (None: the input's rate); returns that rate."""
    rate = separator.spectral.sample_rate
    out_rate = sample_rate or probe(source).rate
    native = None if out_rate == rate else iter_audio_blocks(source, NATIVE_BLOCK_SAMPLES, out_rate, min_samples=1)
    converter = OutputRateConverter(rate, out_rate, native)  # (rows, m) at 16 kHz -> at out_rate
    aligner = LatencyAligner(separator)
    position = 0  # input samples fed to the separator so far
    started = time.perf_counter()
    with atomic_output(destination, overwrite) as temp, sf.SoundFile(
        temp, "w", samplerate=out_rate, channels=separator.queries.rows, subtype="FLOAT", format="WAV"
    ) as out:
        for block in iter_audio_blocks(source, BLOCK_SAMPLES, rate, min_samples=separator.spectral.n_fft):
            _write(out, converter, aligner.process(block))
            position += len(block)
            if realtime and (ahead := position / rate - (time.perf_counter() - started)) > 0:
                time.sleep(ahead)
        for piece in aligner.flush():
            _write(out, converter, piece)
        tail = converter.finish()
        if tail is not None:
            out.write(tail[1].T)
    return out_rate


def _write(out: sf.SoundFile, converter: OutputRateConverter, aligned: np.ndarray) -> None:
    """Append (rows, m) aligned model-rate output to the file, at its rate."""
    if aligned.shape[1]:
        _, converted = converter.convert(aligned[0], aligned)  # its mixture slot is not used here
        if converted.shape[1]:
            out.write(converted.T)


def write_stats(separator: Stream, path: Path) -> None:
    """The stream's statistics (`StreamSummary`: per-hop timings, latency, overruns) as JSON."""
    write_stats_json(path, separator.summary().to_json())
