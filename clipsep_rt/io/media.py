"""Audio and video input/output for batch separation.

Reading: soundfile (libsndfile: wav, flac, ogg, mp3, aiff, ...) is tried first; whatever it
cannot open (m4a/aac, opus in non-Ogg containers, the audio track of video files) is decoded
with PyAV (the `video` extra, imported only then). Either way the audio is checked for NaN/Inf, downmixed to mono by averaging channels
(unless `mono=False`: then every channel is kept, shape (n, channels)) and resampled with soxr,
through one shared block pipeline, so `load_audio` (whole file) and `iter_audio_blocks`
(bounded memory) give the same samples.

Writing: every output is written to a hidden temporary file beside its destination and moved
into place with `os.replace`, so a failed or interrupted write never leaves a partial file;
audio goes through `audio_writer.AudioWriter` (NaN/Inf refused, OS errors in words).

All bad input is reported as a `ClipsepError` whose one-line message names the file (what
libsndfile's MP3 decoder prints while it probes a file is kept off stderr). A file that
decodes to fewer frames than its header states (a WAV or FLAC cut short) is read as far
as it goes, with a warning naming it (`on_warning`).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES
from clipsep_rt.io.audio_writer import AudioWriter
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.native_stderr import native_stderr_silenced
from clipsep_rt.io.resample import RESAMPLE_QUALITY, one_sample
from clipsep_rt.io.stated_length import stated_frames
from clipsep_rt.optional import import_optional

if TYPE_CHECKING:
    import av

logger = logging.getLogger(__name__)
Warn = Callable[[str], None]  # takes a warning's one line (naming the file)

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi"})
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

_DECODE_FRAMES = 1 << 16  # source frames per decoded block
_ENCODE_FRAMES = 1 << 14  # samples per AudioFrame handed to the video's audio encoder
# Audio encoders for video outputs, best first; the first one the container accepts is used.
_VIDEO_AUDIO_CODECS = ("aac", "libopus", "libmp3lame", "flac")


@dataclass(frozen=True)
class LoadedAudio:
    """A decoded input file: float32 `samples` at `sample_rate` Hz, (n,) mono or (n, channels)."""

    samples: np.ndarray
    sample_rate: int  # the rate `samples` were resampled to
    source_rate: int  # the file's own sample rate
    source_channels: int  # the file's channels (before any downmix to mono)
    duration_s: float  # len(samples) / sample_rate
    path: Path
    is_video: bool  # the audio came from a file that also holds a video stream


@dataclass(frozen=True)
class SourceInfo:
    """What a media file's audio is before decoding (and resampling, and any downmix)."""

    rate: int
    channels: int
    is_video: bool
    duration_s: float | None  # from the header, when it states one
    stated_frames: int | None = None  # frames the header promises, where it is trusted to (WAV, FLAC)


# ---------------------------------------------------------------------------- reading


def load_audio(
    path: str | os.PathLike, sample_rate: int = 16000, min_samples: int = 1024, mono: bool = True,
    on_warning: Warn | None = None,
) -> LoadedAudio:
    """Decode a whole audio or video file to float32 samples at `sample_rate`: shape (n,)
    downmixed to mono, or with `mono=False` shape (n, channels), every channel kept.

    Raises ClipsepError (naming the file) when the file is missing, a directory, unreadable,
    not decodable audio, a video without an audio stream, empty, shorter than `min_samples`
    samples after resampling, or holds NaN/Inf samples. Silent audio is returned as is; a
    file that ends before its header says is returned as far as it goes, and `on_warning`
    (default: this module's logger) gets a line saying so. A non-empty file too short for
    one sample at `sample_rate` gives one.
    """
    path = Path(path)
    with _open_source(path) as (info, blocks):
        chunks = list(_resampled(path, info, blocks, sample_rate, min_samples, mono, on_warning or logger.warning))
    samples = np.concatenate([_no_samples(info, mono), *chunks])
    return LoadedAudio(
        samples=samples,
        sample_rate=sample_rate,
        source_rate=info.rate,
        source_channels=info.channels,
        duration_s=len(samples) / sample_rate,
        path=path,
        is_video=info.is_video,
    )


