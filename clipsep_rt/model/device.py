"""Where a network runs: the torch device and the numeric precision a user asks for."""

from __future__ import annotations

import torch

from clipsep_rt.errors import ClipsepError
from clipsep_rt.model.hardware import cpu_has_native_bf16

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ClipsepError(f"device {device!r}: CUDA is not available in this PyTorch build or on this machine (use -d cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ClipsepError(f"device {device!r}: expected cpu, cuda, cuda:N or auto")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is fp16 on CUDA, bf16 on CPUs with native bf16, fp32 otherwise."""
    if precision not in PRECISIONS:
        raise ClipsepError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ClipsepError("precision fp16 needs -d cuda; on CPU use bf16 or fp32")
    return precision
