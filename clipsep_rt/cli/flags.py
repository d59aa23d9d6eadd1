"""Library parameter names -> the command-line flags that set them, for error messages.

The library raises `OptionError(option, reason)` with its own parameter name ("hop_frames");
the user typed a flag (`--hop-frames`), so that is what the error line names.
"""

from __future__ import annotations

from clipsep_rt.errors import ClipsepError, OptionError

OPTION_FLAGS = {
    "address": "--ray",
    "audio_format": "--format",
    "backend": "--backend",
    "backends": "--backend",
    "batch_windows": "--batch-size",
    "buffer_ms": "--buffer-ms",
    "calibration": "--calibration",
    "count": "--count",
    "cpus_per_worker": "--ray-cpus-per-worker",
    "device": "--device",
    "gpus_per_worker": "--ray-gpus-per-worker",
    "hop_frames": "--hop-frames",
    "lookahead_frames": "--lookahead-frames",
    "mask": "--mask",
    "max_retries": "--ray-retries",
    "opset": "--opset",
    "output_file": "-o/--output",
    "overlap_frames": "--overlap",
    "overwrite": "--overwrite",
    "precision": "--precision",
    "random_weights": "--random-weights",
    "sample_rate": "--sample-rate",
    "seconds": "--seconds",
    "seed": "--seed",
    "tensorrt": "--tensorrt",
    "text_encoder": "--no-text-encoder",
    "text_encoder_fp32": "--no-fp32-text-encoder",
    "threads": "--threads",
    "workers": "--ray-workers",
}


def flag_for(option: str) -> str:
    """The flag of a library parameter name; a name without a flag is returned as it is."""
    return OPTION_FLAGS.get(option, option)


def error_message(error: ClipsepError) -> str:
    """The text of an error as the command line reports it: option errors under the user's flag."""
    if isinstance(error, OptionError):
        return f"{flag_for(error.option)}: {error.reason}"
    return str(error)