def iter_audio_blocks(
    path: str | os.PathLike, block_samples: int, sample_rate: int = 16000, min_samples: int = 1024,
    mono: bool = True, on_warning: Warn | None = None,
) -> Iterator[np.ndarray]:
    """Yield float32 blocks of `block_samples` samples at `sample_rate`; the last may be shorter.

    Blocks are (block_samples,) downmixed to mono, or with `mono=False` (block_samples,
    channels) with the file's channels (`probe(path).channels`).

    Memory stays bounded by a decode block plus `block_samples`, whatever the file's length.
    Validation is that of `load_audio`, raised lazily: open/decode errors on the first
    `next()`, NaN/Inf when the offending block is reached, empty/too short at the end (after
    any blocks were yielded, if `block_samples` < `min_samples`); a file that ends early is
    reported to `on_warning` at its end.
    """
    if block_samples < 1:
        raise ValueError(f"block_samples must be positive, got {block_samples}")
    path = Path(path)
    with _open_source(path) as (info, blocks):
        buffer = _no_samples(info, mono)
        for chunk in _resampled(path, info, blocks, sample_rate, min_samples, mono, on_warning or logger.warning):
            buffer = np.concatenate([buffer, chunk])
            full = len(buffer) - len(buffer) % block_samples
            for start in range(0, full, block_samples):
                yield buffer[start : start + block_samples]
            buffer = buffer[full:]
        if len(buffer):
            yield buffer


def probe(path: str | os.PathLike) -> SourceInfo:
    """The file's audio format and duration (decodes at most one block); ClipsepError if unreadable."""
    with _open_source(Path(path)) as (info, _):
        return info


@contextmanager
def _open_source(path: Path) -> Iterator[tuple[SourceInfo, Iterator[np.ndarray]]]:
    """Open `path` and yield its info and native-rate float32 blocks of shape (frames, channels)."""
    _check_readable(path)
    try:
        with native_stderr_silenced():
            sound_file = sf.SoundFile(path)
    except sf.LibsndfileError:
        sound_file = None  # not a libsndfile format: fall back to PyAV
    if sound_file is not None:
        with sound_file:
            duration = sound_file.frames / sound_file.samplerate if sound_file.frames > 0 else None
            info = SourceInfo(sound_file.samplerate, sound_file.channels, is_video=False, duration_s=duration,
                              stated_frames=stated_frames(path, sound_file))
            yield info, _soundfile_blocks(path, sound_file)
        return
    with _open_container(path) as container:
        yield _pyav_source(path, container)


@functools.cache
def _pyav():
    """PyAV (the `video` extra), imported on first use: WAV, FLAC, Ogg and MP3 go through libsndfile."""
    return import_optional("av", "video")


def _open_container(path: Path) -> av.container.InputContainer:
    """PyAV's reader of `path`, or a ClipsepError naming the file."""
    if importlib.util.find_spec("av") is None:
        raise ClipsepError(f"{path}: libsndfile cannot read it, and PyAV, which decodes compressed audio (m4a, aac, "
                           "opus) and video, is not installed: pip install 'clipsep-rt[video]'")
    try:
        return _pyav().open(str(path))
    except (_pyav().error.FFmpegError, OSError) as exc:
        raise _undecodable(path, exc) from exc


