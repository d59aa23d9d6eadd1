"""What this machine's hardware offers, read without importing torch (backend choice runs it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX, where bf16 convolutions are fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def nvidia_gpu_possible() -> bool:
    """False only where no CUDA GPU can be seen for sure: Linux with no NVIDIA driver loaded
    (no /proc/driver/nvidia/version) and no WSL GPU bridge (/dev/dxg). Elsewhere True: ask CUDA."""
    if not sys.platform.startswith("linux") or os.path.exists("/dev/dxg"):
        return True
    return os.path.exists("/proc/driver/nvidia/version")
