"""A file through the streaming path (`--input FILE --stream`): how streaming is tested and
benchmarked without an audio device.

Written to a file, the output is delay-compensated: aligned with the input and of the same
duration. Its channels follow the batch rules too: a separator made with the input's channel
count (`channels_of`) keeps them, so a stereo input gives a stereo selection; a mono
separator downmixes first. The file holds each query's channels in turn: query 1's C
channels, then query 2's (one channel per query for mono). Its rate: the input's own unless
another is asked for; the model works at 16 kHz and its output is resampled
(`io.resample`). `realtime` paces the input at the speed of a live stream; the overruns
(steps slower than real time, `StreamStats.overruns`) are counted the same either way, and
the stream's first network call (a shape's compile: `StreamingSeparator.warm_up`) is made
before the clock starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipsep_rt.api import LatencyAligner, Stream
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.audio_writer import AudioWriter
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import iter_audio_blocks, probe
from clipsep_rt.io.resample import OutputRateConverter
from clipsep_rt.runtime.stream_stats import write_stats_json

BLOCK_SAMPLES = 256  # 16 ms: a typical audio-device block
NATIVE_BLOCK_SAMPLES = 65536  # decoding block of the input at the output rate


def channels_of(source: Path) -> int | None:
    """The channel count to stream `source` with, as batch separation keeps it: None (mono
    blocks) for a mono file, else its channels."""
    channels = probe(source).channels
    return channels if channels > 1 else None


def stream_file(separator: Stream, source: Path, destination: Path, realtime: bool = False,
                overwrite: bool = False, sample_rate: int | None = None,
                on_warning: Callable[[str], None] | None = None) -> int:
    """Stream `source` through `separator` into `destination` (float WAV, aligned) at
    `sample_rate` (None: the input's rate); returns that rate. A separator with `channels`
    (see `channels_of`) keeps the file's channels; a mono one downmixes. `on_warning` hears
    what the decoder warns of (an input that ends before its header says), once."""
    rate = separator.spectral.sample_rate
    info = probe(source)
    mono = separator.channels is None
    if not mono and info.channels != separator.channels:
        raise ClipsepError(f"{source}: has {info.channels} channel(s), the stream was made for {separator.channels}")
    out_rate = sample_rate or info.rate
    native = None if out_rate == rate else iter_audio_blocks(
        source, NATIVE_BLOCK_SAMPLES, out_rate, min_samples=1, mono=mono, on_warning=lambda message: None)  # one warning
    converter = OutputRateConverter(rate, out_rate, native)  # (rows, m[, C]) at 16 kHz -> at out_rate
    aligner = LatencyAligner(separator)
    position = 0  # input samples fed to the separator so far
    separator.warm_up()  # the first network call compiles: before the clock starts, timed apart
    started = time.perf_counter()
    with atomic_output(destination, overwrite) as temp, AudioWriter(
        temp, out_rate, separator.queries.rows * (separator.channels or 1), "FLOAT", "WAV", shown_as=destination,
    ) as out:
        for block in iter_audio_blocks(source, BLOCK_SAMPLES, rate, min_samples=separator.spectral.n_fft, mono=mono,
                                       on_warning=on_warning):
            _write(out, converter, aligner.process(block))
            position += len(block)
            if realtime and (ahead := position / rate - (time.perf_counter() - started)) > 0:
                time.sleep(ahead)
        for piece in aligner.flush():
            _write(out, converter, piece)
        tail = converter.finish()
        if tail is not None:
            out.write(_frames(tail[1]))
    return out_rate


def _write(out: AudioWriter, converter: OutputRateConverter, aligned: np.ndarray) -> None:
    """Append (rows, m[, C]) aligned model-rate output to the file, at its rate."""
    if aligned.shape[1]:
        _, converted = converter.convert(aligned[0], aligned)  # its mixture slot is not used here
        if converted.shape[1]:
            out.write(_frames(converted))


def _frames(outputs: np.ndarray) -> np.ndarray:
    """(rows, k[, C]) -> the file's (k, rows x C) frames: each query's channels in turn."""
    return np.moveaxis(outputs, 1, 0).reshape(outputs.shape[1], -1)


def write_stats(separator: Stream, path: Path) -> None:
    """The stream's statistics (`StreamSummary`: per-hop timings, latency, overruns) and its
    queries' presence per second (`dsp.presence`) as JSON."""
    write_stats_json(path, {**separator.summary().to_json(), "presence": separator.presence_json()})