def _check_readable(path: Path) -> None:
    """Turn a missing, directory, permission-denied or zero-byte path into a ClipsepError."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise ClipsepError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ClipsepError(f"{path}: is a directory, not an audio or video file") from None
    except PermissionError:
        raise ClipsepError(f"{path}: permission denied, cannot read the file") from None
    except OSError as exc:
        raise ClipsepError(f"{path}: cannot open the file ({exc.strerror or exc})") from None
    if size == 0:
        raise ClipsepError(f"{path}: file is empty (0 bytes)")


def _soundfile_blocks(path: Path, sound_file: sf.SoundFile) -> Iterator[np.ndarray]:
    """The frames libsndfile decodes, as many as there are: not `SoundFile.blocks`, which yields
    as many as the header counts, repeating its last block's buffer where the file ends early
    (an MP3 cut short)."""
    while True:
        try:
            block = sound_file.read(_DECODE_FRAMES, dtype="float32", always_2d=True)
        except sf.LibsndfileError as exc:
            raise _undecodable(path, exc) from exc
        if not len(block):
            return
        yield block


def _pyav_source(
    path: Path, container: av.container.InputContainer
) -> tuple[SourceInfo, Iterator[np.ndarray]]:
    if not container.streams.audio:
        if _has_video(container):
            raise ClipsepError(f"{path}: video file has no audio stream")
        raise ClipsepError(f"{path}: not a readable audio or video file (no audio stream found)")
    frames = _pyav_frames(path, container, container.streams.audio[0])
    first = next(frames, None)  # the decoded frames, not the header, tell the true rate/layout
    if first is None and not container.streams.audio[0].codec_context.sample_rate:  # FFmpeg guessed from noise
        raise ClipsepError(f"{path}: not a readable audio or video file (no audio could be decoded)")
    if first is None:
        raise _empty(path)
    duration = container.duration / _pyav().time_base if container.duration else None
    info = SourceInfo(first.sample_rate, first.layout.nb_channels, _has_video(container), duration)
    # 'fltp' frames are (channels, frames); transpose to the (frames, channels) of soundfile.
    return info, (frame.to_ndarray().T for frame in chain([first], frames))


def _pyav_frames(
    path: Path, container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream` converted to planar float32 ('fltp', values in [-1, 1])."""
    to_float = _pyav().AudioResampler(format="fltp")  # sample format only: rate and layout kept
    try:
        for frame in container.decode(stream):
            yield from to_float.resample(frame)
        yield from to_float.resample(None)
    except (_pyav().error.FFmpegError, ValueError) as exc:
        raise _undecodable(path, exc) from exc


def _has_video(container: av.container.Container) -> bool:
    return bool(_video_streams(container))


def _video_streams(container: av.container.Container) -> list[av.stream.Stream]:
    """The container's video streams, less cover art (an mp3/m4a picture is not a video)."""
    attached_pic = _pyav().stream.Disposition.attached_pic
    return [stream for stream in container.streams.video if not stream.disposition & attached_pic]


def _no_samples(info: SourceInfo, mono: bool) -> np.ndarray:
    """An empty float32 array of the decoded layout: (0,) mono, else (0, channels)."""
    return np.zeros(0 if mono else (0, info.channels), dtype=np.float32)


