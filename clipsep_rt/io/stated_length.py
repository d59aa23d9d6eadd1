"""The frame count a file's header states, to tell a file that was cut short.

libsndfile reads the frames a WAV file holds and quietly lowers its frame count when the
header promised more (a copy or a download that stopped early), so the WAV header's own
figure is read here: the `data` chunk's size over the `fmt ` chunk's block size. FLAC's
STREAMINFO total is exact, and libsndfile keeps it. Other formats' counts are estimates
(MP3) or taken from what is there (Ogg): none is stated for them.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import soundfile as sf

_UNSTATED_SIZES = (0, 0xFFFFFFFF)  # what writers that do not know the length yet leave (streams, RF64)
_MAX_CHUNKS = 64  # a header walk stops here: real files have a handful of chunks before `data`


def stated_frames(path: Path, sound_file: sf.SoundFile) -> int | None:
    """The frames the header of `path` (open as `sound_file`) promises, where it states an exact count."""
    if sound_file.format in ("WAV", "WAVEX"):
        return wav_stated_frames(path)
    if sound_file.format == "FLAC" and 0 < sound_file.frames < 1 << 62:  # 0 or huge: not stated
        return sound_file.frames
    return None


def wav_stated_frames(path: Path) -> int | None:
    """The frames the header of a RIFF/RIFX WAVE file says its `data` chunk holds; None for
    another kind of file, a header that states no length, or one that cannot be walked."""
    with open(path, "rb") as file:
        head = file.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        block_align = 0
        for _ in range(_MAX_CHUNKS):
            chunk = file.read(8)
            if len(chunk) < 8:
                return None
            kind, (size,) = chunk[:4], struct.unpack(f"{order}I", chunk[4:])
            if kind == b"data":
                return size // block_align if block_align and size not in _UNSTATED_SIZES else None
            if kind == b"fmt ":
                fmt = file.read(size)
                if len(fmt) < 14:
                    return None
                (block_align,) = struct.unpack(f"{order}H", fmt[12:14])
                file.seek(size & 1, os.SEEK_CUR)  # chunks are word-aligned
            else:
                file.seek(size + (size & 1), os.SEEK_CUR)
    return None
