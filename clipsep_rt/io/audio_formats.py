"""The audio file formats outputs are written in, by file extension.

Float WAV never clips separated audio (which may overshoot [-1, 1]); FLAC has no float
subtype, so 24-bit PCM, clipped to [-1, 1], is the most faithful choice there. Shared by
every writer (whole files, batch tracks, live recordings) so they all agree.
"""

from __future__ import annotations

AUDIO_OUTPUT_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24"}  # extension -> soundfile subtype