def _resampled(
    path: Path, info: SourceInfo, blocks: Iterable[np.ndarray], sample_rate: int, min_samples: int, mono: bool,
    warn: Warn,
) -> Iterator[np.ndarray]:
    """Validate, downmix (if `mono`) and resample native (frames, channels) blocks to float32
    (k,) chunks, or (k, channels) ones without the downmix.

    Raises ClipsepError on NaN/Inf samples, on a change of the channel count mid-stream (when
    channels are kept), and at the end if the audio is empty or too short. Audio too short
    for one sample at `sample_rate` (soxr rounds its length to none) gives one. At the end,
    `warn` hears of a file that held fewer frames than its header states.
    """
    channels = 1 if mono else info.channels
    resampler = soxr.ResampleStream(info.rate, sample_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
    head_frames = math.ceil(info.rate / sample_rate)  # more source frames always give a sample
    head = _no_samples(info, mono)  # the first head_frames source frames
    source_frames = 0
    total = 0
    for block in blocks:
        if not np.isfinite(block).all():
            raise ClipsepError(f"{path}: audio contains NaN or infinite sample values")
        if not mono and block.shape[1] != channels:
            raise ClipsepError(
                f"{path}: the channel count changes from {channels} to {block.shape[1]} "
                f"{source_frames / info.rate:.2f} s in; separate it downmixed to mono instead"
            )
        source_frames += len(block)
        frames = block.mean(axis=1, dtype=np.float32) if mono else np.ascontiguousarray(block)
        if len(head) < head_frames:
            head = np.concatenate([head, frames[: head_frames - len(head)]])
        chunk = resampler.resample_chunk(frames)
        total += len(chunk)
        if len(chunk):
            yield chunk
    chunk = resampler.resample_chunk(_no_samples(info, mono), last=True)
    if total + len(chunk) == 0 and source_frames:
        chunk = one_sample(head, info.rate, sample_rate)
    total += len(chunk)
    if len(chunk):
        yield chunk
    if source_frames == 0:
        raise _empty(path)
    if total < min_samples:
        raise ClipsepError(
            f"{path}: audio is too short ({1000 * total / sample_rate:.1f} ms); "
            f"the minimum is {1000 * min_samples / sample_rate:.1f} ms "
            f"({min_samples} samples at {sample_rate} Hz)"
        )
    if info.stated_frames is not None and source_frames < info.stated_frames:
        warn(f"{path}: ends early: header says {info.stated_frames:,} frames, {source_frames:,} decoded "
             f"({source_frames / info.rate:.2f} s of {info.stated_frames / info.rate:.2f} s); "
             "read as far as it goes")


def _empty(path: Path) -> ClipsepError:
    return ClipsepError(f"{path}: contains no audio samples")


def _undecodable(path: Path, exc: Exception) -> ClipsepError:
    return ClipsepError(f"{path}: not a readable audio or video file ({_reason(exc)})")


def _reason(exc: Exception) -> str:
    """One line explaining a soundfile/PyAV error: FFmpeg's own log message when it gave one."""
    log = getattr(exc, "log", None)  # PyAV: (level, component, message) of FFmpeg's last error
    reason = (log[2] if log else None) or getattr(exc, "strerror", None) or str(exc)
    return " ".join(reason.split())


# ---------------------------------------------------------------------------- writing


def write_audio_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    overwrite: bool = False,
) -> None:
    """Atomically write `samples` (shape (n,) or (n, channels), values nominally in [-1, 1]).

    The format follows the extension (.wav or .flac). `subtype` defaults to 'FLOAT' for WAV,
    so separated audio that overshoots [-1, 1] is kept, not clipped; and to 'PCM_24' for
    FLAC, which has no float subtype. Integer subtypes get the samples clipped to [-1, 1].
    """
    path = Path(path)
    extension = path.suffix.lower()
    if extension not in AUDIO_OUTPUT_SUBTYPES:
        raise ClipsepError(f"{path}: unsupported output audio format, use a .wav or .flac name")
    frames = _as_frames(samples)
    subtype = subtype or AUDIO_OUTPUT_SUBTYPES[extension]
    with atomic_output(path, overwrite) as temp:
        with AudioWriter(temp, sample_rate, frames.shape[1], subtype, extension[1:], shown_as=path) as writer:
            writer.write(frames)


def write_video_with_audio_atomic(
    video_in: str | os.PathLike,
    out_path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    overwrite: bool = False,
) -> None:
    """Atomically write a copy of `video_in` whose audio is replaced by `samples`.

    Video streams are copied packet by packet (no re-encoding); the input's audio, subtitle
    and data streams are dropped; `samples` (shape (n,) or (n, channels)) become the only
    audio stream, encoded with the first of AAC, Opus, MP3, FLAC that the output container
    (chosen by `out_path`'s extension) accepts: AAC for mp4/mov/mkv/avi, Opus for webm. The
    new audio starts where the input's first audio stream started (else at 0).
    """
    video_in, out_path = Path(video_in), Path(out_path)
    frames = _as_frames(samples)
    if not np.isfinite(frames).all():
        raise ClipsepError(f"{out_path}: refusing to write NaN or infinite samples")
    _check_readable(video_in)
    with _open_container(video_in) as source:
        video_streams = _video_streams(source)
        if not video_streams:
            raise ClipsepError(f"{video_in}: has no video stream to copy")
        audio_start = _audio_start_seconds(source)
        try:
            with atomic_output(out_path, overwrite) as temp, _pyav().open(str(temp), "w") as output:
                copies = {s.index: _copy_stream(output, s, video_in, out_path) for s in video_streams}
                audio = _add_audio_stream(output, out_path, sample_rate, frames.shape[1])
                rate = audio.codec_context.sample_rate
                if rate != sample_rate:  # e.g. Opus takes only 8/12/16/24/48 kHz
                    frames = soxr.resample(frames, sample_rate, rate, quality=RESAMPLE_QUALITY)
                audio_packets = _encode_audio(audio, frames, rate, round(audio_start * rate))
                _interleave(output, source.demux(video_streams), copies, audio_packets)
        except _pyav().error.FFmpegError as exc:
            hint = ""
            if out_path.suffix.lower() != video_in.suffix.lower():
                hint = f"; try the input's extension {video_in.suffix}"
            raise ClipsepError(f"{out_path}: cannot remux {video_in} into it ({_reason(exc)}){hint}") from exc


