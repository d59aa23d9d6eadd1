"""The network behind one small interface: log-magnitude windows + head vectors -> masks.

An engine is stateless apart from its weights: batch and streaming separation own the
buffers and call `probabilities` once per batch of windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from ..errors import ClipsepError
from ..model.separator import CLIPSepSeparator

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class Engine(Protocol):
    device: torch.device
    precision: str

    def probabilities(self, log_mag: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) float32 warped log magnitude, (K, C) head vectors -> (B, K, F, T) float32 sigmoid masks."""
        ...


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX, where bf16 convolutions are fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


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


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TorchEngine:
    """Eager PyTorch on CPU or CUDA: the U-Net channels-last in fp32, bf16 or fp16; heads in fp32."""

    def __init__(self, model: CLIPSepSeparator, device: str = "cpu", precision: str = "auto"):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = _DTYPES[self.precision]
        self.model = model.eval().to(self.device)
        self.model.unet.to(dtype=self.dtype, memory_format=torch.channels_last)

    @torch.inference_mode()
    def probabilities(self, log_mag: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        log_mag = log_mag.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        features = self.model.features(log_mag).float()
        return torch.sigmoid(self.model.heads.logits(features, vectors.to(self.device)))

    @torch.inference_mode()
    def head_vectors(self, embeddings: torch.Tensor, noise_heads: bool) -> torch.Tensor:
        """(Q, D) embeddings -> (Q * (1 + H), C) float32: per query, its head then its noise heads."""
        heads = self.model.heads
        embeddings = embeddings.to(self.device, torch.float32)
        vectors = heads.query_vectors(embeddings)[:, None]  # (Q, 1, C)
        if noise_heads:
            vectors = torch.cat([vectors, heads.noise_vectors(embeddings)], dim=1)
        return vectors.flatten(0, 1)
