"""Media files for tests: small AAC audio and mpeg4 videos written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_aac(path: Path, samples: np.ndarray, rate: int) -> None:
    """Encode mono float32 `samples` as AAC in the container named by `path` (PyAV)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_video(
    path: Path, audio: np.ndarray | None, audio_rate: int = 44100, frames: int = 12, fps: int = 12
) -> None:
    """A small test video: `frames` frames of 64x48 (mpeg4), plus AAC audio if given ((n,) mono
    or (n, channels))."""
    planar = None if audio is None else np.ascontiguousarray(np.atleast_2d(audio.T), dtype=np.float32)
    layout = None if planar is None else f"{len(planar)}c"  # 1c is mono, 2c stereo
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        if audio is not None:
            sound = out.add_stream("aac", rate=audio_rate, layout=layout)
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 20) % 256, dtype=np.uint8)
            image[: 4 * i % 48, :8] = 255  # something that changes
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = audio_rate, 0, Fraction(1, audio_rate)
            out.mux(sound.encode(frame))
            out.mux(sound.encode(None))


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]