def _as_frames(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) samples as a C-contiguous float32 (n, channels) array."""
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"samples must have shape (n,) or (n, channels), got {np.shape(samples)}")
    return np.ascontiguousarray(array)


def _audio_start_seconds(container: av.container.InputContainer) -> float:
    if not container.streams.audio:
        return 0.0
    stream = container.streams.audio[0]
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return max(0.0, float(stream.start_time * stream.time_base))


def _copy_stream(
    output: av.container.OutputContainer, stream: av.stream.Stream, video_in: Path, out_path: Path
) -> av.stream.Stream:
    """An output stream that takes `stream`'s packets as they are (opaque: no encoder needed)."""
    try:
        return output.add_stream_from_template(stream, opaque=True)
    except ValueError as exc:
        raise ClipsepError(
            f"{out_path}: the {output.format.name} format cannot hold the {stream.codec_context.name} "
            f"video of {video_in}; use another output extension"
        ) from exc


def _add_audio_stream(
    output: av.container.OutputContainer, out_path: Path, sample_rate: int, channels: int
) -> av.AudioStream:
    """A new audio stream with the best available encoder the container accepts, at the nearest
    rate at or above `sample_rate` that the encoder supports."""
    supported = output.supported_codecs
    for name in _VIDEO_AUDIO_CODECS:
        if name not in supported:
            continue
        try:
            rates = _pyav().Codec(name, "w").audio_rates
        except _pyav().codec.codec.UnknownCodecError:  # not built into this FFmpeg
            continue
        rate = sample_rate
        if rates and sample_rate not in rates:
            rate = min((r for r in rates if r >= sample_rate), default=max(rates))
        return output.add_stream(name, rate=rate, layout=f"{channels}c")
    raise ClipsepError(
        f"{out_path}: the {output.format.name} format accepts none of the audio codecs "
        f"{', '.join(_VIDEO_AUDIO_CODECS)}"
    )


def _encode_audio(
    stream: av.AudioStream, frames: np.ndarray, rate: int, start_pts: int
) -> Iterator[av.Packet]:
    """Encoded packets of (n, channels) float32 `frames`; PyAV re-chunks to the codec's frame size."""
    layout = stream.codec_context.layout.name
    for start in range(0, len(frames), _ENCODE_FRAMES):
        planar = np.ascontiguousarray(frames[start : start + _ENCODE_FRAMES].T)
        frame = _pyav().AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = start_pts + start
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _interleave(
    output: av.container.OutputContainer,
    video_packets: Iterable[av.Packet],
    copies: dict[int, av.stream.Stream],
    audio_packets: Iterator[av.Packet],
) -> None:
    """Mux copied video packets and new audio packets in (roughly) decoding-time order."""
    pending = next(audio_packets, None)
    for packet in video_packets:
        if packet.dts is None:  # demux's flush packets carry no data
            continue
        video_time = packet.dts * packet.time_base
        while pending is not None and pending.dts * pending.time_base <= video_time:
            output.mux(pending)
            pending = next(audio_packets, None)
        packet.stream = copies[packet.stream.index]
        output.mux(packet)
    if pending is not None:
        output.mux(pending)
    output.mux(audio_packets)
