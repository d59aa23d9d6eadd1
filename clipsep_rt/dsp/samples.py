"""Audio arrays handed in by callers of the Python API, checked and made float32 samples.

Float arrays are taken as they are (cast to float32; nominally in [-1, 1]). Integer PCM is
scaled as soundfile reads it from a file, by its type's full scale: int8 / 2**7, int16 /
2**15, int32 / 2**31, and unsigned 8-bit (WAV's 8-bit PCM) centred on 128 first. Every
other dtype is refused (int64 included: numpy's type for a list of Python ints, whose scale
nobody means), and so are NaN and infinite samples. A refusal is an `OptionError` naming
the parameter, as is a sample rate that is not a sane positive number of Hz.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from clipsep_rt.errors import OptionError

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000  # Hz, what an input array's rate may be
_FULL_SCALE = {np.dtype(np.int8): 2**7, np.dtype(np.int16): 2**15, np.dtype(np.int32): 2**31}


def float_samples(audio: np.ndarray, name: str) -> np.ndarray:
    """`audio` (any shape) as float32 samples: floats cast, integer PCM scaled to [-1, 1)."""
    array = np.asarray(audio)
    if array.dtype.kind == "f":
        samples = array.astype(np.float32, copy=False)
    elif array.dtype in _FULL_SCALE:
        samples = array.astype(np.float32) / np.float32(_FULL_SCALE[array.dtype])
    elif array.dtype == np.uint8:
        samples = (array.astype(np.float32) - 128) / np.float32(128)
    else:
        raise OptionError(name, f"takes float samples (nominally in [-1, 1]) or int8, int16, int32 or uint8 PCM, "
                                f"got dtype {array.dtype}")
    finite = np.isfinite(samples)
    if not finite.all():
        raise OptionError(name, f"holds {samples.size - int(np.count_nonzero(finite))} NaN or infinite sample values; "
                                "replace them (np.nan_to_num) or cut them out")
    return samples


def check_sample_rate(sample_rate: float, name: str = "sample_rate") -> None:
    """OptionError unless `sample_rate` is a finite number of Hz in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]."""
    if (isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, numbers.Real)
            or not math.isfinite(sample_rate) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE):
        raise OptionError(name, f"must be the audio's rate in Hz, {MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,}, "
                                f"got {sample_rate!r}")
